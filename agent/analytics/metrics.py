"""Evaluation of counting and dwell against ground truth (pure functions, used by tests and benchmarks).

Counting: predicted and true crossings are matched one-to-one when they have the same line and direction and
their times differ by at most ``tol_s``; the score per direction reports precision, recall and the *gross*
error ``(missed + false) / true`` — a miss and a false count add up instead of cancelling, as a net
``|pred − true| / true`` would.

Dwell: visits are matched one-to-one within a zone by temporal IoU ≥ ``min_overlap`` (highest IoU first); the
absolute dwell errors of the matched pairs give the median and mean error.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def _get(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


@dataclass(frozen=True, slots=True)
class CountScore:
    """Matching result of a set of crossings."""

    true: int
    pred: int
    matched: int

    @property
    def missed(self) -> int:
        return self.true - self.matched

    @property
    def false(self) -> int:
        return self.pred - self.matched

    @property
    def precision(self) -> float:
        return self.matched / self.pred if self.pred else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.true if self.true else 1.0

    @property
    def gross_error(self) -> float:
        """(missed + false) / true; 0 when both are empty, ``inf`` for false counts against no truth."""
        if self.true == 0:
            return 0.0 if self.pred == 0 else math.inf
        return (self.missed + self.false) / self.true

    def __add__(self, other: CountScore) -> CountScore:
        return CountScore(self.true + other.true, self.pred + other.pred, self.matched + other.matched)

    def as_dict(self) -> dict[str, Any]:
        return {"true": self.true, "pred": self.pred, "matched": self.matched, "missed": self.missed,
                "false": self.false, "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "gross_error": round(self.gross_error, 4) if math.isfinite(self.gross_error) else None}


@dataclass(frozen=True, slots=True)
class CrossingMatch:
    """Result of ``match_crossings``.

    Attributes:
        by_line: per ``(line, direction)``.
        by_direction: per direction (``"in"``, ``"out"``), summed over lines.
        overall: everything; its gross error sums misses and false counts of both directions.
        pairs: matched ``(pred_index, true_index)``.
    """

    by_line: dict[tuple[str, str], CountScore]
    by_direction: dict[str, CountScore]
    overall: CountScore
    pairs: list[tuple[int, int]]

    def as_dict(self) -> dict[str, Any]:
        return {"overall": self.overall.as_dict(),
                "by_direction": {d: s.as_dict() for d, s in self.by_direction.items()},
                "by_line": {f"{line}:{d}": s.as_dict() for (line, d), s in self.by_line.items()}}


def match_times(pred_ts: np.ndarray, true_ts: np.ndarray, tol_s: float) -> list[tuple[int, int]]:
    """Maximum one-to-one matching of two sets of times with ``|p − t| ≤ tol_s``.

    Greedy over both sorted lists: each true time takes the earliest unmatched predicted time within its window.
    With equal-width windows this is a maximum matching (the windows are ordered the same way by start and end).

    Args:
        pred_ts: (P,) times.
        true_ts: (T,) times.

    Returns:
        Matched ``(pred_index, true_index)`` pairs (indices into the inputs).

    Example:
        >>> match_times(np.array([0.4, 5.0, 5.2]), np.array([0.0, 5.1, 9.0]), 1.0)
        [(0, 0), (1, 1)]
    """
    p_order = np.argsort(pred_ts, kind="stable")
    t_order = np.argsort(true_ts, kind="stable")
    p_sorted, t_sorted = np.asarray(pred_ts)[p_order], np.asarray(true_ts)[t_order]
    pairs: list[tuple[int, int]] = []
    j = 0
    for i, t in enumerate(t_sorted.tolist()):
        while j < len(p_sorted) and t - p_sorted[j] > tol_s:
            j += 1
        if j < len(p_sorted) and p_sorted[j] - t <= tol_s:
            pairs.append((int(p_order[j]), int(t_order[i])))
            j += 1
    return pairs


def match_crossings(pred: Sequence[Any], true: Sequence[Any], tol_s: float = 1.0) -> CrossingMatch:
    """Match predicted to true crossings (same line and direction, ±``tol_s``, one-to-one).

    Args:
        pred: crossings (``Crossing`` objects or mappings with ``line``, ``direction``, ``ts``).
        true: ground-truth crossings, same fields.
        tol_s: time tolerance in seconds.
    """
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i, c in enumerate(pred):
        groups[(str(_get(c, "line")), str(_get(c, "direction")))][0].append(i)
    for i, c in enumerate(true):
        groups[(str(_get(c, "line")), str(_get(c, "direction")))][1].append(i)
    by_line: dict[tuple[str, str], CountScore] = {}
    pairs: list[tuple[int, int]] = []
    for key in sorted(groups):
        p_idx, t_idx = groups[key]
        p_ts = np.array([float(_get(pred[i], "ts")) for i in p_idx])
        t_ts = np.array([float(_get(true[i], "ts")) for i in t_idx])
        matched = match_times(p_ts, t_ts, tol_s)
        pairs += [(p_idx[a], t_idx[b]) for a, b in matched]
        by_line[key] = CountScore(true=len(t_idx), pred=len(p_idx), matched=len(matched))
    by_direction = {d: sum((s for (_, dd), s in by_line.items() if dd == d), CountScore(0, 0, 0))
                    for d in ("in", "out")}
    overall = sum(by_line.values(), CountScore(0, 0, 0))
    return CrossingMatch(by_line=by_line, by_direction=by_direction, overall=overall, pairs=sorted(pairs))


@dataclass(frozen=True, slots=True)
class VisitMatch:
    """Result of ``match_visits``: counts, matched pairs and absolute dwell errors (seconds)."""

    true: int
    pred: int
    pairs: list[tuple[int, int]]
    abs_errors_s: list[float]

    @property
    def matched(self) -> int:
        return len(self.pairs)

    @property
    def precision(self) -> float:
        return self.matched / self.pred if self.pred else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.true if self.true else 1.0

    @property
    def median_abs_error_s(self) -> float:
        return float(np.median(self.abs_errors_s)) if self.abs_errors_s else math.nan

    @property
    def mean_abs_error_s(self) -> float:
        return float(np.mean(self.abs_errors_s)) if self.abs_errors_s else math.nan

    def as_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return round(x, 3) if math.isfinite(x) else None
        return {"true": self.true, "pred": self.pred, "matched": self.matched,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "median_abs_error_s": num(self.median_abs_error_s), "mean_abs_error_s": num(self.mean_abs_error_s)}


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """IoU of two time intervals ``(start, end)`` (0 for disjoint; two equal instants give 1)."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    union = max(a[1], b[1]) - min(a[0], b[0])
    if inter < 0:
        return 0.0
    return 1.0 if union <= 0 else inter / union


