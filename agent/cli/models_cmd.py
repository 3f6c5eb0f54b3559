"""``store-agent models list|pull|verify|info|export``: the model registry from the command line.

The model directory defaults to the config's ``models.dir``. The mirror (an offline copy laid out like the
registry's relative paths, e.g. ``../shared/models``) is, in order: ``--mirror``, ``$STORE_AGENT_MODEL_MIRROR``,
the config's ``models.mirror``; without one, ``pull`` downloads from the pinned upstream URLs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json
from models.registry import MIRROR_ENV, REGISTRY, ModelError, get_spec, install, install_state, pull_hint, verify

app = typer.Typer(help="Model registry: list, install (pull), verify, describe and export models.",
                  no_args_is_help=True)

DirOption = Annotated[Optional[Path], typer.Option("--dir", help="Model directory (default: config models.dir).")]
NamesArgument = Annotated[Optional[list[str]], typer.Argument(help="Model names (see `store-agent models list`).",
                                                              show_default=False)]


def _model_dir(directory: Path | None, config: Path) -> Path:
    return directory if directory is not None else load_or_exit(config).models.dir


def _mirror(mirror: Path | None, config: Path) -> Path | None:
    if mirror is not None:
        return mirror
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return Path(env)
    return load_or_exit(config).models.mirror


def _check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        typer.echo(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(REGISTRY)}", err=True)
        raise typer.Exit(2)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


@app.command("list")
def list_models(directory: DirOption = None, config: ConfigOption = DEFAULT_CONFIG,
                as_json: JsonOption = False) -> None:
    """Every known model with its task, size, licence and whether it is installed (size check; `verify` hashes)."""
    model_dir = _model_dir(directory, config)
    rows = [{"name": s.name, "task": s.task, "size": s.size, "licence": s.licence,
             "licence_caveat": bool(s.licence_caveat), "state": install_state(s, model_dir)}
            for s in REGISTRY.values()]
    if as_json:
        print_json({"dir": str(model_dir), "models": rows})
        return
    typer.echo(f"model directory: {model_dir}")
    typer.echo(f"{'NAME':<24} {'TASK':<23} {'SIZE':>8}  {'STATE':<11} LICENCE")
    for row in rows:
        mark = " (*)" if row["licence_caveat"] else ""
        typer.echo(f"{row['name']:<24} {row['task']:<23} {_mb(row['size']):>8}  {row['state']:<11} "
                   f"{row['licence']}{mark}")
    if any(r["licence_caveat"] for r in rows):
        typer.echo("(*) licence caveat: see `store-agent models info NAME`")


@app.command()
def pull(
    names: NamesArgument = None,
    all_models: Annotated[bool, typer.Option("--all", help="Install every known model.")] = False,
    mirror: Annotated[Optional[Path], typer.Option(
        "--mirror", help=f"Install from this directory instead of downloading (default: ${MIRROR_ENV}, then "
        "config models.mirror).")] = None,
    directory: DirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Reinstall even if the installed file verifies.")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Install models: download (or copy from a mirror), verify sha256, install atomically. Exit 1 on any failure."""
    selected = list(REGISTRY) if all_models else list(dict.fromkeys(names or []))
    if not selected:
        typer.echo("name the models to pull (see `store-agent models list`) or pass --all", err=True)
        raise typer.Exit(2)
    _check_names(selected)
    model_dir = _model_dir(directory, config)
    source = _mirror(mirror, config)
    results: list[dict[str, str]] = []
    for name in selected:
        if not force and verify(name, model_dir).ok:
            path = model_dir / get_spec(name).relpath
            results.append({"name": name, "status": "already installed", "path": str(path)})
            if not as_json:
                typer.echo(f"{name}: already installed and verified")
            continue
        try:
            path = _install_one(name, model_dir, source, show_progress=not as_json)
        except ModelError as exc:
            results.append({"name": name, "status": "failed", "error": str(exc)})
            typer.echo(f"{name}: FAILED: {exc}", err=True)
            continue
        results.append({"name": name, "status": "installed", "path": str(path)})
        if not as_json:
            origin = f"mirror {source}" if source else "upstream"
            typer.echo(f"{name}: installed from {origin}, sha256 verified -> {path}")
    ok = all(r["status"] != "failed" for r in results)
    if as_json:
        print_json({"ok": ok, "dir": str(model_dir), "mirror": str(source) if source else None, "models": results})
    if not ok:
        raise typer.Exit(1)


def _install_one(name: str, model_dir: Path, source: Path | None, *, show_progress: bool) -> Path:
    if source is not None or not show_progress:
        return install(name, model_dir, mirror=source)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"downloading {name}", total=get_spec(name).size)
        return install(name, model_dir, progress=lambda done, total: progress.update(task, completed=done,
                                                                                      total=total))


@app.command("verify")
def verify_models(names: NamesArgument = None, directory: DirOption = None, config: ConfigOption = DEFAULT_CONFIG,
                  as_json: JsonOption = False) -> None:
    """Check size and sha256 of installed models; exit 1 on any failure.

    Without names, models that are not installed are listed but do not fail; named models must be installed.
    """
    selected = list(dict.fromkeys(names or []))
    _check_names(selected)
    model_dir = _model_dir(directory, config)
    results = []
    for name in selected or list(REGISTRY):
        result = verify(name, model_dir)
        ok = result.ok or (not result.installed and not selected)
        detail = result.detail if result.installed or selected else "not installed"
        results.append({"name": name, "ok": ok, "installed": result.installed, "detail": detail})
    all_ok = all(r["ok"] for r in results)
    if as_json:
        print_json({"ok": all_ok, "dir": str(model_dir), "models": results})
    else:
        for r in results:
            state = "ok" if r["ok"] and r["installed"] else ("-" if r["ok"] else "FAIL")
            typer.echo(f"{state:<4} {r['name']:<24} {r['detail']}")
    if not all_ok:
        raise typer.Exit(1)


@app.command()
def info(name: Annotated[str, typer.Argument(help="Model name.")], directory: DirOption = None,
         config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Every registry field of one model (source, sha256, licence and caveat, pre-processing, decoder)."""
    _check_names([name])
    spec = get_spec(name)
    model_dir = _model_dir(directory, config)
    data = spec.to_dict()
    data["path"] = str(model_dir / spec.relpath)
    data["state"] = install_state(spec, model_dir)
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key == "input_size":
            value = f"{value[0]}x{value[1]} (w x h)" if value else "any / not applicable"
        elif key == "licence_caveat" and not value:
            value = "none"
        typer.echo(f"{key:<15} {value}")
    if data["state"] != "installed":
        typer.echo(f"\ninstall with: {pull_hint(name)}")


@app.command()
def export(
    weights: Annotated[Path, typer.Argument(help="Ultralytics weights (.pt), e.g. a fine-tuned yolo11n.pt.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="ONNX file to write (default: next to the weights).")]
    = None,
    imgsz: Annotated[int, typer.Option("--imgsz", min=32, help="Square input size of the exported model.")] = 640,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset (default: Ultralytics').")] = None,
) -> None:
    """Convert Ultralytics YOLO weights to ONNX (needs the `ultralytics` extra); use the file as a detector."""
    from models.export import export_ultralytics

    try:
        path = export_ultralytics(weights, out=out, imgsz=imgsz, opset=opset)
    except FileNotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    except ModelError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"exported {path}\nuse it: copy it into the model directory and set the camera's "
               f"analytics.detector to its file name (or path)")
