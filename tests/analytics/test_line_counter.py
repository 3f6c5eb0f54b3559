"""LineCounter: direction convention, hysteresis, segment extent, id switches, simultaneous crossings, edge lines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.analytics.lines import LineCounter
from agent.analytics.staff import StaffRegistry
from agent.config.vision_models import LineConfig
from tests.analytics.synth import Frame, frame_times, frames_from_tracks, run, single, straight_walk

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
H = 0.03


def door(**kwargs) -> LineCounter:
    """Horizontal line y = 0.5 over x ∈ [0.1, 0.9], drawn left→right: IN = moving down."""
    return LineCounter(LineConfig(name="door", start=(0.1, 0.5), end=(0.9, 0.5), hysteresis=H), **kwargs)


def feed_ds(counter: LineCounter, ds, x: float = 0.5, dt: float = 0.2, track_id: int = 1) -> list:
    """Feed signed distances to the door line as one track's anchors at column x."""
    out = []
    for k, d in enumerate(ds):
        out += counter.update(k * dt, [track_id], np.array([[x, 0.5 + d]]))
    return out


# ------------------------------------------------------------------------------------------ direction
@pytest.mark.parametrize(
    ("start", "end", "move_from", "move_to", "expected"),
    [
        ((0.1, 0.5), (0.9, 0.5), (0.5, 0.3), (0.5, 0.7), "in"),    # left→right line, moving down = IN
        ((0.1, 0.5), (0.9, 0.5), (0.5, 0.7), (0.5, 0.3), "out"),   # moving up = OUT
        ((0.9, 0.5), (0.1, 0.5), (0.5, 0.3), (0.5, 0.7), "out"),   # right→left line flips it
        ((0.5, 0.1), (0.5, 0.9), (0.7, 0.5), (0.3, 0.5), "in"),    # top→bottom line: IN = moving left
        ((0.5, 0.9), (0.5, 0.1), (0.3, 0.5), (0.7, 0.5), "in"),    # bottom→top line: IN = moving right
        ((0.1, 0.1), (0.9, 0.9), (0.7, 0.3), (0.3, 0.7), "in"),    # diagonal ↘: IN = down-left
    ],
)
def test_in_is_start_to_end_turned_clockwise_on_the_image(start, end, move_from, move_to, expected) -> None:
    counter = LineCounter(LineConfig(name="l", start=start, end=end))
    ts = np.linspace(0.0, 2.0, 11)
    crossings = run(counter, single(ts, straight_walk(move_from, move_to, ts)))
    assert [c.direction for c in crossings] == [expected]
    assert (counter.in_count, counter.out_count) == ((1, 0) if expected == "in" else (0, 1))


def test_crossing_time_and_position_are_interpolated() -> None:
    counter = door()
    counter.update(0.0, [1], np.array([[0.4, 0.40]]))
    (c,) = counter.update(1.0, [1], np.array([[0.6, 0.60]]))
    assert c.ts == pytest.approx(0.5)
    assert c.position == pytest.approx((0.5, 0.5))
    assert c.confirmed_ts == 1.0
    assert c.as_dict()["type"] == "line_crossing"


# ------------------------------------------------------------------------------------------ hysteresis
def band_oracle(ds: list[float], band: float = H) -> list[int]:
    """Reference: sides are set only beyond ±band; every change of established side is one crossing."""
    side, out = 0, []
    for d in ds:
        c = 1 if d > band else -1 if d < -band else 0
        if c and side and c != side:
            out.append(c)
        if c:
            side = c
    return out


@FAST
@given(st.lists(st.floats(-0.2, 0.2), min_size=1, max_size=80))
def test_counts_equal_the_band_oracle_and_alternate(ds: list[float]) -> None:
    assume(all(abs(abs(d) - H) > 1e-6 for d in ds))
    crossings = feed_ds(door(), ds)
    got = [1 if c.direction == "in" else -1 for c in crossings]
    assert got == band_oracle(ds)
    assert all(a != b for a, b in zip(got, got[1:])), "a track never counts twice in the same direction in a row"


