"""Per-frame work of one camera, independent of where frames come from: detection rate, motion gate,
detector, ROI filter, tracker, analytics. The live pipeline and ``replay`` share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.analytics.camera import CameraAnalytics, Event
from agent.config import CameraConfig
from agent.config.vision_models import VisionConfig
from agent.vision.motion import MotionGate
from agent.vision.roi import RoiFilter
from agent.vision.source import Frame
from agent.vision.tracker import Tracker, make_tracker
from models.detectors.base import Detector

if TYPE_CHECKING:
    from agent.vision.snapshots import SnapshotWriter


@dataclass(slots=True)
class FrameResult:
    """What one frame produced: ``detected`` is False when the rate limit or the motion gate skipped it."""

    events: list[Event] = field(default_factory=list)
    detected: bool = False
    gated: bool = False
    tracks: int = 0


class FrameProcessor:
    """Source → (rate, gate) → detector → ROI → tracker → analytics, for one camera.

    Frames the motion gate skips still advance the analytics with the last known positions (nothing moved),
    so dwell and occupancy of people standing still stay right; frames skipped by the detection rate do not.

    ``snapshots`` (from :func:`agent.vision.snapshots.make_snapshot_writer`, which gives None unless the camera's
    ``debug_snapshots`` is on) writes at most one redacted debug JPEG per interval, on detected frames only.
    """

    def __init__(self, camera: CameraConfig, vision: VisionConfig, detector: Detector, *,
                 tracker: Tracker | None = None, snapshots: SnapshotWriter | None = None) -> None:
        a = camera.analytics
        if snapshots is not None and not a.debug_snapshots:
            raise ValueError(f"camera {camera.name!r}: a snapshot writer needs analytics.debug_snapshots = true")
        self.snapshots = snapshots
        self.camera = camera
        self.detector = detector
        self.min_interval_s = 1.0 / a.detect_fps
        self.gate = MotionGate(a.motion_threshold, a.forced_detect_s) if a.motion_gate else None
        self.roi = RoiFilter(a.roi, a.min_box_height)
        self.tracker = tracker or make_tracker("ours", frame_rate=a.detect_fps)
        self.analytics = CameraAnalytics.from_config(camera.name, a, vision)
        self._last_detect_ts: float | None = None
        self.last_ids = np.zeros((0,), np.int64)
        self.last_boxes = np.zeros((0, 4), np.float64)
        self.counts = {"frames": 0, "detections": 0, "inferences": 0, "gated": 0, "rate_skipped": 0}
        #: Optional identity step ``(image, ts, track_ids, pixel_boxes) -> None`` on detected frames; set only for
        #: cameras with identification on (``agent.identity.pipeline.build_identity_hook``). Counting never uses it.
        self.identity: Callable[[np.ndarray, float, np.ndarray, np.ndarray], None] | None = None
        self.inference_s = 0.0

    def process(self, frame: Frame) -> FrameResult:
        """Handle one frame (timestamps must not go backwards)."""
        self.counts["frames"] += 1
        if self._last_detect_ts is not None and frame.ts - self._last_detect_ts < self.min_interval_s - 1e-6:
            self.counts["rate_skipped"] += 1
            return FrameResult()
        self._last_detect_ts = frame.ts
        if self.gate is not None and not self.gate.should_detect(frame.image, frame.ts):
            self.counts["gated"] += 1
            events = self.analytics.update(frame.ts, self.last_ids, self.last_boxes)
            return FrameResult(events=events, gated=True, tracks=len(self.last_ids))
        height, width = frame.image.shape[:2]
        t0 = time.perf_counter()
        detections = self.detector.detect(frame.image)
        self.inference_s += time.perf_counter() - t0
        self.counts["inferences"] += 1
        all_boxes = detections.boxes  # every person in the image, for snapshot redaction
        detections = self.roi(detections, (width, height))
        self.counts["detections"] += len(detections)
        tracks = self.tracker.update(detections.boxes, detections.scores, frame.ts)
        if self.snapshots is not None:
            self.snapshots.maybe_write(frame.image, frame.ts, person_boxes=all_boxes, track_ids=tracks.ids,
                                       track_boxes=tracks.boxes)
        scale = np.array([width, height, width, height], np.float64)
        self.last_ids = np.asarray(tracks.ids, np.int64)
        self.last_boxes = np.clip(np.asarray(tracks.boxes, np.float64) / scale, 0.0, 1.0)
        if self.identity is not None:
            self.identity(frame.image, frame.ts, self.last_ids, np.asarray(tracks.boxes, np.float64))
        events = self.analytics.update(frame.ts, self.last_ids, self.last_boxes)
        return FrameResult(events=events, detected=True, tracks=len(self.last_ids))

    def status(self) -> dict[str, Any]:
        """Counters and live analytics."""
        return {**self.counts, "inference_ms_mean": round(1000 * self.inference_s / max(1, self.counts["inferences"]), 2),
                "live": self.analytics.live()}
