"""``store-agent bench pipeline``: full-pipeline throughput against bare detector inference, and how many
inferences motion gating saves on a static scene.

Definitions (docs/benchmarks.md, "People analytics: pipeline throughput and motion gating"):

- The video is decoded **once, up front**; decoding is counted in neither figure. Both loops walk the same
  decoded frames ``repeat`` times.
- ``detector_fps``: ``detector.detect(image)`` alone (pre-processing, onnxruntime, decoding of the output,
  NMS), frames per second.
- ``pipeline_fps``: :class:`~agent.vision.processor.FrameProcessor.process` on the same frames with detection
  on EVERY frame (``detect_fps`` at its maximum, 60, and motion gating off, so both loops run the detector the
  same number of times), including the ROI filter, the tracker and the analytics with one counting line and
  two zones configured, frames per second.
- The two loops are interleaved frame by frame (alternating which one goes first), so load from other
  processes on the box hits both alike.
- ``ratio`` = ``pipeline_fps / detector_fps`` (goal ≥ 0.85 on 2 cores).
- ``motion_gating_gain``: on a static segment — the clip's last frame repeated for ``static_seconds`` at the
  clip's frame rate, with independent Gaussian sensor noise (σ = ``noise_sigma`` grey levels) added to every
  frame — the number of inferences the processor runs at DEFAULT settings (5 fps, forced detection every
  2 s) with motion gating off, divided by the number with motion gating on (goal ≥ 5×).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import CameraConfig
from agent.config.vision_models import CameraAnalyticsConfig, LineConfig, VisionConfig, ZoneConfig
from agent.vision.processor import FrameProcessor
from agent.vision.replay import frames_from_dir, frames_from_file
from agent.vision.source import Frame
from models.detectors import Detector

#: Highest ``detect_fps`` the config allows; used so the throughput loop detects on every frame.
MAX_DETECT_FPS = 60.0

#: The analytics configured for the throughput loop: one counting line across the middle, two zones splitting
#: the floor (every person is in one of them), so line and zone code run on every frame.
BENCH_LINES = (LineConfig(name="door", start=(0.0, 0.6), end=(1.0, 0.6)),)
BENCH_ZONES = (ZoneConfig(name="left", polygon=[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]),
               ZoneConfig(name="right", polygon=[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]))


def decode_frames(video: Path, fps: float | None = None) -> list[Frame]:
    """Every frame of a video file or frame directory, decoded into memory, with the source's timestamps."""
    video = Path(video)
    frames = list(frames_from_dir(video, fps) if video.is_dir() else frames_from_file(video))
    if not frames:
        raise ValueError(f"no frame could be decoded from {video}")
    return frames


def clip_fps(frames: Sequence[Frame]) -> float:
    """Mean frame rate of decoded ``frames`` from their timestamps (25 when they carry none)."""
    span = frames[-1].ts - frames[0].ts
    return (len(frames) - 1) / span if len(frames) > 1 and span > 0 else 25.0


def bench_camera(video: Path | str, detector: str, **analytics: Any) -> CameraConfig:
    """The camera config of the bench: ``BENCH_LINES`` and ``BENCH_ZONES``, other settings from ``analytics``
    (defaults otherwise)."""
    a = CameraAnalyticsConfig(detector=detector, lines=list(BENCH_LINES), zones=list(BENCH_ZONES), **analytics)
    return CameraConfig(name="bench", url=str(video), analytics=a)


def repeated(frames: Sequence[Frame], repeat: int, min_spacing_s: float = 0.0) -> Iterator[Frame]:
    """``frames`` ``repeat`` times with timestamps that keep increasing (each pass starts one frame period
    after the previous one ended); with ``min_spacing_s``, frames closer than that are re-timed to it."""
    period = 1.0 / clip_fps(frames)
    spacing = max(period, min_spacing_s)
    retime = min_spacing_s > 0 and period < min_spacing_s
    t0 = frames[0].ts
    duration = (len(frames) - 1) * spacing if retime else frames[-1].ts - t0
    index = 0
    for r in range(repeat):
        offset = r * (duration + spacing)
        for i, frame in enumerate(frames):
            ts = (i * spacing if retime else frame.ts - t0) + offset
            yield Frame(frame.image, ts, index)
            index += 1


