"""Per-track decisions: best faces kept, one decision per track (not per frame), re-decided only on a marked
quality gain; the identity hook in the camera pipeline; staff decisions mark the track staff."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from agent.config import CameraConfig
from agent.config.identity_models import IdentityConfig
from agent.config.vision_models import VisionConfig
from agent.identity.pipeline import IdentityHook
from agent.identity.track_faces import TrackFaces, pool
from agent.vision.processor import FrameProcessor
from agent.vision.source import Frame
from tests.identity.face_support import SHARED_MODELS, face_pipeline, video_frames
from models.detectors import build_detector


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_one_decision_per_track_until_evidence_improves_markedly() -> None:
    tf = TrackFaces(keep=6, decide_after=2, redecide_gain=0.25)
    e = _unit(1)
    assert tf.add(5, e, 0.9, 0.0) is None
    first = tf.add(5, e, 0.9, 0.1)  # evidence 2 * 0.9 / 6 = 0.3
    assert first is not None and not first.redecision and first.faces == 2 and first.quality == 0.3
    assert tf.add(5, e, 0.9, 0.2) is None  # 0.45: +0.15 is not enough
    again = tf.add(5, e, 0.9, 0.3)  # 0.6: +0.3
    assert again is not None and again.redecision and again.faces == 4
    assert tf.add(5, e, 0.9, 0.4) is None  # 0.75
    assert tf.decisions == 2


def test_better_faces_alone_can_trigger_a_redecision() -> None:
    tf = TrackFaces(keep=3, decide_after=3, redecide_gain=0.25)
    e = _unit(1)
    tf.add(2, e, 0.3, 0.0)
    tf.add(2, e, 0.3, 0.1)
    assert tf.add(2, e, 0.3, 0.2) is not None  # evidence 0.3
    assert tf.add(2, e, 0.5, 0.3) is None  # 0.3 replaced by 0.5: 0.367
    again = tf.add(2, e, 0.9, 0.4)  # 0.3, 0.5, 0.9 → 0.567
    assert again is not None and again.redecision and again.faces == 3


def test_best_faces_are_kept_and_pooled_by_quality() -> None:
    tf = TrackFaces(keep=2, decide_after=3, redecide_gain=0.5)
    good, bad = _unit(1), _unit(2)
    tf.add(1, bad, 0.1, 0.0)
    tf.add(1, good, 0.9, 0.1)
    decision = tf.add(1, good, 0.8, 0.2)  # the 0.1 face was dropped (keep=2) but 3 faces were seen
    assert decision is None or decision.faces == 2
    ended = tf.end([], 1.0)
    pooled = (decision or ended[0]).embedding
    assert float(pooled @ good) > 0.999
    weighted = pool(np.stack([good, bad]), np.array([0.9, 0.1]))
    assert float(weighted @ good) > float(weighted @ bad)
    assert abs(np.linalg.norm(weighted) - 1) < 1e-5


def test_track_that_ends_undecided_is_decided_once_at_its_end() -> None:
    tf = TrackFaces(keep=5, decide_after=3, redecide_gain=0.15)
    tf.add(9, _unit(3), 0.7, 0.0)
    assert tf.end([9], 0.5) == []  # still alive
    out = tf.end([], 3.0)
    assert [d.track_id for d in out] == [9] and out[0].faces == 1
    assert tf.end([], 4.0) == [] and len(tf) == 0


class RecordingObserver:
    """Stands in for the identity service; answers with a fixed kind."""

    def __init__(self, kind: str = "new", fail: bool = False) -> None:
        self.kind = kind
        self.fail = fail
        self.calls: list[tuple[str, int, np.ndarray, float, float]] = []
        self.ended: list[int] = []
        self.ended_with: dict[int, tuple[list[str], float | None]] = {}

    def observe(self, camera: str, track_id: int, embedding: np.ndarray, quality: float, ts: float) -> Any:
        self.calls.append((camera, track_id, embedding, quality, ts))
        if self.fail:
            raise RuntimeError("gallery unavailable")
        return SimpleNamespace(kind=self.kind, visitor_id=f"v{track_id}", gallery=self.kind, score=None)

    def end_track(self, camera: str, track_id: int, ts: float, *, zones: list[str] | None = None,
                  dwell_s: float | None = None) -> None:
        self.ended.append(track_id)
        self.ended_with[track_id] = (list(zones or []), dwell_s)


def _run(observer: RecordingObserver, zones: list[dict[str, Any]] | None = None) -> tuple[FrameProcessor,
                                                                                         IdentityHook]:
    camera = CameraConfig(name="faces", url="video.gif", identification=True,
                          analytics={"zones": zones or []})
    processor = FrameProcessor(camera, VisionConfig(), build_detector("yolox-nano", SHARED_MODELS, threads=1))
    hook = IdentityHook("faces", face_pipeline(), observer, staff=processor.analytics.staff,
                        zones=processor.analytics.zones)
    processor.identity = hook
    ts = 0.0
    for index, image in enumerate(video_frames()):
        ts = index * 0.085
        processor.process(Frame(image=image, ts=ts, index=index))
    hook.finish(ts + 0.1)
    return processor, hook


def test_hook_decides_each_person_once_then_only_on_more_evidence() -> None:
    observer = RecordingObserver()
    processor, hook = _run(observer)
    cfg = IdentityConfig()
    tracks = [c[1] for c in observer.calls]
    assert len(set(tracks)) == 2, "two seated people"
    faces = hook.status()["faces"]
    assert faces >= 2 * cfg.keep_per_track
    # one first decision per person; re-decisions only as the pooled evidence grows (never per frame)
    max_per_track = 1 + int(np.ceil(1.0 / cfg.redecide_gain))
    assert all(tracks.count(t) <= max_per_track for t in set(tracks))
    assert len(tracks) < faces / 3
    firsts = {t: next(c for c in observer.calls if c[1] == t) for t in set(tracks)}
    lasts = {t: [c for c in observer.calls if c[1] == t][-1] for t in set(tracks)}
    for t in firsts:
        assert lasts[t][3] >= firsts[t][3], "later decisions rest on more evidence"
    a, b = (lasts[t][2] for t in sorted(lasts))
    assert float(a @ b) < cfg.match_threshold, "the woman and the man are told apart"
    assert all(0 < c[3] <= 1 for c in observer.calls)
    assert sorted(observer.ended) == sorted(set(tracks))
    assert not processor.analytics.staff.is_staff(tracks[0])


def test_staff_decision_marks_the_track_staff() -> None:
    observer = RecordingObserver(kind="staff")
    processor, _ = _run(observer)
    assert observer.calls
    for _, track_id, *_ in observer.calls:
        assert processor.analytics.staff.is_staff(track_id)
        assert processor.analytics.staff.reason(track_id) == "identity:staff"


def test_failing_identity_service_does_not_stop_counting() -> None:
    observer = RecordingObserver(fail=True)
    processor, hook = _run(observer)
    assert observer.calls and hook.status()["errors"] >= len(observer.calls)
    assert processor.counts["inferences"] > 10 and processor.counts["detections"] > 0


def test_track_end_reports_zones_visited_and_dwell() -> None:
    observer = RecordingObserver()
    whole = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    empty_corner = [[0.0, 0.0], [0.05, 0.0], [0.05, 0.05], [0.0, 0.05]]
    _run(observer, zones=[{"name": "store", "polygon": whole}, {"name": "corner", "polygon": empty_corner}])
    assert observer.ended_with
    for zones, dwell in observer.ended_with.values():
        assert zones == ["store"]
        assert dwell is not None and 3.0 < dwell < 5.0  # the clip lasts 56 × 0.085 s


def test_a_track_whose_decision_cannot_change_is_settled() -> None:
    tf = TrackFaces(keep=2, decide_after=2, redecide_gain=0.25)
    e = _unit(4)
    tf.add(3, e, 0.5, 0.0)
    assert not tf.settled(3)
    tf.add(3, e, 0.6, 0.1)  # decided at evidence 0.55: perfect faces (evidence 1.0) could still re-decide
    assert tf.decided(3) and not tf.settled(3)
    assert tf.add(3, e, 1.0, 0.2) is not None  # 0.6 + 1.0 → 0.8 ≥ 0.55 + 0.25: decided again at 0.8
    assert tf.settled(3), "0.8 + 0.25 > 1: nothing can re-decide it, its faces need not be searched"
