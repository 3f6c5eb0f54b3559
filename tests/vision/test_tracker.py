"""ByteTracker behaviour on synthetic trajectories (identity through occlusion, low-score recovery, irregular
detection times, tentative tracks), the assignment solver against brute force, and re-linking lost tracks by
appearance on a real clip with the real detector and re-id model."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.vision.bytetrack import ByteTracker
from agent.vision.tracker import Tracks, iou_matrix, linear_assignment, make_tracker


def _box(cx: float, cy: float, w: float = 40, h: float = 100) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _run(tracker, frames, times=None):  # noqa: ANN001, ANN202
    out = []
    for i, (boxes, scores) in enumerate(frames):
        ts = None if times is None else times[i]
        out.append(tracker.update(np.array(boxes, float).reshape(-1, 4), np.array(scores, float), ts=ts))
    return out


# ---------------------------------------------------------------- assignment


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_linear_assignment_is_optimal_with_unmatched_cost(n: int, m: int, data) -> None:  # noqa: ANN001
    cost = np.array(data.draw(st.lists(st.lists(st.floats(0, 1.2), min_size=m, max_size=m), min_size=n,
                                       max_size=n)))
    limit = 0.8
    matches, rows, cols = linear_assignment(cost, limit)
    assert np.all(cost[matches[:, 0], matches[:, 1]] <= limit)
    assert sorted([*matches[:, 0], *rows]) == list(range(n)) and sorted([*matches[:, 1], *cols]) == list(range(m))

    def total(pairs) -> float:  # noqa: ANN001
        return sum(cost[r, c] for r, c in pairs) + (n + m - 2 * len(pairs)) * limit / 2

    candidates = [list(zip(rs, cs)) for k in range(min(n, m) + 1) for rs in itertools.combinations(range(n), k)
                  for cs in itertools.permutations(range(m), k)]
    best = min(total(p) for p in candidates if all(cost[r, c] <= limit for r, c in p))
    assert total(matches.tolist()) == pytest.approx(best, abs=1e-9)


def test_iou_matrix_basics() -> None:
    a = np.array([_box(50, 50), _box(200, 50)])
    iou = iou_matrix(a, a)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == 0.0 and iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


# ---------------------------------------------------------------- ByteTracker


def test_first_frame_is_confirmed_and_a_one_frame_false_positive_never_gets_an_id() -> None:
    trk = ByteTracker(frame_rate=10)
    out = _run(trk, [([_box(100, 100)], [0.9]),
                     ([_box(102, 100), _box(400, 100)], [0.9, 0.9]),   # a flash at x=400
                     ([_box(104, 100)], [0.9]),
                     ([_box(106, 100)], [0.9])])
    assert [t.ids.tolist() for t in out] == [[1], [1], [1], [1]]
    assert out[1].det_index.tolist() == [0]


def test_person_appearing_later_is_confirmed_on_second_frame() -> None:
    trk = ByteTracker(frame_rate=10)
    out = _run(trk, [([_box(100, 100)], [0.9]),
                     ([_box(102, 100), _box(300, 100)], [0.9, 0.8]),
                     ([_box(104, 100), _box(305, 100)], [0.9, 0.8])])
    assert out[1].ids.tolist() == [1]
    assert sorted(out[2].ids.tolist()) == [1, 2]


def test_two_people_crossing_keep_their_ids() -> None:
    trk = ByteTracker(frame_rate=10)
    frames = []
    for k in range(30):  # A walks right, B walks left, slightly lower (partly occluding in the middle)
        frames.append(([_box(100 + 10 * k, 200), _box(390 - 10 * k, 215)], [0.9, 0.85]))
    out = _run(trk, frames)
    first = {int(i): b[0] for i, b in zip(out[0].ids, out[0].boxes)}
    last = {int(i): b[0] for i, b in zip(out[-1].ids, out[-1].boxes)}
    assert sorted(first) == sorted(last) == [1, 2]
    a = min(first, key=first.get)  # the one starting on the left ends on the right
    assert last[a] == max(last.values())


def test_low_score_detections_keep_an_occluded_person_tracked() -> None:
    frames = [([_box(100 + 5 * k, 200)], [0.9 if k < 5 or k > 10 else 0.3]) for k in range(16)]
    out = _run(ByteTracker(frame_rate=10), frames)
    assert all(t.ids.tolist() == [1] for t in out)  # reported through the low-score stretch, same id


def test_lost_within_buffer_keeps_id_and_after_buffer_gets_new_id() -> None:
    def walk(gap_s: float) -> list[list[int]]:
        trk = ByteTracker(frame_rate=10, track_buffer_s=1.0)
        times, frames = [], []
        for k in range(10):
            times.append(k * 0.1)
            frames.append(([_box(100 + 3 * k, 200)], [0.9]))
        for j in range(5):  # re-appears where the motion model expects it
            t = 0.9 + gap_s + j * 0.1
            times.append(t)
            frames.append(([_box(100 + 30 * t, 200)], [0.9]))
        times.insert(10, 0.9 + gap_s / 2)
        frames.insert(10, ([], []))
        return [t.ids.tolist() for t in _run(trk, frames, times)]

    kept = walk(0.6)
    assert kept[-1] == [1]
    renewed = walk(2.0)
    assert renewed[-1] == [2]


def test_irregular_detection_times_use_elapsed_time_for_prediction() -> None:
    """Motion gating makes detection times irregular: a person 40 px wide moving 150 px/s, detected at 10 Hz
    and then again after 0.6 s (90 px further: no overlap with the last box) is still the same person."""
    times = [0.1 * k for k in range(8)] + [0.7 + 0.6, 0.7 + 0.7]
    frames = [([_box(100 + 150 * t, 200)], [0.9]) for t in times]
    assert [t.ids.tolist() for t in _run(ByteTracker(frame_rate=10), frames, times)][-2:] == [[1], [1]]
    # the same detections treated as consecutive frames (no timestamps) lose the person
    no_ts = [t.ids.tolist() for t in _run(ByteTracker(frame_rate=10), frames)]
    assert no_ts[-1] != [1]


def test_reset_forgets_tracks_and_restarts_ids() -> None:
    trk = ByteTracker(frame_rate=10)
    _run(trk, [([_box(100, 100)], [0.9])] * 3)
    trk.reset()
    out = trk.update(np.array([_box(500, 100)]), np.array([0.9]), ts=0.0)
    assert out.ids.tolist() == [1]


def test_empty_input_and_shapes() -> None:
    trk = ByteTracker()
    out = trk.update(np.zeros((0, 4)), np.zeros((0,)), ts=0.0)
    assert isinstance(out, Tracks) and len(out) == 0 and out.boxes.shape == (0, 4)
    with pytest.raises(ValueError):
        trk.update(np.zeros((2, 4)), np.zeros((1,)))


def test_library_bytetrack_runs_behind_the_same_interface() -> None:
    trk = make_tracker("library-bytetrack", frame_rate=10)
    out = _run(trk, [([_box(100 + 3 * k, 200), _box(300, 200)], [0.9, 0.9]) for k in range(5)], [k / 10 for k in range(5)])
    assert sorted(out[-1].ids.tolist()) == sorted(set(out[-1].ids.tolist())) and len(out[-1]) == 2
    assert out[0].ids.tolist() == []  # the library never labels a track on the frame it is born
    assert out[-1].boxes.shape == (2, 4) and set(out[-1].det_index.tolist()) == {0, 1}
    with pytest.raises(ValueError):
        make_tracker("nope")


# ---------------------------------------------------------------- appearance re-link (real detector + re-id)


@pytest.fixture(scope="module")
def walking_pair(shared_dir: Path):  # noqa: ANN201
    from agent.vision.source import FrameSource
    from models.detectors import build_detector

    detector = build_detector("yolox-nano", shared_dir / "models", threads=2, score_threshold=0.1)
    frames = list(FrameSource(shared_dir / "data" / "videos" / "face-demographics-walking.gif", live=False))
    return frames, [detector.detect(f.image) for f in frames]


def test_appearance_relinks_two_people_after_an_occlusion_without_swapping(walking_pair, shared_dir: Path) -> None:  # noqa: ANN001
    from agent.vision.reid import PersonReid

    frames, dets = walking_pair
    assert all(len(d) == 2 for d in dets[:20])
    reid = PersonReid.from_registry(shared_dir / "models")
    gap = range(10, 22)  # 1 s with no detections (both walk behind something)

    def track(with_reid: bool) -> tuple[list[Tracks], ByteTracker]:
        trk = ByteTracker(frame_rate=12)
        out = []
        for i, (frame, d) in enumerate(zip(frames, dets)):
            boxes, scores = (d.boxes, d.scores) if i not in gap else (np.zeros((0, 4)), np.zeros(0))
            embed = reid.embedder(frame.image, boxes) if with_reid else None
            out.append(trk.update(boxes, scores, frame.ts, embed=embed))
        return out, trk

    plain, _ = track(False)
    assert len({int(i) for t in plain for i in t.ids}) == 4  # IoU alone: both get new identities
    linked, trk = track(True)
    assert {int(i) for t in linked for i in t.ids} == {1, 2} and trk.relinked == 2

    def id_of_leftmost(t: Tracks) -> int:
        return int(t.ids[np.argmin(t.boxes[:, 0])])

    # the left/right order of the two people does not change in this clip: ids must follow them
    before, after = linked[9], linked[25]
    assert id_of_leftmost(before) == id_of_leftmost(after)
