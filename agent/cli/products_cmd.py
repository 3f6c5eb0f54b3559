"""``store-agent products …`` (gallery enrolment and inspection) and the ``eval products`` / ``bench scale``
commands, registered into the eval and bench apps by one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json

app = typer.Typer(help="Product recognition at the scales: enrol products from photos, inspect the gallery.",
                  no_args_is_help=True)

ModelDirOption = Annotated[Optional[Path], typer.Option("--model-dir", help="Model folder; default: the config's "
                                                                            "models.dir.")]
MirrorOption = Annotated[Optional[Path], typer.Option(help="Install the embedding model from this mirror directory "
                                                           "first (offline boxes, tests).")]


#: ``eval products --json`` keys, as the issue states them.
EVAL_KEYS = ("classes", "queries", "shots", "learning_curve")


def _config(config: Path) -> Any:
    from agent.config import AgentConfig

    return load_or_exit(config) if (config != DEFAULT_CONFIG or DEFAULT_CONFIG.exists()) else AgentConfig()


def _embedder(cfg: Any, model_dir: Path | None, mirror: Path | None, head: str | None = None,
              flip: bool | None = None) -> Any:
    from agent.products.recognizer import embedder_from_config

    products = cfg.products.model_copy(update={k: v for k, v in (("head", head), ("flip_tta", flip))
                                               if v is not None})
    return embedder_from_config(products, model_dir or cfg.models.dir, mirror=mirror or cfg.models.mirror)


def _fail(exc: Exception) -> None:
    typer.echo(f"failed: {exc}", err=True)
    raise typer.Exit(1) from exc


def eval_products(
    gallery: Annotated[Path, typer.Option("--gallery", help="Enrolment images: a folder-per-class tree or a "
                                                            "GroceryStoreDataset root.", exists=True,
                                          file_okay=False)],
    queries: Annotated[Path, typer.Option("--queries", help="Query images: a folder-per-class tree or a "
                                                            "GroceryStoreDataset root.", exists=True,
                                          file_okay=False)],
    shots: Annotated[str, typer.Option("--shots", help="Gallery images per class, comma-separated.")] = "1,5,20",
    learn: Annotated[bool, typer.Option("--learn", help="Also run the self-learning curve: each query is "
                                                        "confirmed with its true label after its prediction.")] = False,
    gallery_split: Annotated[str, typer.Option("--gallery-split", help="Split of a GroceryStoreDataset "
                                                                       "--gallery root.")] = "train",
    query_split: Annotated[str, typer.Option("--query-split", help="Split of a GroceryStoreDataset --queries "
                                                                   "root.")] = "val",
    order: Annotated[str, typer.Option(help="--learn order of the queries: shuffled (seed 0) or file.")] = "shuffled",
    head: Annotated[Optional[str], typer.Option(help="Projection head (shipped name, .npz path, or '' for none); "
                                                     "default: the config's products.head.")] = None,
    flip: Annotated[Optional[bool], typer.Option("--flip/--no-flip", help="Mirror-image averaging; default: "
                                                                          "products.flip_tta.")] = None,
    model_dir: ModelDirOption = None,
    mirror: MirrorOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Top-1 / top-5 accuracy and ms per query of k-shot product retrieval (max-per-class cosine), and with
    --learn the accuracy as confirmations accumulate. Protocol in docs/scale.md."""
    from agent.products.dataset import DatasetError
    from agent.products.evaluate import evaluate_products
    from models.spec import ModelError

    if order not in ("shuffled", "file"):
        typer.echo("--order must be shuffled or file", err=True)
        raise typer.Exit(2)
    try:
        shot_list = [int(s) for s in shots.split(",") if s.strip()]
    except ValueError:
        typer.echo(f"--shots must be comma-separated integers, got {shots!r}", err=True)
        raise typer.Exit(2) from None
    cfg = _config(config)
    try:
        embedder = _embedder(cfg, model_dir, mirror, head, flip)
        result = evaluate_products(embedder, gallery, queries, shots=shot_list, gallery_split=gallery_split,
                                   query_split=query_split, learn=learn, cap_per_plu=cfg.products.cap_per_plu,
                                   dedupe_cosine=cfg.products.dedupe_cosine, shuffle=order == "shuffled",
                                   progress=None if as_json else typer.echo)
    except (DatasetError, ValueError, ModelError, OSError) as exc:
        _fail(exc)
    if as_json:  # exactly the keys; the protocol details are in the text output
        print_json({k: result[k] for k in EVAL_KEYS})
        return
    typer.echo(f"{result['classes']} classes, {result['queries']} queries, embedder {result['embedder']}")
    for k, s in result["shots"].items():
        typer.echo(f"{k:>4} shots  top-1 {s['top1']:.3f}  top-5 {s['top5']:.3f}  {s['ms_per_query']} ms/query")
    for point in result["learning_curve"]:
        typer.echo(f"after {point['queries']:>5} queries  block top-1 {point['top1']:.3f} top-5 {point['top5']:.3f}"
                   f"  gallery {point['gallery_size']}")