def match_visits(pred: Sequence[Any], true: Sequence[Any], min_overlap: float = 0.5) -> VisitMatch:
    """Match predicted to true visits (same zone, temporal IoU ≥ ``min_overlap``, highest IoU first).

    Args:
        pred: visits (``ZoneEvent`` or mappings with ``zone``, ``enter_ts``, ``exit_ts``).
        true: ground-truth visits, same fields.
        min_overlap: minimum temporal IoU.

    Example:
        >>> m = match_visits([{"zone": "a", "enter_ts": 0.0, "exit_ts": 9.0}],
        ...                  [{"zone": "a", "enter_ts": 1.0, "exit_ts": 11.0}])
        >>> m.matched, m.median_abs_error_s
        (1, 1.0)
    """
    def span(v: Any) -> tuple[float, float]:
        return float(_get(v, "enter_ts")), float(_get(v, "exit_ts"))

    scored: list[tuple[float, int, int]] = []
    for i, p in enumerate(pred):
        for j, t in enumerate(true):
            if _get(p, "zone") != _get(t, "zone"):
                continue
            iou = temporal_iou(span(p), span(t))
            if iou >= min_overlap:
                scored.append((iou, i, j))
    scored.sort(key=lambda x: (-x[0], x[1], x[2]))
    used_p: set[int] = set()
    used_t: set[int] = set()
    pairs: list[tuple[int, int]] = []
    errors: list[float] = []
    for _, i, j in scored:
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        pairs.append((i, j))
        (pa, pb), (ta, tb) = span(pred[i]), span(true[j])
        errors.append(abs((pb - pa) - (tb - ta)))
    return VisitMatch(true=len(true), pred=len(pred), pairs=pairs, abs_errors_s=errors)
