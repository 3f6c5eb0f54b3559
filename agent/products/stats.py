"""Interval statistics of the weighings at the scales (``telemetry/aggregates``, kind ``weighings``).

Example:
    >>> s = WeighingStats(interval_s=60, start=0.0)
    >>> s.candidates(40.0); s.candidates(60.0)
    >>> s.confirmed(rank=1, stable_to_confirm_ms=2500.0); s.confirmed(rank=None, stable_to_confirm_ms=4000.0)
    >>> body = s.flush(now=60.0)
    >>> body["weighings"], body["confirmed"], body["top1_hit_rate"], body["topk_hit_rate"], body["mean_stable_to_candidates_ms"]
    (2, 2, 0.5, 0.5, 50.0)
"""

from __future__ import annotations

import threading
from typing import Any


class WeighingStats:
    """Counters of one interval; :meth:`flush` returns the body and starts the next interval."""

    def __init__(self, interval_s: float, start: float, top_k: int = 5) -> None:
        self.interval_s = interval_s
        self.top_k = top_k
        self._start = start
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.weighings = 0
        self.confirmed_n = 0
        self.none_of_these = 0
        self.top1 = 0
        self.topk = 0
        self.cand_ms: list[float] = []
        self.confirm_ms: list[float] = []

    def due(self, now: float) -> bool:
        """True once the interval is over."""
        return now - self._start >= self.interval_s

    def candidates(self, stable_to_candidates_ms: float) -> None:
        """A weighing got its candidates."""
        with self._lock:
            self.weighings += 1
            self.cand_ms.append(stable_to_candidates_ms)

    def confirmed(self, rank: int | None, stable_to_confirm_ms: float) -> None:
        """A weighing was confirmed; ``rank`` of the chosen PLU among the candidates (None: not among them)."""
        with self._lock:
            self.confirmed_n += 1
            self.confirm_ms.append(stable_to_confirm_ms)
            if rank == 1:
                self.top1 += 1
            if rank is not None and rank <= self.top_k:
                self.topk += 1
            if rank is None:
                self.none_of_these += 1

    def flush(self, now: float) -> dict[str, Any]:
        """The interval's body; counters restart at ``now``."""
        with self._lock:
            c = self.confirmed_n
            body = {
                "interval_start": round(self._start, 3), "interval_s": round(now - self._start, 3),
                "weighings": self.weighings, "confirmed": c, "not_in_candidates": self.none_of_these,
                "top1_hit_rate": round(self.top1 / c, 4) if c else None,
                "topk_hit_rate": round(self.topk / c, 4) if c else None, "top_k": self.top_k,
                "mean_stable_to_candidates_ms": round(sum(self.cand_ms) / len(self.cand_ms), 2)
                if self.cand_ms else None,
                "mean_stable_to_confirm_ms": round(sum(self.confirm_ms) / len(self.confirm_ms), 1)
                if self.confirm_ms else None,
            }
            self._start = now
            self._reset()
        return body