@FAST
@given(st.lists(st.floats(-H + 1e-3, H - 1e-3), min_size=1, max_size=60),
       st.lists(st.floats(0.15, 0.85), min_size=60, max_size=60), st.booleans())
def test_jitter_on_the_line_never_counts_twice(jitter: list[float], xs: list[float], leaves_in: bool) -> None:
    """Approach, jitter across the line inside the band for a while, then leave: one crossing or none."""
    counter = door()
    ds = [-0.15, -0.08, *jitter, 0.08 if leaves_in else -0.08, 0.15 if leaves_in else -0.15]
    out = []
    for k, d in enumerate(ds):
        out += counter.update(0.2 * k, [1], np.array([[xs[k % len(xs)], 0.5 + d]]))
    assert [c.direction for c in out] == (["in"] if leaves_in else [])


def test_back_and_forth_across_the_full_band_alternates() -> None:
    crossings = feed_ds(door(), [-0.1, 0.1, -0.1, 0.1, -0.1])
    assert [c.direction for c in crossings] == ["in", "out", "in", "out"]


def test_track_first_seen_inside_the_band_gets_no_side_until_it_leaves() -> None:
    counter = door()
    feed_ds(counter, [0.01, -0.02, 0.02])
    assert counter.side_of(1) == 0
    assert feed_ds(counter, [0.1]) == []  # leaving the band sets the side, without a crossing
    assert counter.side_of(1) == 1
    assert [c.direction for c in feed_ds(counter, [-0.1])] == ["out"]


def test_min_frames_ignores_a_one_frame_spike_beyond_the_band() -> None:
    counter = door(min_frames=2)
    assert feed_ds(counter, [-0.1, -0.1, 0.1, -0.1, -0.1]) == []
    assert [c.direction for c in feed_ds(door(min_frames=2), [-0.1, -0.1, 0.1, 0.1])] == ["in"]


# ------------------------------------------------------------------------------------------ segment extent
@pytest.mark.parametrize(("x", "counted"), [(0.5, True), (0.11, True), (0.915, True), (0.95, False), (0.02, False)])
def test_only_crossings_through_the_segment_count(x: float, counted: bool) -> None:
    counter = door()  # segment x ∈ [0.1, 0.9], margin 0.02
    ts = np.linspace(0.0, 1.0, 6)
    crossings = run(counter, single(ts, straight_walk((x, 0.3), (x, 0.7), ts)))
    assert len(crossings) == (1 if counted else 0)


def test_detour_around_the_segment_end_does_not_count_the_same_direction_twice() -> None:
    counter = door()
    path = [(0.85, 0.3), (0.85, 0.7),   # IN through the segment (near its end)
            (0.97, 0.7), (0.97, 0.3),   # back up around the end: side changes, not a crossing
            (0.85, 0.3), (0.85, 0.7)]   # IN through the segment again: same track, same direction
    out = []
    for k, p in enumerate(path):
        out += counter.update(0.3 * k, [1], np.array([p]))
    assert [c.direction for c in out] == ["in"]
    out = counter.update(2.0, [1], np.array([[0.85, 0.3]]))  # and OUT through the segment counts
    assert [c.direction for c in out] == ["out"]


# ------------------------------------------------------------------------------------------ id switches
@FAST
@given(x=st.floats(0.2, 0.8), speed=st.floats(0.15, 0.6), seed=st.integers(0, 2**31 - 1),
       switch_frac=st.floats(0.0, 1.0), gap_frames=st.integers(0, 3), noise=st.floats(0.0, 0.004),
       down=st.booleans())
def test_an_id_switch_anywhere_on_the_path_still_counts_once(x, speed, seed, switch_frac, gap_frames, noise,
                                                            down) -> None:
    rng = np.random.default_rng(seed)
    y0, y1 = (0.2, 0.8) if down else (0.8, 0.2)
    n = max(6, int(0.6 / speed / 0.2))
    ts = frame_times(n, rng)
    pts = straight_walk((x, y0), (x, y1), ts) + rng.normal(0.0, noise, size=(n, 2))
    # the first id is seen at least twice (so it has a velocity) and the last frame is observed
    k = 2 + int(round(switch_frac * (n - 3 - gap_frames)))
    counter = door()
    out = []
    for i, (t, p) in enumerate(zip(ts, pts)):
        if k <= i < k + gap_frames:
            out += counter.update(t, np.zeros(0, int), np.zeros((0, 2)))  # nobody detected (occlusion)
            continue
        out += counter.update(t, [1 if i < k else 2], p[None, :])
    assert [c.direction for c in out] == ["in" if down else "out"]


