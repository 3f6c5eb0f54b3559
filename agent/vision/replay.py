"""``store-agent replay``: a video file or a frame directory through the full pipeline, as fast as possible.

Used to validate a deployment's lines and zones on recorded footage and by the tests against hand-made
ground truth. Nothing is published: events go to an optional JSON-lines file and a summary is returned.
"""

from __future__ import annotations

import configparser
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2

from agent.analytics.camera import summarize_events
from agent.config import CameraConfig
from agent.config.identity_models import IdentityConfig
from agent.config.vision_models import VisionConfig
from agent.vision.processor import FrameProcessor
from agent.vision.source import Frame, FrameSource
from models.detectors import build_detector

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def frames_from_dir(directory: Path, fps: float | None = None) -> Iterator[Frame]:
    """Images of a directory in name order (a MOTChallenge ``img1/`` or its sequence folder); timestamps
    from ``fps``, else the ``frameRate`` of a ``seqinfo.ini`` next to it, else 10 fps."""
    if (directory / "img1").is_dir():
        directory = directory / "img1"
    if fps is None:
        ini = directory.parent / "seqinfo.ini"
        if ini.is_file():
            parser = configparser.ConfigParser()
            parser.read(ini)
            fps = parser.getfloat("Sequence", "frameRate", fallback=None)
    fps = fps or 10.0
    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for index, path in enumerate(paths):
        image = cv2.imread(str(path))
        if image is not None:
            yield Frame(image=image, ts=index / fps, index=index)


def frames_from_file(path: Path) -> Iterator[Frame]:
    """Every frame of a video file in order, with the file's own timestamps."""
    source = FrameSource(path, live=False, loop=False).start()
    try:
        while (frame := source.read()) is not None:
            yield frame
    finally:
        source.close()


def replay(path: Path, camera: CameraConfig, vision: VisionConfig, model_dir: Path, *, threads: int = 2,
           events_out: Path | None = None, fps: float | None = None,
           identity_cfg: IdentityConfig | None = None) -> dict[str, Any]:
    """Run the whole pipeline over ``path``; return the ``replay --json`` summary.

    With ``camera.identification`` on (and ``identity_cfg``), faces are identified against an empty, temporary
    identity store (:mod:`agent.identity.ephemeral`) and the summary gains an ``identity`` key (distinct visitor
    ids created, decisions, face counts)."""
    if camera.identification and identity_cfg is not None:
        from agent.identity.ephemeral import ephemeral_identity_service

        with ephemeral_identity_service(identity_cfg) as service:
            return _replay(path, camera, vision, model_dir, threads, events_out, fps, (identity_cfg, service))
    return _replay(path, camera, vision, model_dir, threads, events_out, fps, None)


def _replay(path: Path, camera: CameraConfig, vision: VisionConfig, model_dir: Path, threads: int,
            events_out: Path | None, fps: float | None, identity: tuple[IdentityConfig, Any] | None
            ) -> dict[str, Any]:
    a = camera.analytics
    detector = build_detector(a.detector, model_dir, threads=threads, score_threshold=a.score_threshold)
    processor = FrameProcessor(camera, vision, detector)
    if identity is not None:
        from agent.identity.pipeline import build_identity_hook

        processor.identity = build_identity_hook(camera.name, True, identity[0], model_dir, identity[1],
                                                 threads=threads, staff=processor.analytics.staff,
                                                 zones=processor.analytics.zones)
    frames = frames_from_dir(path, fps) if path.is_dir() else frames_from_file(path)
    events: list[Any] = []
    track_ids: set[int] = set()
    last_ts = 0.0
    t0 = time.perf_counter()
    for frame in frames:
        result = processor.process(frame)
        events.extend(result.events)
        if result.detected:
            track_ids.update(processor.last_ids.tolist())
        last_ts = frame.ts
    if processor.identity is not None:
        processor.identity.finish(last_ts + 1e-3)
    final_events, _ = processor.analytics.finish(last_ts + 1e-3)
    events.extend(final_events)
    elapsed = time.perf_counter() - t0
    if events_out is not None:
        with open(events_out, "w", encoding="utf-8") as handle:
            for event in events:
                handle.write(json.dumps({"camera": camera.name, **event.as_dict()}) + "\n")
    frames_n = processor.counts["frames"]
    summary = summarize_events(events, [ln.name for ln in a.lines], [z.name for z in a.zones])
    return {"frames": frames_n, "fps": round(frames_n / elapsed, 1) if elapsed > 0 else 0.0,
            "lines": summary["lines"], "zones": summary["zones"], "tracks": len(track_ids),
            "inferences": processor.counts["inferences"], "duration_s": round(last_ts, 3),
            **({"identity": _identity_summary(processor.identity)} if processor.identity is not None else {})}


def _identity_summary(hook: Any) -> dict[str, Any]:
    from agent.identity.ephemeral import visitor_summary

    return visitor_summary(hook.decisions, hook.status())
