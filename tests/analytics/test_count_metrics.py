"""Counting and dwell metrics: one-to-one matching within tolerance, errors that do not cancel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.analytics.lines import Crossing
from agent.analytics.metrics import match_crossings, match_times, match_visits, temporal_iou


def c(ts: float, direction: str = "in", line: str = "door") -> dict:
    return {"line": line, "direction": direction, "ts": ts}


def test_a_miss_and_a_false_count_add_up_instead_of_cancelling() -> None:
    true = [c(float(t)) for t in range(10)]
    pred = [c(float(t)) for t in range(9)] + [c(50.0)]  # one missed at 9 s, one false at 50 s: net error 0
    m = match_crossings(pred, true)
    s = m.by_direction["in"]
    assert (s.true, s.pred, s.matched, s.missed, s.false) == (10, 10, 9, 1, 1)
    assert s.gross_error == pytest.approx(0.2) and s.precision == 0.9 and s.recall == 0.9


def test_errors_in_opposite_directions_do_not_cancel() -> None:
    true = [c(1.0, "in"), c(5.0, "out")]
    pred = [c(1.0, "out"), c(5.0, "in")]  # both directions wrong: totals match, nothing is right
    m = match_crossings(pred, true)
    assert m.overall.matched == 0 and m.overall.gross_error == 2.0
    assert m.by_direction["in"].gross_error == 2.0 and m.by_direction["out"].gross_error == 2.0


def test_matching_is_one_to_one_within_the_tolerance_and_per_line() -> None:
    true = [c(10.0), c(20.0, line="side")]
    pred = [c(10.4), c(10.6), c(21.2, line="side"), c(20.0, line="door")]
    m = match_crossings(pred, true, tol_s=1.0)
    assert m.pairs == [(0, 0)]
    assert m.by_line[("door", "in")].false == 2 and m.by_line[("side", "in")].missed == 1
    assert match_crossings([c(11.0)], [c(10.0)], tol_s=1.0).overall.matched == 1  # the boundary is inclusive


def test_accepts_crossing_objects_and_serialises() -> None:
    pred = [Crossing("door", "in", 3.0, 1, (0.5, 0.5), 3.1)]
    m = match_crossings(pred, [c(3.5)])
    assert m.overall.matched == 1
    d = m.as_dict()
    assert d["by_direction"]["in"]["gross_error"] == 0.0 and d["by_line"]["door:in"]["recall"] == 1.0
    assert math.isinf(match_crossings([c(1.0)], []).overall.gross_error)
    assert match_crossings([], []).overall.gross_error == 0.0


def _max_matching(pred: list[float], true: list[float], tol: float) -> int:
    """Reference maximum bipartite matching (augmenting paths)."""
    match_of_true: dict[int, int] = {}

    def try_assign(i: int, seen: set[int]) -> bool:
        for j, t in enumerate(true):
            if abs(pred[i] - t) <= tol and j not in seen:
                seen.add(j)
                if j not in match_of_true or try_assign(match_of_true[j], seen):
                    match_of_true[j] = i
                    return True
        return False

    return sum(try_assign(i, set()) for i in range(len(pred)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(0, 20, allow_nan=False), max_size=12), st.lists(st.floats(0, 20, allow_nan=False),
       max_size=12), st.floats(0.1, 3.0))
def test_greedy_time_matching_is_maximum(pred: list[float], true: list[float], tol: float) -> None:
    pairs = match_times(np.array(pred), np.array(true), tol)
    assert len(pairs) == _max_matching(pred, true, tol)
    assert len({p for p, _ in pairs}) == len(pairs) == len({t for _, t in pairs})
    assert all(abs(pred[p] - true[t]) <= tol for p, t in pairs)


# ------------------------------------------------------------------------------------------ visits
def v(enter: float, exit_: float, zone: str = "phones") -> dict:
    return {"zone": zone, "enter_ts": enter, "exit_ts": exit_}


def test_visits_match_by_temporal_overlap_and_report_dwell_errors() -> None:
    true = [v(0, 10), v(20, 23), v(40, 70), v(100, 101)]
    pred = [v(1, 10), v(20.5, 23.5), v(40, 72), v(200, 210), v(40, 70, zone="luggage")]
    m = match_visits(pred, true)
    assert sorted(m.pairs) == [(0, 0), (1, 1), (2, 2)]
    assert (m.matched, m.true, m.pred) == (3, 4, 5)
    assert sorted(m.abs_errors_s) == [0.0, 1.0, 2.0]
    assert m.median_abs_error_s == 1.0 and m.mean_abs_error_s == 1.0
    assert m.recall == 0.75 and m.precision == 0.6
    assert m.as_dict()["median_abs_error_s"] == 1.0


def test_visit_matching_threshold_and_one_to_one() -> None:
    assert match_visits([v(0, 10)], [v(6, 16)]).matched == 0   # IoU 4/16 < 0.5
    m = match_visits([v(0, 10), v(0, 9)], [v(0, 10)])
    assert m.pairs == [(0, 0)] and m.pred == 2
    assert math.isnan(match_visits([], [v(0, 1)]).median_abs_error_s)
    assert temporal_iou((0, 0), (0, 0)) == 1.0 and temporal_iou((0, 1), (2, 3)) == 0.0
