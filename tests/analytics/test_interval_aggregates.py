"""IntervalAggregator and CameraAnalytics: interval alignment, empty intervals, time weighting, visits by end
time, staff exclusion, queues, heatmap units, body schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.analytics.aggregates import IntervalAggregator
from agent.analytics.camera import CameraAnalytics, summarize_events
from agent.analytics.lines import Crossing
from agent.analytics.staff import StaffRegistry
from agent.analytics.zones import ZoneEvent
from agent.config.vision_models import CameraAnalyticsConfig, LineConfig, VisionConfig, ZoneConfig

QUEUE = ZoneConfig(name="checkout", polygon=[(0.6, 0.6), (1, 0.6), (1, 1), (0.6, 1)], kind="queue",
                   service_s_per_person=40.0)
SHELF = ZoneConfig(name="shelf", polygon=[(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)])
BODY_KEYS = {"camera", "interval_start", "interval_s", "coverage_s", "frames", "lines", "zones", "heatmap",
             "staff_excluded", "late"}


def agg(**kwargs) -> IntervalAggregator:
    return IntervalAggregator("cam1", 60.0, (4, 2), lines=["door"], zones=[SHELF, QUEUE], **kwargs)


def crossing(ts: float, direction: str = "in", track_id: int = 1, staff: bool = False) -> Crossing:
    return Crossing("door", direction, ts, track_id, (0.5, 0.5), ts, staff)


def visit(enter: float, exit_: float, zone: str = "shelf", track_id: int = 1) -> ZoneEvent:
    return ZoneEvent("zone_visit", zone, exit_, track_id, enter, exit_, exit_ - enter)


def test_intervals_align_to_multiples_of_the_interval() -> None:
    a = agg()
    a.add_frame(125.3, np.array([[0.5, 0.5]]))
    a.add_crossings([crossing(130.0)])
    assert not a.due(179.9) and a.due(180.0)
    (body,) = a.flush(180.0)
    assert body["interval_start"] == 120.0 and body["interval_s"] == 60.0
    assert body["lines"]["door"] == {"in": 1, "out": 0}
    assert a.flush(200.0) == []


def test_lateness_holds_an_interval_open_for_late_visits() -> None:
    a = agg(lateness_s=5.0)
    a.add_frame(10.0)
    assert not a.due(62.0)
    a.add_zone_events([visit(40.0, 58.0)])  # ended in [0, 60), emitted after its exit grace
    (body,) = a.flush(65.0)
    assert body["zones"]["shelf"]["visits"] == 1 and body["late"] == 0


def test_empty_intervals_still_produce_bodies_with_zeros() -> None:
    a = agg()
    a.add_frame(10.0, np.array([[0.1, 0.1]]), occupancy={"shelf": 1})
    a.add_frame(250.0, np.array([[0.1, 0.1]]), occupancy={"shelf": 1})
    bodies = a.flush(400.0)
    assert [b["interval_start"] for b in bodies] == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]
    empty = bodies[1]
    assert set(empty) == BODY_KEYS
    assert empty["coverage_s"] == 0 and empty["frames"] == 0
    assert empty["lines"] == {"door": {"in": 0, "out": 0}}
    assert empty["zones"]["shelf"] == {"occupancy_mean": 0.0, "occupancy_max": 0, "visits": 0,
                                       "dwell_s": {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0}}
    assert empty["zones"]["checkout"]["queue"] == {"length_mean": 0.0, "length_max": 0, "wait_s_mean": 0.0}
    assert sum(empty["heatmap"]["counts"]) == 0 and len(empty["heatmap"]["counts"]) == 8
    assert bodies[0]["coverage_s"] > 0 and bodies[0]["frames"] == 1


def test_a_visit_belongs_to_the_interval_in_which_it_ended() -> None:
    a = agg()
    a.add_frame(1.0)
    a.add_zone_events([visit(50.0, 70.0), visit(61.0, 64.0), visit(62.0, 90.0)])
    b0, b1 = a.flush(130.0)
    assert b0["zones"]["shelf"]["visits"] == 0
    z = b1["zones"]["shelf"]
    assert z["visits"] == 3
    assert z["dwell_s"] == {"count": 3, "mean": pytest.approx(17.0), "p50": 20.0, "p90": pytest.approx(26.4)}


def test_occupancy_mean_is_time_weighted_not_per_frame() -> None:
    """30 s of 2 people at 1 fps then 30 s of nobody at 10 fps: the mean is ~1, a per-frame mean would be 0.18."""
    a = agg()
    for t in np.arange(1.0, 30.5, 1.0):
        a.add_frame(float(t), occupancy={"shelf": 2})
    for t in np.arange(30.1, 60.05, 0.1):
        a.add_frame(float(t), occupancy={"shelf": 0})
    body = a.flush(121.0)[0]
    z = body["zones"]["shelf"]
    assert z["occupancy_mean"] == pytest.approx(2 * 29.2 / 59.2, abs=0.01)
    assert z["occupancy_max"] == 2
    assert body["coverage_s"] == pytest.approx(59.2, abs=0.01)


def test_a_frame_straddling_a_boundary_is_split_between_intervals() -> None:
    a = agg()
    a.add_frame(59.5, occupancy={"shelf": 0})
    a.add_frame(60.5, occupancy={"shelf": 4})
    b0, b1 = a.flush(120.0)
    assert b0["coverage_s"] == pytest.approx(0.7) and b1["coverage_s"] == pytest.approx(0.5)
    assert b0["zones"]["shelf"]["occupancy_mean"] == pytest.approx(4 * 0.5 / 0.7, abs=1e-3)


def test_heatmap_counts_are_milliseconds_of_presence_per_cell() -> None:
    a = agg()
    for t in np.arange(0.0, 60.01, 0.5):
        a.add_frame(float(t), np.array([[0.1, 0.1], [0.9, 0.9]]))
    heat = a.flush(120.0)[0]["heatmap"]
    assert (heat["cols"], heat["rows"], heat["unit"]) == (4, 2, "ms")
    assert heat["counts"][0] == 60_000 and heat["counts"][7] == 60_000 and sum(heat["counts"]) == 120_000


def test_queue_figures_for_queue_zones_only() -> None:
    a = agg()
    for t, n in [(1.0, 0), (2.0, 2), (3.0, 4), (4.0, 2)]:
        a.add_frame(t, occupancy={"checkout": n, "shelf": 1})
    body = a.flush(60.0)[0]
    q = body["zones"]["checkout"]["queue"]
    assert q["length_max"] == 4 and q["length_mean"] == pytest.approx(8 / 3.2, abs=1e-3)
    assert q["wait_s_mean"] == pytest.approx(40.0 * q["length_mean"], abs=0.01)
    assert "queue" not in body["zones"]["shelf"]


def test_staff_are_excluded_from_customer_figures_even_if_marked_after_the_event() -> None:
    staff = StaffRegistry()
    a = agg(staff=staff)
    a.add_frame(1.0, np.array([[0.1, 0.1], [0.9, 0.9]]), track_ids=np.array([5, 7]))
    a.add_crossings([crossing(2.0, track_id=5, staff=True), crossing(3.0, "out", track_id=6),
                     crossing(4.0, track_id=7)])
    a.add_zone_events([visit(1.0, 9.0, track_id=6), visit(1.0, 5.0, track_id=7)])
    staff.mark(6, "zone:counter")  # marked later in the interval
    body = a.flush(60.0)[0]
    assert body["lines"]["door"] == {"in": 1, "out": 0}
    assert body["staff_excluded"]["lines"]["door"] == {"in": 1, "out": 1}
    assert body["zones"]["shelf"]["visits"] == 1 and body["zones"]["shelf"]["dwell_s"]["mean"] == 4.0
    assert body["staff_excluded"]["zones"]["shelf"] == {"visits": 1}


def test_staff_anchors_are_left_out_of_the_heatmap() -> None:
    staff = StaffRegistry()
    staff.mark(5, "manual")
    a = agg(staff=staff)
    a.add_frame(1.0, np.array([[0.1, 0.1], [0.9, 0.9]]), track_ids=np.array([5, 7]))
    counts = a.flush(60.0)[0]["heatmap"]["counts"]
    assert counts[0] == 0 and counts[7] > 0


def test_an_event_for_a_flushed_interval_goes_to_the_oldest_open_one_and_is_flagged_late() -> None:
    a = agg()
    a.add_frame(1.0)
    a.flush(61.0)
    a.add_crossings([crossing(30.0)])
    (body,) = a.flush(121.0)
    assert body["interval_start"] == 60.0 and body["lines"]["door"]["in"] == 1 and body["late"] == 1


def test_final_flush_includes_the_open_interval_and_long_gaps_are_capped() -> None:
    a = agg(max_backfill=5)
    a.add_frame(10.0)
    a.add_frame(86_400.0 + 10.0)
    bodies = a.flush(86_400.0 + 20.0, final=True)
    assert bodies[0]["interval_start"] == 0.0 and bodies[-1]["interval_start"] == 86_400.0
    assert len(bodies) == 1 + 5
    assert a.flush(86_400.0 + 30.0, final=True) == []


def test_flush_before_any_data_starts_the_clock() -> None:
    a = agg()
    assert a.flush(125.0) == [] and not a.due(150.0) and a.due(180.0)
    (body,) = a.flush(181.0)
    assert body["interval_start"] == 120.0 and body["coverage_s"] == 0


# ------------------------------------------------------------------------------------------ CameraAnalytics
DOOR = LineConfig(name="door", start=(0.05, 0.2), end=(0.95, 0.2))  # IN = walking down into the store
AISLE = ZoneConfig(name="aisle", polygon=[(0, 0.55), (0.45, 0.55), (0.45, 0.8), (0, 0.8)])
COUNTER = ZoneConfig(name="counter", kind="staff", polygon=[(0, 0.85), (0.15, 0.85), (0.15, 1), (0, 1)],
                     enter_frames=2)


def _scene(cam: CameraAnalytics, t0: float = 1000.0) -> list:
    """6 shoppers walk in through the door; 2 browse the aisle 8 s, 1 queues 4 s, 2 turn round and walk back out;
    a staff member walks in and goes behind the counter."""
    rng = np.random.default_rng(3)
    paths: dict[int, list] = {}
    for i in range(6):
        x, start = 0.15 + 0.1 * i, 2.0 * i
        paths[i + 1] = [(start + k * 0.2, (x, 0.05 + 0.05 * k)) for k in range(8)]  # y 0.05 → 0.40
    for tid, spot in ((2, (0.25, 0.65)), (3, (0.3, 0.7))):
        last = paths[tid][-1][0]
        paths[tid] += [(last + 0.2 * k, spot) for k in range(1, 41)]
    last = paths[4][-1][0]
    paths[4] += [(last + 0.2 * k, (0.8, 0.8)) for k in range(1, 21)]
    for tid in (5, 6):
        last, x = paths[tid][-1][0], paths[tid][-1][1][0]
        paths[tid] += [(last + 0.2 * k, (x, 0.40 - 0.05 * k)) for k in range(1, 8)]
    paths[99] = [(20.0 + 0.2 * k, (0.9, 0.05 + 0.05 * k)) for k in range(8)]
    paths[99] += [(21.6 + 0.2 * k, (0.05, 0.95)) for k in range(10)]
    events = []
    for ts in sorted({round(t, 6) for p in paths.values() for t, _ in p}):
        rows = [(tid, xy) for tid, p in paths.items() for t, xy in p if round(t, 6) == ts]
        ids = np.array([r[0] for r in rows])
        anchors = np.array([r[1] for r in rows]) + rng.normal(0, 0.003, (len(rows), 2))
        boxes = np.column_stack([anchors[:, 0] - 0.03, anchors[:, 1] - 0.2, anchors[:, 0] + 0.03, anchors[:, 1]])
        events += cam.update(t0 + ts, ids, boxes)
    return events


def test_camera_analytics_end_to_end_bodies_and_events() -> None:
    config = CameraAnalyticsConfig(lines=[DOOR], zones=[AISLE, QUEUE, COUNTER])
    cam = CameraAnalytics.from_config("cam1", config, VisionConfig(aggregate_interval_s=60.0))
    events = _scene(cam)
    end_events, bodies = cam.finish(1100.0)
    events += end_events
    crossings = [e for e in events if e.type == "line_crossing"]
    assert sorted((c.direction, c.track_id) for c in crossings) == sorted(
        [("in", i) for i in range(1, 7)] + [("out", 5), ("out", 6), ("in", 99)])
    assert cam.staff.is_staff(99)
    total_in = sum(b["lines"]["door"]["in"] for b in bodies)
    total_out = sum(b["lines"]["door"]["out"] for b in bodies)
    assert (total_in, total_out) == (6, 2)
    assert sum(b["staff_excluded"]["lines"]["door"]["in"] for b in bodies) == 1
    aisle = [e for e in events if e.type == "zone_visit" and e.zone == "aisle"]
    assert sorted(v.track_id for v in aisle) == [2, 3]
    assert all(7.5 < v.dwell_s < 8.5 for v in aisle)
    assert sum(b["zones"]["aisle"]["visits"] for b in bodies) == 2
    assert max(b["zones"]["checkout"]["queue"]["length_max"] for b in bodies) == 1
    assert all(set(b) == BODY_KEYS for b in bodies)
    json.dumps(bodies)
    json.dumps([e.as_dict() for e in events])
    assert cam.live()["lines"]["door"] == {"in": 7, "out": 2}


def test_camera_analytics_counts_an_id_switch_at_the_line_once() -> None:
    cam = CameraAnalytics("cam1", lines=[DOOR])
    ys = np.linspace(0.05, 0.4, 8)
    for k, y in enumerate(ys):  # id 1 is lost right before the line, id 2 takes over right after it
        if k == 3:
            continue
        cam.update(0.2 * k, [1 if k < 3 else 2], anchors=np.array([[0.5, y]]))
    assert cam.live()["lines"]["door"] == {"in": 1, "out": 0}
    assert cam.lines[0].relinks == 1


def test_camera_analytics_ignores_duplicate_track_rows() -> None:
    cam = CameraAnalytics("cam1", lines=[DOOR])
    cam.update(0.0, [1, 1], anchors=np.array([[0.5, 0.05], [0.5, 0.9]]))
    cam.update(0.2, [1], anchors=np.array([[0.5, 0.4]]))
    assert cam.live()["lines"]["door"] == {"in": 1, "out": 0}


def test_summarize_events_gives_the_replay_totals() -> None:
    events = [crossing(1.0), crossing(2.0, "out"), crossing(3.0, track_id=9, staff=True),
              visit(0.0, 2.0), visit(0.0, 4.0), visit(0.0, 9.0, zone="checkout")]
    s = summarize_events(events, lines=["door", "side"], zones=["shelf", "checkout", "empty"])
    assert s["lines"] == {"door": {"in": 2, "out": 1}, "side": {"in": 0, "out": 0}}
    assert s["zones"]["shelf"] == {"visits": 2, "dwell_s": {"mean": 3.0, "p50": 3.0, "p90": 3.8}}
    assert s["zones"]["empty"]["visits"] == 0
    assert summarize_events(events, include_staff=False)["lines"]["door"]["in"] == 1
