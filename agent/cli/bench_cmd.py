"""``store-agent bench …``: benchmarks that print figures as JSON (see docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json
from agent.config.vision_models import VisionConfig

app = typer.Typer(help="Benchmarks: figures and ratios, printed as JSON with --json.", no_args_is_help=True)


@app.command("sync")
def bench_sync(
    rate: Annotated[float, typer.Option(help="Messages per second offered to the outbox.")] = 500.0,
    backlog: Annotated[int, typer.Option(help="Offline backlog size drained to the broker.")] = 100_000,
    seconds: Annotated[float, typer.Option(help="Duration of the enqueue-latency phase.")] = 10.0,
    broker: Annotated[Optional[str], typer.Option(help="Broker URL; default: start a local mosquitto.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Outbox enqueue latency at RATE msg/s, CPU used, backlog drain rate, RSS growth over the backlog."""
    from agent.bench.sync_bench import run_sync_bench

    result = run_sync_bench(rate=rate, backlog=backlog, seconds=seconds, broker_url=broker)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key:<22} {value}")


@app.command("pipeline")
def bench_pipeline(
    video: Annotated[Path, typer.Argument(help="Video file or frame directory (decoded once into memory).")],
    detector: Annotated[str, typer.Option(help="Detector model (registry name or .onnx path).")] = "yolox-nano",
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", help="Model directory (default: config "
                                                      "models.dir).")] = None,
    mirror: Annotated[Optional[Path], typer.Option(help="Install the detector from this mirror first.")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Passes over the decoded frames in the throughput loop.")] = 3,
    static_seconds: Annotated[float, typer.Option(min=1.0, help="Length of the static segment for the motion "
                                                  "gating gain.")] = 60.0,
    noise: Annotated[float, typer.Option(min=0.0, help="Sensor noise (grey levels, σ) on the static "
                                         "segment.")] = 3.0,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Inference threads (default: config "
                                                   "vision.inference_threads).")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Full-pipeline fps vs bare detector fps on the same frames, and the motion gating gain on a static scene."""
    from agent.bench.pipeline_bench import run_pipeline_bench
    from models.detectors import build_detector
    from models.registry import REGISTRY, ModelError, install

    if not video.exists():
        typer.echo(f"{video} does not exist", err=True)
        raise typer.Exit(2)
    cfg = load_or_exit(config) if (config != DEFAULT_CONFIG or DEFAULT_CONFIG.exists()) else None
    model_dir = model_dir or (cfg.models.dir if cfg else Path("/var/lib/store-agent/models"))
    mirror = mirror or (cfg.models.mirror if cfg else None)
    vision = cfg.vision if cfg else VisionConfig()
    if threads is not None:
        vision = vision.model_copy(update={"inference_threads": threads})
    try:
        if mirror is not None and detector in REGISTRY:
            install(detector, model_dir, mirror=mirror)
        det = build_detector(detector, model_dir, threads=vision.inference_threads)
        result = run_pipeline_bench(video, det, detector_name=detector, repeat=repeat,
                                    static_seconds=static_seconds, noise_sigma=noise, vision=vision)
    except ModelError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except ValueError as exc:  # nothing decodable in VIDEO
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key:<22} {value}")


@app.command("identity")
def bench_identity(
    faces: Annotated[Optional[Path], typer.Option(help="Time the face pipeline on photos of this folder-per-"
                                                  "identity directory instead of head crops of the sample "
                                                  "video.", exists=True, file_okay=False)] = None,
    video: Annotated[Optional[Path], typer.Option(help="Video for the head crops; default: the faces-video "
                                                  "sample, installed into the model directory.")] = None,
    sizes: Annotated[str, typer.Option(help="Comma-separated gallery sizes.")] = "10000,100000,1000000",
    queries: Annotated[int, typer.Option(min=10, help="Queries per gallery size.")] = 200,
    model_dir: Annotated[Optional[Path], typer.Option("--model-dir", help="Model directory (default: config "
                                                      "models.dir).")] = None,
    mirror: Annotated[Optional[Path], typer.Option(help="Install the face models from this mirror first.")] = None,
    media_mirror: Annotated[Optional[Path], typer.Option("--media-mirror", help="Install the sample video from "
                                                         "this directory (laid out as videos/<file>, e.g. "
                                                         "../shared/data) instead of its upstream URL.")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Inference threads (default: config "
                                                   "vision.inference_threads).")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """faiss search latency per query on galleries of synthetic identities (exact below identity.ann_min_size,
    IVF above) and the per-face detect + align + embed time."""
    from agent.config.identity_models import IdentityConfig
    from agent.identity.bench import head_crops_from_video, photos_for_bench, run_identity_bench
    from agent.identity.pipeline import FacePipeline
    from models.registry import REGISTRY, ModelError, install
    from models.samples import SAMPLES

    cfg = load_or_exit(config) if (config != DEFAULT_CONFIG or DEFAULT_CONFIG.exists()) else None
    identity = cfg.identity if cfg else IdentityConfig()
    model_dir = model_dir or (cfg.models.dir if cfg else Path("/var/lib/store-agent/models"))
    mirror = mirror or (cfg.models.mirror if cfg else None)
    threads = threads or (cfg.vision if cfg else VisionConfig()).inference_threads
    try:
        size_list = tuple(int(s) for s in sizes.split(",") if s.strip())
    except ValueError:
        typer.echo(f"--sizes: expected comma-separated integers, got {sizes!r}", err=True)
        raise typer.Exit(2) from None
    try:
        for name in (identity.face_detector, identity.face_embedder):
            if mirror is not None and name in REGISTRY:
                install(name, model_dir, mirror=mirror)
        pipeline = FacePipeline.from_config(identity, model_dir, threads=threads)
        if faces is not None:
            images = photos_for_bench(faces, 100)
        else:
            video = video or install(SAMPLES["faces-video"], model_dir, mirror=media_mirror)
            images = head_crops_from_video(video, pipeline, 100)
        result = run_identity_bench(pipeline, images, sizes=size_list, dim=identity.embedding_dim,
                                    queries=queries, ann_min_size=identity.ann_min_size, nprobe=identity.ann_nprobe)
    except (ModelError, ValueError, OSError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    if as_json:
        print_json({"search_ms": result["search_ms"], "face_pipeline_ms": result["face_pipeline_ms"]})
    else:
        for key, value in result.items():
            typer.echo(f"{key:<18} {value}")


from agent.cli.products_cmd import bench_scale  # noqa: E402 - implemented with the products CLI

app.command("scale")(bench_scale)


@app.command("scale-link")
def bench_scale_link(
    polls: Annotated[int, typer.Option(min=10, help="Weight requests for the round-trip figure.")] = 300,
    fault_seconds: Annotated[float, typer.Option(min=0.5, help="Seconds of polling under faults.")] = 3.0,
    garbage_rate: Annotated[float, typer.Option(min=0, max=1, help="Chance of garbage before a reply.")] = 0.3,
    partial_rate: Annotated[float, typer.Option(min=0, max=1, help="Chance a reply is cut short.")] = 0.1,
    as_json: JsonOption = False,
) -> None:
    """Scale drivers over the pty simulator, per protocol: round trip, faults, unplug recovery, stable latency."""
    import logging
    import tempfile

    from devices.scale.bench import run_link_bench

    logging.getLogger("devices.scale").setLevel(logging.ERROR)  # the unplug step logs expected warnings
    with tempfile.TemporaryDirectory() as tmp:
        result = run_link_bench(polls=polls, fault_seconds=fault_seconds, garbage_rate=garbage_rate,
                                partial_rate=partial_rate, workdir=tmp)
    if as_json:
        print_json(result)
    else:
        for name, r in result["protocols"].items():
            typer.echo(f"{name}: {r}")


@app.command("esl")
def bench_esl(
    labels: Annotated[int, typer.Option(min=1, max=100_000, help="Labels, each getting one price change.")] = 10_000,
    failure_rate: Annotated[float, typer.Option(min=0.0, max=0.9, help="Simulated transfer failure rate.")] = 0.05,
    interval: Annotated[float, typer.Option(min=0.5, help="Label check-in interval of the simulator, s "
                                            "(compressed from the real ~40 s).")] = 5.0,
    timeout: Annotated[float, typer.Option(min=10, help="Give up after this many seconds.")] = 600.0,
    failure_mode: Annotated[str, typer.Option(help="Simulator after a failed transfer: drop (queue dropped, "
                                              "early retry) or hardware (queue kept, retry at the next check-in, "
                                              "as OpenEPaperLink firmware; see docs/esl.md).")] = "drop",
    as_json: JsonOption = False,
) -> None:
    """Render rate, then price changes through the simulated OpenEPaperLink AP: confirmed fraction within 2
    check-in cycles, cycles to confirm (p99), time to shelf (p50/p99)."""
    from agent.bench.esl_bench import run_esl_bench

    if failure_mode not in ("drop", "hardware"):
        raise typer.BadParameter("use drop or hardware", param_hint="--failure-mode")
    result = run_esl_bench(labels=labels, failure_rate=failure_rate, interval_s=interval, timeout_s=timeout,
                           failure_mode=failure_mode)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key:<24} {value}")


@app.command("identity-service")
def bench_identity_service(
    sizes: Annotated[str, typer.Option(help="Comma-separated visitor gallery sizes.")] = "1000,10000,100000",
    decisions: Annotated[int, typer.Option(min=10, max=10_000, help="Decisions timed per size.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """One track decision end to end (faiss search + encrypted SQLite writes + outbox event) per gallery size,
    alert-to-webhook latency and identity deletion time, over a temporary store with synthetic identities."""
    from agent.identity.service_bench import run_service_bench

    result = run_service_bench([int(s) for s in sizes.split(",") if s.strip()], decisions=decisions)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key:<22} {value}")