@app.command("learn")
def learn(
    plu: Annotated[str, typer.Option("--plu", help="The product's PLU (as in the price book).")],
    images: Annotated[Path, typer.Option("--images", help="Folder of photos of the product (recursive).",
                                         exists=True, file_okay=False)],
    model_dir: ModelDirOption = None,
    mirror: MirrorOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Enrol a product from photos into the local gallery (dedupe and per-PLU cap apply) and queue
    events/product_learned for each added embedding."""
    from agent.products.enrol import enrol_images
    from models.spec import ModelError

    cfg = _config(config)
    try:
        result = enrol_images(cfg, plu, images, embedder=_embedder(cfg, model_dir, mirror))
    except (ValueError, ModelError, OSError) as exc:
        _fail(exc)
    if as_json:
        print_json(result)
        return
    typer.echo(f"PLU {plu}: {result['added']} added, {result['duplicates']} near-duplicates, "
               f"{result['unreadable']} unreadable; {result['plu_entries']} embeddings for it now")


@app.command("weighings")
def weighings(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most recent weighings to show.")] = 20,
    scale: Annotated[Optional[str], typer.Option(help="Only this scale.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Recent weighings recorded at the scales: weight, candidates, chosen PLU and rank, price, timings."""
    import json

    from agent.store import connect, open_store

    cfg = _config(config)
    conn = connect(open_store(cfg.data_dir))
    try:
        cur = conn.execute("SELECT * FROM weighings" + (" WHERE scale = ?" if scale else "")
                           + " ORDER BY stable_ts DESC LIMIT ?", ((scale, limit) if scale else (limit,)))
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        conn.close()
    for row in rows:
        row["candidates"] = [c["plu"] for c in json.loads(row["candidates"])]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['id']}  {r['scale']:<10} {r['weight_kg']:.3f} kg  {r['status']:<9} "
                   f"plu {r['plu'] or '-':<8} rank {r['chosen_rank'] or '-':<2} total {r['total'] or '-':<7} "
                   f"candidates {','.join(r['candidates'])}  {r['candidates_ms']:.0f} ms")


@app.command("gallery")
def gallery(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Embeddings per PLU in the local gallery, by embedding space."""
    from agent.store import connect, open_store

    cfg = _config(config)
    conn = connect(open_store(cfg.data_dir))
    try:
        rows = conn.execute("SELECT space, plu, COUNT(*) FROM product_embeddings GROUP BY space, plu "
                            "ORDER BY space, plu").fetchall()
    finally:
        conn.close()
    out: dict[str, dict[str, int]] = {}
    for space, plu, n in rows:
        out.setdefault(space, {})[plu] = n
    if as_json:
        print_json(out)
        return
    for space, plus in out.items():
        typer.echo(f"{space}: {sum(plus.values())} embeddings, {len(plus)} PLUs")
        for plu, n in plus.items():
            typer.echo(f"  {plu:<16} {n}")


def bench_scale(
    weighings: Annotated[int, typer.Option(min=1, max=1000, help="Place/remove cycles.")] = 20,
    protocol: Annotated[str, typer.Option(help="Simulated scale protocol: toledo8217, mt-sics, scp01.")] = "mt-sics",
    image: Annotated[Optional[Path], typer.Option(help="Tray image (default: a generated one).", exists=True,
                                                  dir_okay=False)] = None,
    model_dir: ModelDirOption = None,
    mirror: MirrorOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Stable weight → candidates published, end to end through the pty scale simulator (p50/p95 ms)."""
    from agent.products.bench import bench_scale as run
    from models.spec import ModelError

    cfg = _config(config)
    try:
        result = run(model_dir or cfg.models.dir, mirror=mirror or cfg.models.mirror, weighings=weighings,
                     protocol=protocol, image=image, threads=cfg.products.threads)
    except (ValueError, ModelError, OSError, RuntimeError) as exc:
        _fail(exc)
    if as_json:
        print_json({k: result[k] for k in ("p50_stable_to_candidates_ms", "p95_stable_to_candidates_ms",
                                           "weighings")})
        return
    for key, value in result.items():
        typer.echo(f"{key:<30} {value}")
