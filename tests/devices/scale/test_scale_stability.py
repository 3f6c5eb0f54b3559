"""The stability detector: events from sequences of readings (pure, no time passes)."""

from __future__ import annotations

from devices.scale.reading import Reading
from devices.scale.stability import StabilityDetector, StabilitySettings

SETTINGS = StabilitySettings(window_s=0.5, tolerance_kg=0.002, min_weight_kg=0.010)


def run(samples, settings: StabilitySettings = SETTINGS, detector: StabilityDetector | None = None):
    d = detector or StabilityDetector(settings, scale="s1")
    events = []
    for t, reading in samples:
        events += d.update(reading, t)
    return [(e.kind, e.weight_kg) for e in events], d


def w(kg: float | None, **flags) -> Reading:
    return Reading(weight_kg=kg, **flags)


def steady(kg: float, t0: float, t1: float, step: float = 0.1, **flags):
    n = round((t1 - t0) / step)
    return [(round(t0 + i * step, 3), w(kg, **flags)) for i in range(n + 1)]


def test_place_settle_remove() -> None:
    samples = [(0.0, w(0.0)), (0.1, w(0.25, motion=True)), (0.2, w(0.43, motion=True))]
    samples += steady(0.412, 0.3, 1.0) + steady(0.0, 1.1, 1.8)
    events, d = run(samples)
    assert events == [("placed", 0.25), ("stable", 0.412), ("removed", 0.0)]
    assert not d.loaded


def test_stable_needs_the_whole_window_without_motion() -> None:
    events, _ = run(steady(0.412, 0.0, 0.4) + steady(0.412, 0.5, 2.0, motion=True))
    assert events == [("placed", 0.412)]
    events, _ = run(steady(0.412, 0.0, 0.5))
    assert events == [("placed", 0.412), ("stable", 0.412)]


def test_swing_beyond_tolerance_restarts_the_window() -> None:
    swinging = [(i / 10, w(0.412 + (0.003 if i % 2 else 0.0))) for i in range(20)]
    events, _ = run(swinging)
    assert events == [("placed", 0.412)]
    within = [(i / 10, w(0.412 + (0.0015 if i % 2 else 0.0))) for i in range(7)]
    events, _ = run(within)
    assert [k for k, _ in events] == ["placed", "stable"]
    assert abs(events[1][1] - 0.41275) < 1e-9  # the mean of the six readings of the window


def test_adding_an_item_gives_a_second_stable_without_placed() -> None:
    events, _ = run(steady(0.2, 0.0, 0.6) + [(0.7, w(0.3, motion=True))] + steady(0.5, 0.8, 1.4))
    assert events == [("placed", 0.2), ("stable", 0.2), ("stable", 0.5)]


def test_brief_dip_below_minimum_is_not_a_removal() -> None:
    events, _ = run(steady(0.3, 0.0, 0.6) + [(0.7, w(0.0)), (0.8, w(0.005))] + steady(0.3, 0.9, 1.6))
    assert [k for k, _ in events] == ["placed", "stable"]


def test_below_minimum_never_places() -> None:
    events, _ = run(steady(0.008, 0.0, 2.0))
    assert events == []


def test_overload_reported_once_and_never_stable() -> None:
    samples = steady(None, 0.0, 1.0, overload=True) + steady(1.0, 1.1, 1.8)
    events, _ = run(samples)
    assert events == [("overload", None), ("placed", 1.0), ("stable", 1.0)]


def test_negative_reported_once_without_placed() -> None:
    events, _ = run(steady(-0.05, 0.0, 1.0) + steady(None, 1.1, 1.5, underload=True))
    assert events == [("negative", -0.05)]


def test_tare_rearms_without_a_removal() -> None:
    d = StabilityDetector(SETTINGS, scale="s1")
    events, _ = run(steady(0.05, 0.0, 0.6), detector=d)
    assert events == [("placed", 0.05), ("stable", 0.05)]
    tared = d.note_command("tared", 0.7, 0.05)
    events, _ = run(steady(0.0, 0.8, 1.5, net=True) + steady(0.3, 1.6, 2.2, net=True), detector=d)
    assert tared.kind == "tared" and events == [("placed", 0.3), ("stable", 0.3)]


def test_zero_window_trusts_the_scale_flag_alone() -> None:
    events, _ = run([(0.0, w(0.5, motion=True)), (0.1, w(0.5))], StabilitySettings(window_s=0.0))
    assert events == [("placed", 0.5), ("stable", 0.5)]


def test_status_only_readings_break_the_window() -> None:
    # Toledo 8217 answers in motion with a status frame (no weight)
    samples = steady(0.4, 0.0, 0.3) + [(0.4, w(None, motion=True))] + steady(0.4, 0.5, 0.9)
    events, _ = run(samples)
    assert events == [("placed", 0.4)]
    events, _ = run(samples + [(1.0, w(0.4))])
    assert events == [("placed", 0.4), ("stable", 0.4)]


def test_events_carry_scale_name_and_sequence() -> None:
    d = StabilityDetector(SETTINGS, scale="deli-1")
    evs = []
    for t, r in steady(0.3, 0.0, 0.6):
        evs += d.update(r, t)
    assert [(e.scale, e.seq) for e in evs] == [("deli-1", 1), ("deli-1", 2)]
    assert evs[1].to_dict()["event"] == "stable" and evs[1].mono == 0.5