def test_without_continuity_an_id_switch_on_the_line_loses_the_crossing() -> None:
    """The failure mode continuity fixes: the old id dies inside the band, the new one is born inside it."""
    ds = [-0.2, -0.12, -0.05, -0.01, 0.02, 0.06, 0.12, 0.2]
    ids = [1, 1, 1, 1, 2, 2, 2, 2]

    def go(counter: LineCounter) -> list:
        out = []
        for k, (d, i) in enumerate(zip(ds, ids)):
            out += counter.update(0.2 * k, [i], np.array([[0.5, 0.5 + d]]))
        return out

    assert go(door(relink_max_gap_s=0.0)) == []
    counter = door()
    assert [(c.direction, c.track_id) for c in go(counter)] == [("in", 2)]
    assert counter.relinks == 1


def test_relink_links_staff_identity() -> None:
    staff = StaffRegistry()
    counter = door(staff=staff)
    staff.mark(1, "zone:counter")
    counter.update(0.0, [1], np.array([[0.5, 0.30]]))
    counter.update(0.2, [1], np.array([[0.5, 0.40]]))
    (c,) = counter.update(0.4, [2], np.array([[0.5, 0.54]]))
    assert c.track_id == 2 and c.staff and staff.is_staff(2)


def test_tracker_velocities_are_used_for_the_prediction() -> None:
    """Seen once (no velocity of its own), lost for 0.6 s: only the tracker's velocity predicts the new id."""
    def go(velocity: np.ndarray | None) -> LineCounter:
        counter = door()
        counter.update(0.0, [1], np.array([[0.5, 0.40]]), None if velocity is None else velocity[None, :])
        counter.update(0.6, [2], np.array([[0.5, 0.58]]))
        return counter

    assert go(None).relinks == 0 and go(None).in_count == 0
    counter = go(np.array([0.0, 0.3]))
    assert counter.relinks == 1 and counter.in_count == 1


def test_a_new_person_far_from_a_lost_track_does_not_inherit_it() -> None:
    counter = door()
    counter.update(0.0, [1], np.array([[0.2, 0.45]]))
    counter.update(0.2, [2], np.array([[0.8, 0.6]]))  # far away: a different person, no side history
    assert counter.relinks == 0 and counter.side_of(2) == 1


# ------------------------------------------------------------------------------------------ simultaneous
@FAST
@given(k=st.integers(1, 12), seed=st.integers(0, 2**31 - 1), same_speed=st.booleans(), switch=st.booleans())
def test_simultaneous_crossings_all_count(k: int, seed: int, same_speed: bool, switch: bool) -> None:
    rng = np.random.default_rng(seed)
    xs = np.linspace(0.15, 0.85, k)
    downs = rng.random(k) < 0.5
    ts = frame_times(12, rng)
    tracks = {}
    for i, (x, down) in enumerate(zip(xs, downs)):
        y0, y1 = (0.25, 0.75) if down else (0.75, 0.25)
        t_end = ts[-1] if same_speed else ts[-1] * rng.uniform(0.7, 1.0)
        pts = straight_walk((x, y0), (x, y1), ts)
        if not same_speed:
            f = np.clip((ts - ts[0]) / (t_end - ts[0]), 0, 1)
            pts = np.array([x, y0]) + f[:, None] * (np.array([x, y1]) - np.array([x, y0]))
        tracks[i + 1] = (ts, pts)
    frames = frames_from_tracks(tracks, shuffle_rng=rng)
    if switch:  # every track switches id in the same frame, right at the line
        for f in frames[6:]:
            f.ids = f.ids + 100
    counter = door()
    crossings = run(counter, frames)
    assert counter.in_count == int(downs.sum()) and counter.out_count == int((~downs).sum())
    assert len({c.track_id for c in crossings}) == k