def static_segment(image: np.ndarray, fps: float, seconds: float, noise_sigma: float = 3.0,
                   seed: int = 0, pool: int = 16) -> Iterator[Frame]:
    """``image`` ((H, W, 3) uint8) repeated for ``seconds`` at ``fps``, each copy with Gaussian noise of
    ``noise_sigma`` grey levels (a camera looking at a still scene). Generated lazily; the noise fields are
    drawn from a pool of ``pool`` independent fields (so a long 1080p segment does not cost a normal draw of
    6 M values per frame), consecutive frames never share one."""
    rng = np.random.default_rng(seed)
    base = image.astype(np.int16)
    fields = [np.clip(rng.normal(0.0, noise_sigma, image.shape).round(), -127, 127).astype(np.int8)
              for _ in range(max(2, pool))] if noise_sigma > 0 else []
    last = -1
    for index in range(int(round(seconds * fps))):
        if fields:
            pick = int(rng.integers(len(fields) - 1))
            pick += int(0 <= last <= pick)  # never the previous frame's field
            last = pick
            noisy = np.clip(base + fields[pick], 0, 255).astype(np.uint8)
        else:
            noisy = image
        yield Frame(noisy, index / fps, index)


class _Timed:
    """Wraps one method of an object and accumulates the seconds spent in it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


class _TimedTracker:
    """A tracker whose ``update`` is timed (the processor only calls ``update``)."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self.update = _Timed(tracker.update)

    def reset(self) -> None:
        self.tracker.reset()


def measure_throughput(frames: Sequence[Frame], detector: Detector, camera: CameraConfig,
                       vision: VisionConfig | None = None, repeat: int = 3, warmup: int = 5) -> dict[str, Any]:
    """``detector_fps``, ``pipeline_fps``, their ``ratio`` and per-stage milliseconds per frame.

    ``camera`` should detect on every frame (``detect_fps`` ≥ the clip's rate, motion gating off): the
    processor's counters are checked and returned (``inferences`` must equal ``frames``).
    """
    vision = vision or VisionConfig()
    processor = FrameProcessor(camera, vision, detector)
    tracker = _TimedTracker(processor.tracker)
    processor.tracker = tracker  # type: ignore[assignment]
    analytics_update = _Timed(processor.analytics.update)
    processor.analytics.update = analytics_update  # type: ignore[method-assign]
    for frame in frames[:warmup]:
        detector.detect(frame.image)
    det_s: list[float] = []
    pipe_s: list[float] = []
    clock = time.perf_counter
    for i, frame in enumerate(repeated(frames, repeat, 1.0 / camera.analytics.detect_fps)):
        if i % 2 == 0:
            t0 = clock()
            detector.detect(frame.image)
            t1 = clock()
            processor.process(frame)
            t2 = clock()
            det_s.append(t1 - t0)
            pipe_s.append(t2 - t1)
        else:
            t0 = clock()
            processor.process(frame)
            t1 = clock()
            detector.detect(frame.image)
            t2 = clock()
            pipe_s.append(t1 - t0)
            det_s.append(t2 - t1)
    n = len(det_s)
    det_total, pipe_total = float(np.sum(det_s)), float(np.sum(pipe_s))
    ms = 1000.0 / n
    inference_ms = processor.inference_s * ms
    tracker_ms = tracker.update.seconds * ms
    analytics_ms = analytics_update.seconds * ms
    pipeline_ms = pipe_total * ms
    counts = dict(processor.counts)
    if counts["inferences"] != n:
        raise RuntimeError(f"the throughput loop must detect on every frame: {counts}")
    return {
        "frames": n,
        "detector_fps": round(n / det_total, 2),
        "pipeline_fps": round(n / pipe_total, 2),
        "ratio": round(det_total / pipe_total, 3),
        "ratio_p50": round(float(np.median(det_s) / np.median(pipe_s)), 3),
        "stage_ms": {
            "detector_alone": round(det_total * ms, 3),
            "pipeline": round(pipeline_ms, 3),
            "inference_in_pipeline": round(inference_ms, 3),
            "tracker": round(tracker_ms, 3),
            "analytics": round(analytics_ms, 3),
            "other": round(pipeline_ms - inference_ms - tracker_ms - analytics_ms, 3),
        },
        "counts": counts,
        "tracks_live": len(processor.last_ids),
    }


