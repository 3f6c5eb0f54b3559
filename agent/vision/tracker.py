"""Multi-object tracking interface: boxes of one frame in, persistent identities out.

- :class:`agent.vision.bytetrack.ByteTracker` — ours (numpy + scipy), the default (``"ours"``).
- :class:`LibraryByteTrack` — Roboflow ``trackers``' ``ByteTrackTracker`` behind the same interface
  (``"library-bytetrack"``), kept for comparison (docs/tracking.md has the measurements and why ours is the
  default).

Example:
    >>> tracker = make_tracker("ours", frame_rate=10)
    >>> t = tracker.update(np.array([[10, 10, 50, 110]]), np.array([0.9]), ts=0.0)
    >>> t = tracker.update(np.array([[12, 10, 52, 110]]), np.array([0.9]), ts=0.1)
    >>> t.ids.tolist(), t.boxes.shape
    ([1], (1, 4))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

TRACKERS = ("ours", "library-bytetrack")


@dataclass(frozen=True, slots=True)
class Tracks:
    """Confirmed tracks seen in the current frame.

    Attributes:
        ids: (M,) int64 track identities (≥ 1, never reused while the tracker lives).
        boxes: (M, 4) float32 xyxy pixels — the detection each track was matched to in this frame.
        scores: (M,) float32 detection scores.
        det_index: (M,) int64 index of that detection in the ``update`` input (to carry class ids, embeddings).
    """

    ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    det_index: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __len__(self) -> int:
        return len(self.ids)


class Tracker(Protocol):
    """What a tracker offers the pipeline."""

    def update(self, boxes: np.ndarray, scores: np.ndarray, ts: float | None = None) -> Tracks:
        """Associate (N, 4) xyxy pixel ``boxes`` with (N,) ``scores`` of the frame at ``ts`` seconds (None:
        one nominal frame after the previous call) and return the confirmed tracks matched in this frame."""
        ...

    def reset(self) -> None:
        """Forget every track (new video, camera moved)."""
        ...


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes → (N, M) float64.

    Example:
        >>> iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
        array([[1.        , 0.33333333, 0.        ]])
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def linear_assignment(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching where leaving a row or a column unmatched costs ``max_cost / 2`` — so a pair is
    only ever chosen when its cost is ≤ ``max_cost``, and one good pair is never traded for two mediocre ones
    (the ``lap.lapjv(extend_cost=True, cost_limit=…)`` formulation of the ByteTrack reference, solved exactly
    with ``scipy.optimize.linear_sum_assignment``).

    Returns:
        matches (K, 2) int64 ``(row, col)``, unmatched rows (R,), unmatched cols (C,).

    Example:
        >>> m, r, c = linear_assignment(np.array([[0.1, 0.7], [0.7, 9.0]]), max_cost=0.8)
        >>> m.tolist(), r.tolist(), c.tolist()
        ([[0, 0]], [1], [1])
    """
    cost = np.asarray(cost, np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.arange(n), np.arange(m)
    big = max_cost * 4 + 1.0
    ext = np.full((n + m, m + n), max_cost / 2)
    ext[:n, :m] = np.where(cost <= max_cost, cost, big)
    ext[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(ext)
    keep = (rows < n) & (cols < m)
    rows, cols = rows[keep], cols[keep]
    ok = cost[rows, cols] <= max_cost
    matches = np.stack([rows[ok], cols[ok]], axis=1).astype(np.int64)
    unmatched_rows = np.setdiff1d(np.arange(n), matches[:, 0])
    unmatched_cols = np.setdiff1d(np.arange(m), matches[:, 1])
    return matches, unmatched_rows, unmatched_cols


class LibraryByteTrack:
    """Roboflow ``trackers.ByteTrackTracker`` (with its own defaults) behind :class:`Tracker`.

    Needs the optional ``trackers`` package (installed with ``--no-deps``: its metadata requires the GUI build
    ``opencv-python``; ``opencv-python-headless`` provides the same ``cv2``). Detections it leaves unconfirmed
    (tracker id -1) are not returned.
    """

    def __init__(self, frame_rate: float = 30.0, **kwargs: object) -> None:
        try:
            import supervision as sv
            from trackers import ByteTrackTracker
        except ImportError as exc:  # pragma: no cover - depends on the optional install
            raise RuntimeError("the 'trackers' package is not installed: pip install --no-deps trackers "
                               "(and supervision)") from exc
        self._sv = sv
        self._tracker = ByteTrackTracker(frame_rate=frame_rate, **kwargs)

    def update(self, boxes: np.ndarray, scores: np.ndarray, ts: float | None = None) -> Tracks:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        dets = self._sv.Detections(xyxy=boxes, confidence=scores,
                                   data={"det_index": np.arange(len(boxes), dtype=np.int64)})
        out = self._tracker.update(dets, timestamp=ts)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else [], np.int64)
        keep = ids >= 0
        return Tracks(ids=ids[keep],
                      boxes=np.asarray(out.xyxy, np.float32).reshape(-1, 4)[keep],
                      scores=np.asarray(out.confidence if out.confidence is not None else np.ones(len(ids)),
                                        np.float32)[keep],
                      det_index=np.asarray(out.data.get("det_index", np.full(len(ids), -1)), np.int64)[keep])

    def reset(self) -> None:
        self._tracker.reset()


def make_tracker(name: str = "ours", *, frame_rate: float = 30.0, **kwargs: object) -> Tracker:
    """A tracker by name: ``"ours"`` (:class:`~agent.vision.bytetrack.ByteTracker`) or ``"library-bytetrack"``.
    ``kwargs`` go to the tracker's constructor."""
    if name == "ours":
        from agent.vision.bytetrack import ByteTracker

        return ByteTracker(frame_rate=frame_rate, **kwargs)  # type: ignore[arg-type]
    if name == "library-bytetrack":
        return LibraryByteTrack(frame_rate=frame_rate, **kwargs)
    raise ValueError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