# ------------------------------------------------------------------------------------------ frame edges
def edge_walk(counter: LineCounter, start, end, n: int = 10, clip: bool = True) -> list:
    """Walk start→end, anchors clipped to the image (a box leaving the frame is clipped), then vanish."""
    ts = np.linspace(0.0, 2.0, n)
    pts = straight_walk(start, end, ts)
    if clip:
        pts = np.clip(pts, 0.0, 1.0)
    out = run(counter, single(ts, pts))
    out += counter.update(2.5, np.zeros(0, int), np.zeros((0, 2)))
    return out


@pytest.mark.parametrize(
    ("start", "end", "walk_from", "walk_to", "expected"),
    [
        ((0.0, 0.98), (1.0, 0.98), (0.5, 0.7), (0.5, 1.1), "in"),    # leaves through the bottom
        ((0.0, 0.98), (1.0, 0.98), (0.5, 1.05), (0.5, 0.7), "out"),  # enters from the bottom
        ((1.0, 0.01), (0.0, 0.01), (0.5, 0.3), (0.5, -0.1), "in"),   # top edge, IN = up
        ((0.985, 0.0), (0.985, 1.0), (1.1, 0.5), (0.7, 0.5), "in"),  # right edge, IN = left
        ((0.01, 0.0), (0.01, 1.0), (0.3, 0.5), (-0.1, 0.5), "in"),   # left edge, IN = left (leaving)
    ],
)
def test_lines_near_the_frame_edge_still_count(start, end, walk_from, walk_to, expected) -> None:
    counter = LineCounter(LineConfig(name="edge", start=start, end=end, hysteresis=H))
    assert [c.direction for c in edge_walk(counter, walk_from, walk_to)] == [expected]


def test_band_is_clipped_to_half_the_room_to_the_border() -> None:
    counter = LineCounter(LineConfig(name="edge", start=(0.0, 0.98), end=(1.0, 0.98), hysteresis=H))
    band_in, band_out = counter.bands(np.array([[0.5, 0.99]]))
    assert band_in[0] == pytest.approx(0.01) and band_out[0] == pytest.approx(H)
    # jitter within the clipped band still never counts twice
    ds = [-0.1, 0.005, -0.02, 0.009, -0.029, 0.008]
    crossings = [c for k, d in enumerate(ds) for c in counter.update(0.2 * k, [1], np.array([[0.5, 0.98 + d]]))]
    assert crossings == []


# ------------------------------------------------------------------------------------------ memory
def test_state_of_vanished_tracks_is_pruned() -> None:
    counter = door(forget_s=5.0)
    for k in range(3000):  # a new person every 0.2 s, each seen once
        counter.update(0.2 * k, [k], np.array([[0.5, 0.2]]))
    assert counter.tracked <= (5.0 + 1.0) / 0.2 + 2  # pruned at most once a second
    capped = door(forget_s=1e9, max_tracks=100)
    for k in range(500):
        capped.update(0.2 * k, [k], np.array([[0.5, 0.2]]))
    assert capped.tracked <= 100 + 6


def test_duplicate_ids_in_a_frame_use_the_first_row() -> None:
    counter = door()
    counter.update(0.0, [1, 1], np.array([[0.5, 0.3], [0.5, 0.9]]))
    assert counter.side_of(1) == -1


def test_empty_frames_and_mismatched_lengths() -> None:
    counter = door()
    assert counter.update(0.0, [], np.zeros((0, 2))) == []
    with pytest.raises(ValueError):
        counter.update(0.1, [1, 2], np.zeros((1, 2)))


def test_from_points_validates_through_the_config() -> None:
    with pytest.raises(ValueError):
        LineCounter.from_points("x", (0.5, 0.5), (0.5, 0.5))
    assert LineCounter.from_points("ok", (0, 0.5), (1, 0.5), hysteresis=0.05).hysteresis == 0.05


def test_frame_dataclass_roundtrip() -> None:  # keeps the helper honest
    f = Frame(0.0, np.array([1]), np.array([[0.1, 0.2]]))
    assert f.anchors.shape == (1, 2)