def count_inferences(frames: Iterator[Frame] | Sequence[Frame], detector: Detector, camera: CameraConfig,
                     vision: VisionConfig | None = None) -> dict[str, int]:
    """Run ``frames`` through a processor for ``camera`` and return its counters (``inferences``, ``gated``,
    ``rate_skipped``, ``frames``, ``detections``)."""
    processor = FrameProcessor(camera, vision or VisionConfig(), detector)
    for frame in frames:
        processor.process(frame)
    return dict(processor.counts)


def measure_gating(image: np.ndarray, fps: float, seconds: float, detector: Detector, camera: CameraConfig,
                   vision: VisionConfig | None = None, noise_sigma: float = 3.0) -> dict[str, Any]:
    """Inferences on a static segment (``image`` repeated, see :func:`static_segment`) at ``camera``'s
    settings with motion gating off and on, and their quotient ``gain``."""
    off = camera.model_copy(update={"analytics": camera.analytics.model_copy(update={"motion_gate": False})})
    on = camera.model_copy(update={"analytics": camera.analytics.model_copy(update={"motion_gate": True})})
    ungated = count_inferences(static_segment(image, fps, seconds, noise_sigma), detector, off, vision)
    gated = count_inferences(static_segment(image, fps, seconds, noise_sigma), detector, on, vision)
    return {"seconds": seconds, "fps": round(fps, 2), "frames": gated["frames"], "noise_sigma": noise_sigma,
            "inferences_ungated": ungated["inferences"], "inferences_gated": gated["inferences"],
            "gain": round(ungated["inferences"] / max(1, gated["inferences"]), 2)}


def run_pipeline_bench(video: Path, detector: Detector, *, detector_name: str = "yolox-nano", repeat: int = 3,
                       static_seconds: float = 60.0, noise_sigma: float = 3.0, threads: int = 2,
                       vision: VisionConfig | None = None) -> dict[str, Any]:
    """All figures of ``store-agent bench pipeline`` (keys are a stable contract; see the module docstring).

    Also measured on the real clip at default settings: ``clip_gating`` (inferences with gating off and on —
    a clip with people moving throughout should lose few detections to the gate).
    """
    vision = vision or VisionConfig(inference_threads=threads)
    frames = decode_frames(video)
    fps = clip_fps(frames)
    height, width = frames[0].image.shape[:2]
    throughput = measure_throughput(frames, detector,
                                    bench_camera(video, detector_name, detect_fps=MAX_DETECT_FPS, motion_gate=False),
                                    vision, repeat=repeat)
    defaults = bench_camera(video, detector_name)
    gating = measure_gating(frames[-1].image, fps, static_seconds, detector, defaults, vision, noise_sigma)
    off = bench_camera(video, detector_name, motion_gate=False)
    clip = {"inferences_ungated": count_inferences(frames, detector, off, vision)["inferences"],
            "inferences_gated": count_inferences(frames, detector, defaults, vision)["inferences"]}
    return {
        "pipeline_fps": throughput["pipeline_fps"],
        "detector_fps": throughput["detector_fps"],
        "ratio": throughput["ratio"],
        "motion_gating_gain": gating["gain"],
        "ratio_p50": throughput["ratio_p50"],
        "video": str(video),
        "frame_size": [width, height],
        "clip_frames": len(frames),
        "clip_fps": round(fps, 2),
        "repeat": repeat,
        "frames_measured": throughput["frames"],
        "detector": detector_name,
        "threads": vision.inference_threads,
        "decoding": "excluded (frames decoded once before timing)",
        "analytics": {"lines": len(BENCH_LINES), "zones": len(BENCH_ZONES)},
        "stage_ms": throughput["stage_ms"],
        "pipeline_counts": throughput["counts"],
        "static": gating,
        "clip_gating": clip,
    }
