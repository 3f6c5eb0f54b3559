"""``store-agent replay`` and ``store-agent report heatmap``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, load_or_exit, print_json
from agent.config import CameraConfig
from agent.config.vision_models import LineConfig, ZoneConfig

report_app = typer.Typer(help="Reports rendered from the local store.", no_args_is_help=True)


def parse_line(text: str) -> LineConfig:
    """``NAME=x1,y1,x2,y2`` (normalised) → LineConfig."""
    name, _, coords = text.partition("=")
    values = [float(v) for v in coords.split(",")] if coords else []
    if not name or len(values) != 4:
        raise typer.BadParameter(f"--line {text!r}: expected NAME=x1,y1,x2,y2 with coordinates in 0–1")
    return LineConfig(name=name, start=(values[0], values[1]), end=(values[2], values[3]))


def parse_zone(text: str) -> ZoneConfig:
    """``NAME=x1,y1;x2,y2;x3,y3;...`` (normalised) → ZoneConfig."""
    name, _, coords = text.partition("=")
    try:
        points = [tuple(float(v) for v in pair.split(",")) for pair in coords.split(";") if pair.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"--zone {text!r}: coordinates must be numbers") from exc
    if not name or len(points) < 3 or any(len(p) != 2 for p in points):
        raise typer.BadParameter(f"--zone {text!r}: expected NAME=x1,y1;x2,y2;x3,y3;... (at least 3 points)")
    return ZoneConfig(name=name, polygon=points)


def replay(
    source: Annotated[Path, typer.Argument(help="Video file, or a directory of frames (e.g. a MOT img1/).")],
    config: ConfigOption = DEFAULT_CONFIG,
    camera: Annotated[Optional[str], typer.Option(help="Take lines, zones and detector from this camera of --config.")] = None,
    line: Annotated[Optional[list[str]], typer.Option("--line", help="NAME=x1,y1,x2,y2 (normalised). IN = the "
                                                      "start→end direction turned 90° clockwise on the image.")] = None,
    zone: Annotated[Optional[list[str]], typer.Option("--zone", help="NAME=x1,y1;x2,y2;x3,y3;...")] = None,
    detector: Annotated[Optional[str], typer.Option(help="Detector model (registry name or .onnx path).")] = None,
    model_dir: Annotated[Optional[Path], typer.Option(help="Model directory (default: config models.dir).")] = None,
    mirror: Annotated[Optional[Path], typer.Option(help="Install missing models from this mirror first.")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate of a frame directory (default: seqinfo.ini or 10).")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="Write every event as JSON lines here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    identification: Annotated[bool, typer.Option("--identification", help="Identify faces (as a camera with "
                                                 "identification = true would) against an empty temporary "
                                                 "store; adds the identity key to the summary.")] = False,
    true_people: Annotated[Optional[int], typer.Option("--true-people", min=0, help="True number of people in "
                                                       "the video, reported next to the visitor ids created.")] = None,
) -> None:
    """Run a recorded video through the full pipeline as fast as possible and print counts and dwell."""
    from agent.vision.replay import replay as run_replay
    from models.registry import ModelError, install

    cfg = load_or_exit(config) if (camera or config != DEFAULT_CONFIG or DEFAULT_CONFIG.exists()) else None
    if not source.exists():
        typer.echo(f"{source} does not exist", err=True)
        raise typer.Exit(2)
    if camera:
        found = [c for c in (cfg.cameras if cfg else []) if c.name == camera]
        if not found:
            typer.echo(f"no camera {camera!r} in {config}", err=True)
            raise typer.Exit(2)
        cam = found[0]
    else:
        cam = CameraConfig(name="replay", url=str(source))
    analytics = cam.analytics.model_copy(update={
        "lines": [*cam.analytics.lines, *(parse_line(t) for t in line or [])],
        "zones": [*cam.analytics.zones, *(parse_zone(t) for t in zone or [])],
        **({"detector": detector} if detector else {}),
    })
    cam = cam.model_copy(update={"analytics": analytics, **({"identification": True} if identification else {})})
    vision = cfg.vision if cfg else None
    model_dir = model_dir or (cfg.models.dir if cfg else Path("/var/lib/store-agent/models"))
    mirror = mirror or (cfg.models.mirror if cfg else None)
    try:
        from agent.config.identity_models import IdentityConfig
        from agent.config.vision_models import VisionConfig

        identity_cfg = cfg.identity if cfg else IdentityConfig()
        if mirror is not None:
            install(analytics.detector, model_dir, mirror=mirror)
            if cam.identification:
                for name in (identity_cfg.face_detector, identity_cfg.face_embedder):
                    install(name, model_dir, mirror=mirror)
        summary = run_replay(source, cam, vision or VisionConfig(), model_dir, events_out=events, fps=fps,
                             identity_cfg=identity_cfg)
        if "identity" in summary and true_people is not None:
            ids = summary["identity"]["visitor_ids"]
            summary["identity"].update(true_people=true_people, extra_ids=max(0, ids - true_people),
                                       missing_ids=max(0, true_people - ids))
    except ModelError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(summary)
        return
    typer.echo(f"{summary['frames']} frames at {summary['fps']} fps, {summary['tracks']} tracks")
    for name, counts in summary["lines"].items():
        typer.echo(f"  line {name}: in {counts['in']}  out {counts['out']}")
    for name, z in summary["zones"].items():
        typer.echo(f"  zone {name}: {z['visits']} visits, dwell {json.dumps(z['dwell_s'])}")


@report_app.command("heatmap")
def heatmap(
    camera: Annotated[str, typer.Argument(help="Camera name.")],
    config: ConfigOption = DEFAULT_CONFIG,
    out: Annotated[Path, typer.Option("-o", "--out", help="PNG file to write.")] = Path("heatmap.png"),
    since: Annotated[float, typer.Option(help="Only intervals starting at or after this epoch time.")] = 0.0,
    snapshot: Annotated[Optional[Path], typer.Option(help="Image to draw over (e.g. a frame you saved).")] = None,
) -> None:
    """Sum the camera's heatmap grids from the local store and render them as a PNG."""
    import cv2

    from agent.analytics.heatmap import render_png

    cfg = load_or_exit(config)
    conn = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT body FROM aggregates WHERE kind = 'people' AND source = ? AND interval_start >= ?",
                            (camera, since)).fetchall()
    finally:
        conn.close()
    grid = None
    for (body,) in rows:
        h = json.loads(body).get("heatmap") or {}
        cells = np.asarray(h.get("counts", []), np.float64)
        if cells.size != h.get("rows", 0) * h.get("cols", 0) or cells.size == 0:
            continue
        cells = cells.reshape(h["rows"], h["cols"])
        grid = cells if grid is None or grid.shape != cells.shape else grid + cells
    if grid is None:
        typer.echo(f"no heatmap data for camera {camera!r} in {cfg.db_path}", err=True)
        raise typer.Exit(1)
    image = cv2.imread(str(snapshot)) if snapshot else None
    render_png(grid, out, image)
    print_json({"camera": camera, "intervals": len(rows), "out": str(out), "total": float(grid.sum())})
