"""``store-agent eval …``: evaluations on labelled data, printed as JSON with ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json

app = typer.Typer(help="Evaluations on labelled data (MOTChallenge tracking, counting and dwell on a labelled "
                       "video).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Evaluations on labelled data, printed as JSON with --json."""


@app.command("tracking")
def eval_tracking(
    seq_dirs: Annotated[list[Path], typer.Argument(help="MOTChallenge sequence folders (img1/, gt/gt.txt, "
                                                        "seqinfo.ini, det/det.txt).", exists=True,
                                                   file_okay=False, dir_okay=True)],
    out: Annotated[Path, typer.Option("--out", help="Folder for the result files <sequence>.txt.")],
    detector: Annotated[str, typer.Option(help="gt (ground-truth boxes, isolates the tracker), public "
                                               "(det/det.txt) or a registry detector name (yolox-nano, "
                                               "light-person) or an .onnx path.")] = "gt",
    tracker: Annotated[str, typer.Option(help="ours | library-bytetrack")] = "ours",
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", help="Model folder; default: the "
                                                                          "config's models.dir.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Inference threads; default: the config's "
                                                        "vision.inference_threads.")] = None,
    score_threshold: Annotated[float, typer.Option(help="Detector score threshold (ByteTrack uses low-score "
                                                        "boxes too).", min=0.0, max=1.0)] = 0.1,
    reid: Annotated[Optional[str], typer.Option(help="Re-link lost tracks by appearance with this re-id model "
                                                     "(person-reid-0248); our tracker only.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Run detector + tracker on MOTChallenge sequences, write MOT result files and print MOTA, IDF1
    (motmetrics) and HOTA (trackeval) per sequence and overall, under the MOT17 protocol (flag 1 class 1
    pedestrians; predictions on distractor classes removed)."""
    from agent.vision.eval_tracking import evaluate_tracking
    from agent.vision.tracker import TRACKERS

    if tracker not in TRACKERS:
        typer.echo(f"unknown tracker {tracker!r}; choose one of: {', '.join(TRACKERS)}", err=True)
        raise typer.Exit(2)
    if (detector not in ("gt", "public") or reid) and (model_dir is None or threads is None):
        cfg = load_or_exit(config)
        model_dir = model_dir or cfg.models.dir
        threads = threads or cfg.vision.inference_threads
    try:
        result = evaluate_tracking(seq_dirs, out, detector=detector, tracker=tracker, model_dir=model_dir,
                                   threads=threads or 2, score_threshold=score_threshold, reid=reid)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        typer.echo(f"evaluation failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    except Exception as exc:
        from models.spec import ModelError

        if isinstance(exc, ModelError):
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        raise
    if as_json:
        print_json(result)
        return
    typer.echo(f"detector {result['detector']}  tracker {result['tracker']}  results in {out}")
    typer.echo(f"{'sequence':<22} {'MOTA':>7} {'IDF1':>7} {'HOTA':>7} {'IDSW':>5} {'FP':>5} {'FN':>5}")
    rows = list(result["sequences"].items()) + [("OVERALL", result["overall"])]
    def fmt(value: float | None) -> str:
        return f"{value:>7.3f}" if value is not None else f"{'-':>7}"

    for name, s in rows:
        typer.echo(f"{name:<22} {fmt(s['MOTA'])} {fmt(s['IDF1'])} {fmt(s['HOTA'])} {s['IDSW']:>5} "
                   f"{s['FP']:>5} {s['FN']:>5}")


@app.command("counting")
def eval_counting(
    video: Annotated[Path, typer.Argument(help="The labelled video (e.g. ../shared/data/videos/worker-zone-detection.gif).",
                                          exists=True, dir_okay=True)],
    truth: Annotated[Path, typer.Option("--truth", help="Ground-truth JSON (lines, zones, true crossings and visits; "
                                                        "see tests/data/ground_truth/).", exists=True, dir_okay=False)],
    detector: Annotated[Optional[str], typer.Option(help="Detector (registry name or .onnx path); default: the "
                                                         "camera default, yolox-nano.")] = None,
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", help="Model folder; default: the config's "
                                                                          "models.dir.")] = None,
    mirror: Annotated[Optional[Path], typer.Option(help="Install the detector from this mirror directory first "
                                                        "(offline boxes, tests).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Inference threads; default: the config's "
                                                        "vision.inference_threads.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Replay a labelled video through the full pipeline with the truth file's lines and zones and score it:
    per line and direction precision, recall and gross error (crossings matched within ±1 s), visits predicted
    vs true and dwell median / mean absolute error (visits matched at temporal IoU ≥ 0.5)."""
    from agent.vision.eval_counting import evaluate_counting, load_ground_truth
    from models.spec import ModelError

    if model_dir is None or threads is None:
        cfg = load_or_exit(config)
        model_dir = model_dir or cfg.models.dir
        threads = threads or cfg.vision.inference_threads
        mirror = mirror or cfg.models.mirror
    try:
        if mirror is not None:
            from models.registry import install

            install(detector or load_ground_truth(truth).analytics.get("detector", "yolox-nano"), model_dir,
                    mirror=mirror)
        result = evaluate_counting(video, truth, model_dir=model_dir, detector=detector, threads=threads or 2)
    except (ValueError, ModelError, OSError) as exc:
        typer.echo(f"evaluation failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(result)
        return
    t = result["targets"]
    typer.echo(f"{result['video']} vs {result['truth']}: {result['frames']} frames at {result['fps']} fps, "
               f"detector {result['detector']}")
    typer.echo(f"{'line:direction':<24} {'true':>5} {'pred':>5} {'prec':>6} {'recall':>6} {'gross':>6}")
    for key, s in result["counting"]["by_line"].items():
        gross = "-" if s["gross_error"] is None else f"{s['gross_error']:.3f}"
        typer.echo(f"{key:<24} {s['true']:>5} {s['pred']:>5} {s['precision']:>6.3f} {s['recall']:>6.3f} {gross:>6}")
    typer.echo(f"{'zone':<24} {'true':>5} {'pred':>5} {'match':>6} {'dwell median/mean abs err (s)'}")
    for zone, s in result["dwell"]["by_zone"].items():
        typer.echo(f"{zone:<24} {s['true']:>5} {s['pred']:>5} {s['matched']:>6} "
                   f"{s['median_abs_error_s']} / {s['mean_abs_error_s']}")
    typer.echo(f"targets met: {t['met']} (gross error {t['counting_gross_error']} ≤ {t['counting_gross_error_max']}, "
               f"dwell median {t['dwell_median_abs_error_s']} s ≤ {t['dwell_median_abs_error_max_s']} s, "
               f"visit counts equal: {t['visit_counts_equal']})")


@app.command("faces")
def eval_faces(
    directory: Annotated[Path, typer.Argument(help="One folder per identity with its photos (e.g. "
                                                   "../shared/data/faces).", exists=True, file_okay=False)],
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", help="Model folder; default: the config's "
                                                                          "models.dir.")] = None,
    mirror: Annotated[Optional[Path], typer.Option(help="Install the face models from this mirror directory "
                                                        "first (offline boxes, tests).")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Inference threads; default: the config's "
                                                               "vision.inference_threads.")] = None,
    threshold: Annotated[Optional[float], typer.Option(min=-1.0, max=1.0, help="Match threshold for the "
                                                       "open-set rate; default: identity.match_threshold.")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Face verification TAR at FAR 1e-2 / 1e-3 over all pairs, rank-1 identification (gallery = first photo
    per identity) and the open-set false-accept rate with a third of the identities left out, at the configured
    threshold; the configured face detector and embedder, crops in memory only."""
    from agent.config.identity_models import IdentityConfig
    from agent.config.vision_models import ModelsConfig, VisionConfig
    from agent.identity.eval_faces import evaluate_faces
    from agent.identity.pipeline import FacePipeline
    from models.spec import ModelError

    cfg = load_or_exit(config) if (config != DEFAULT_CONFIG or DEFAULT_CONFIG.exists()) else None
    identity = cfg.identity if cfg else IdentityConfig()
    models = cfg.models if cfg else ModelsConfig()
    model_dir = model_dir or models.dir
    mirror = mirror or models.mirror
    threads = threads or (cfg.vision if cfg else VisionConfig()).inference_threads
    threshold = identity.match_threshold if threshold is None else threshold
    try:
        if mirror is not None:
            from models.registry import REGISTRY, install

            for name in (identity.face_detector, identity.face_embedder):
                if name in REGISTRY:
                    install(name, model_dir, mirror=mirror)
        pipeline = FacePipeline.from_config(identity, model_dir, threads=threads)
        result = evaluate_faces(directory, pipeline, threshold)
    except (ValueError, ModelError, OSError) as exc:
        typer.echo(f"evaluation failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(result)
        return
    for key, value in result.items():
        typer.echo(f"{key:<24} {value}")


from agent.cli.products_cmd import eval_products  # noqa: E402 - implemented with the products CLI

app.command("products")(eval_products)
