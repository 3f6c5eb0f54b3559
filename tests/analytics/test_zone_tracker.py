"""ZoneTracker: point-in-polygon, enter/exit rules, occlusion tolerance, alerts, queues, staff zones."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.analytics.geometry import PolygonTest, points_in_polygon
from agent.analytics.staff import StaffRegistry
from agent.analytics.zones import ZoneTracker
from agent.config.vision_models import ZoneConfig

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SQUARE = [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)]
IN_PT, OUT_PT = np.array([[0.5, 0.5]]), np.array([[0.95, 0.5]])
NOBODY = (np.zeros(0, dtype=np.int64), np.zeros((0, 2)))


def make(staff: StaffRegistry | None = None, tracker: dict | None = None, **config) -> ZoneTracker:
    config = {"name": "z", "polygon": SQUARE, "enter_frames": 3, "exit_grace_s": 2.0} | config
    return ZoneTracker(ZoneConfig(**config), staff=staff, **(tracker or {}))


def visits(events) -> list:
    return [e for e in events if e.type == "zone_visit"]


# ------------------------------------------------------------------------------------------ polygon
@FAST
@given(st.integers(3, 12), st.integers(0, 2**31 - 1))
def test_point_in_polygon_matches_opencv_on_concave_polygons(n_vertices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    radii = rng.uniform(0.05, 0.45, n_vertices)  # star-shaped, often concave
    poly = np.stack([0.5 + radii * np.cos(angles), 0.5 + radii * np.sin(angles)], axis=1)
    pts = rng.uniform(0.0, 1.0, (200, 2))
    dist = np.array([cv2.pointPolygonTest(poly.astype(np.float32).reshape(-1, 1, 2), (float(x), float(y)), True)
                     for x, y in pts])
    clear = np.abs(dist) > 1e-4  # on-edge points may fall either way
    assert np.array_equal(points_in_polygon(pts, poly)[clear], (dist > 0)[clear])


def test_polygon_needs_three_vertices() -> None:
    with pytest.raises(ValueError):
        PolygonTest([(0, 0), (1, 1)])
    assert points_in_polygon(np.zeros((0, 2)), SQUARE).shape == (0,)


# ------------------------------------------------------------------------------------------ enter / exit
def test_visit_starts_after_enter_frames_with_the_first_frame_as_enter_time() -> None:
    zone = make()
    for k, expected in enumerate([0, 0, 1, 1]):
        zone.update(0.2 * k, [1], IN_PT)
        assert zone.occupancy == expected
    (v,) = zone.flush(1.0)
    assert (v.enter_ts, v.exit_ts, v.dwell_s, v.track_id) == (0.0, pytest.approx(0.6), pytest.approx(0.6), 1)


def test_an_outside_detection_breaks_the_enter_streak_but_a_miss_does_not() -> None:
    zone = make()
    seq = [IN_PT, IN_PT, OUT_PT, IN_PT, None, IN_PT, IN_PT]  # None: not detected in that frame
    for k, p in enumerate(seq):
        zone.update(0.2 * k, *(NOBODY if p is None else ([1], p)))
    (v,) = zone.flush(2.0)
    assert v.enter_ts == pytest.approx(0.6)  # the run after the outside detection, across the miss


def test_a_track_lost_for_good_ends_its_visit_after_the_grace() -> None:
    zone = make(exit_grace_s=2.0)
    for k in range(5):
        zone.update(0.2 * k, [1], IN_PT)
    assert visits(zone.update(2.6, *NOBODY)) == []  # 1.8 s unseen: still in the grace
    assert zone.occupancy == 1
    (v,) = visits(zone.update(2.8, *NOBODY))
    assert v.exit_ts == pytest.approx(0.8) and v.dwell_s == pytest.approx(0.8)
    assert zone.occupancy == 0


def test_zero_grace_ends_a_visit_on_the_first_frame_outside() -> None:
    zone = make(enter_frames=1, exit_grace_s=0.0)
    zone.update(0.0, [1], IN_PT)
    zone.update(0.2, [1], IN_PT)
    (v,) = visits(zone.update(0.4, [1], OUT_PT))
    assert (v.enter_ts, v.exit_ts) == (0.0, 0.2)


@FAST
@given(seed=st.integers(0, 2**31 - 1), n_breaks=st.integers(0, 6), grace=st.floats(0.8, 5.0),
       enter_frames=st.integers(1, 5))
def test_occlusion_and_excursions_shorter_than_the_grace_never_split_a_visit(seed, n_breaks, grace,
                                                                            enter_frames) -> None:
    rng = np.random.default_rng(seed)
    zone = make(enter_frames=enter_frames, exit_grace_s=grace)
    t, events, inside_ts = 0.0, [], []
    for _ in range(enter_frames + 2):  # settle in
        events += zone.update(t, [1], IN_PT + rng.normal(0, 0.01, (1, 2)))
        inside_ts.append(t)
        t += rng.uniform(0.1, 0.3)
    for _ in range(n_breaks):
        # a break shorter than the grace (measured from the last inside detection): unseen or seen outside
        until = inside_ts[-1] + rng.uniform(0.0, grace - 0.05)
        while t < until:
            events += zone.update(t, *(NOBODY if rng.random() < 0.5 else ([1], OUT_PT)))
            t += rng.uniform(0.05, 0.3)
        t = min(t, inside_ts[-1] + grace - 0.01)
        for _ in range(int(rng.integers(1, 4))):
            events += zone.update(t, [1], IN_PT + rng.normal(0, 0.01, (1, 2)))
            inside_ts.append(t)
            t += rng.uniform(0.1, 0.3)
    assert zone.occupancy == len(zone.visitors()) == 1
    events += zone.update(inside_ts[-1] + grace + 0.01, *NOBODY)
    assert zone.occupancy == len(zone.visitors()) == 0
    (v,) = visits(events)
    assert v.enter_ts == pytest.approx(inside_ts[0]) and v.exit_ts == pytest.approx(inside_ts[-1])


def test_an_absence_longer_than_the_grace_splits_the_visit() -> None:
    zone = make(enter_frames=1, exit_grace_s=1.0)
    events = []
    for t in [0.0, 0.2, 0.4, 1.6, 1.8]:
        events += zone.update(t, *(([1], IN_PT) if t not in (1.6,) else NOBODY))
    events += zone.flush(2.0)
    assert [(v.enter_ts, v.exit_ts) for v in visits(events)] == [(0.0, 0.4), (1.8, 1.8)]


# ------------------------------------------------------------------------------------------ id switch
def _switch_inside(zone: ZoneTracker) -> list:
    events = []
    for k in range(5):  # walking slowly inside
        events += zone.update(0.2 * k, [1], np.array([[0.4 + 0.02 * k, 0.5]]))
    events += zone.update(1.0, *NOBODY)  # occluded
    for k in range(6, 10):  # a new id appears where id 1 was heading
        events += zone.update(0.2 * k, [2], np.array([[0.4 + 0.02 * k, 0.5]]))
    return events + zone.flush(5.0)


def test_an_id_switch_inside_the_zone_does_not_split_the_visit() -> None:
    zone = make(exit_grace_s=2.0)
    (v,) = visits(_switch_inside(zone))
    assert (v.track_id, v.enter_ts, v.exit_ts) == (2, 0.0, pytest.approx(1.8))
    assert zone.relinks == 1
    split = visits(_switch_inside(make(exit_grace_s=2.0, tracker={"relink_max_gap_s": 0.0})))
    assert len(split) == 2  # without continuity: two shorter visits


# ------------------------------------------------------------------------------------------ alerts
def test_loitering_alert_fires_once_per_visit() -> None:
    zone = make(enter_frames=1, exit_grace_s=1.0, loiter_after_s=5.0)
    events = []
    for k in range(60):  # 12 s inside
        events += zone.update(0.2 * k, [1], IN_PT)
    events += zone.update(14.0, *NOBODY)
    for k in range(40):  # a second, 8 s visit
        events += zone.update(20.0 + 0.2 * k, [1], IN_PT)
    alerts = [e for e in events if e.type == "zone_loitering"]
    assert len(alerts) == 2
    assert alerts[0].ts == pytest.approx(5.2) and alerts[0].dwell_s > 5.0 and alerts[0].enter_ts == 0.0


def _crowd(zone: ZoneTracker, people: int, t0: float, t1: float) -> list:
    events, t = [], t0
    while t < t1:
        ids = np.arange(people)
        events += zone.update(t, ids, np.column_stack([np.linspace(0.3, 0.7, people), np.full(people, 0.5)]))
        t += 0.2
    return events


def test_crowding_alerts_after_the_duration_once_and_clears() -> None:
    zone = make(enter_frames=1, exit_grace_s=0.5, crowd_max=2, crowd_for_s=3.0)
    assert _crowd(zone, 3, 0.0, 2.0) == []  # over the limit, but not for long enough
    assert [e.type for e in _crowd(zone, 2, 2.0, 4.0) if e.type != "zone_visit"] == []
    events = [e for e in _crowd(zone, 4, 4.0, 10.0) if e.type != "zone_visit"]
    (alert,) = events
    assert alert.type == "zone_crowding" and alert.ts == pytest.approx(7.0) and alert.occupancy == 4
    events = _crowd(zone, 1, 10.0, 12.0)  # people leave; their visits end after the grace
    cleared = [e for e in events if e.type == "zone_crowding_cleared"]
    assert len(cleared) == 1 and cleared[0].occupancy == 4 and cleared[0].enter_ts == pytest.approx(4.0)


def test_flush_clears_an_active_crowding_alert() -> None:
    zone = make(enter_frames=1, crowd_max=1, crowd_for_s=0.0)
    assert [e.type for e in _crowd(zone, 2, 0.0, 0.3)] == ["zone_crowding"]
    types = [e.type for e in zone.flush(1.0)]
    assert types.count("zone_visit") == 2 and types[-1] == "zone_crowding_cleared"


# ------------------------------------------------------------------------------------------ queues / staff
def test_queue_length_and_wait_exclude_staff() -> None:
    staff = StaffRegistry()
    staff.mark(99, "manual")
    zone = make(staff=staff, kind="queue", enter_frames=1, service_s_per_person=30.0)
    ids = np.array([1, 2, 3, 99])
    zone.update(0.0, ids, np.tile(IN_PT, (4, 1)))
    assert zone.occupancy == 4 and zone.queue_length == 3 and zone.queue_wait_s == 90.0


def test_a_staff_zone_marks_tracks_and_their_events_are_flagged() -> None:
    staff = StaffRegistry()
    counter = make(staff=staff, name="counter", kind="staff", polygon=[(0, 0), (0.3, 0), (0.3, 0.3), (0, 0.3)])
    shelf = make(staff=staff, name="shelf", enter_frames=1, exit_grace_s=0.5)
    for k in range(4):
        counter.update(0.2 * k, [7, 8], np.array([[0.1, 0.1], [0.5, 0.5]]))
        shelf.update(0.2 * k, [7, 8], np.array([[0.1, 0.1], [0.5, 0.5]]))
    assert staff.is_staff(7) and not staff.is_staff(8) and staff.reason(7) == "zone:counter"
    for k in range(4, 8):
        shelf.update(0.2 * k, [7, 8], np.array([[0.5, 0.5], [0.5, 0.5]]))
    assert shelf.occupancy == 2 and shelf.customer_occupancy == 1
    flags = {v.track_id: v.staff for v in visits(shelf.flush(3.0))}
    assert flags == {7: True, 8: False}


# ------------------------------------------------------------------------------------------ memory / misc
def test_state_of_passers_by_is_pruned() -> None:
    zone = make(tracker={"forget_s": 3.0})
    for k in range(2000):
        zone.update(0.2 * k, [k], OUT_PT)
    assert len(zone._table) <= (3.0 + 1.0) / 0.2 + 2


def test_event_dicts_leave_out_fields_that_do_not_apply() -> None:
    zone = make(enter_frames=1)
    zone.update(0.0, [1], IN_PT)
    (v,) = zone.flush(0.5)
    assert v.as_dict() == {"type": "zone_visit", "zone": "z", "ts": 0.0, "track_id": 1, "enter_ts": 0.0,
                           "exit_ts": 0.0, "dwell_s": 0.0, "staff": False}
