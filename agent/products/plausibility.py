"""Weight plausibility: does a weighed amount fit a product whose single piece weighs ``lo``–``hi`` kg?

A weighing holds ``n >= 1`` pieces, so ``weight`` is plausible when ``n*lo <= weight <= n*hi`` for some ``n``
(within ``tolerance``). The distance outside that set, in doublings (``log2``), becomes a score penalty:
0 when plausible, up to ``max_penalty`` at one doubling or more away (50 g of a "2–8 kg" watermelon).

Example:
    >>> round(implausibility(0.18, (0.15, 0.25)), 2), round(implausibility(0.55, (0.15, 0.25)), 2)
    (0.0, 0.0)
    >>> round(implausibility(0.05, (2.0, 8.0)), 2)
    1.0
    >>> rerank([("melon", 0.80), ("apple", 0.78)], 0.2, {"melon": (2.0, 8.0), "apple": (0.15, 0.25)})
    [('apple', 0.78), ('melon', 0.6)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

MAX_PIECES = 200


def implausibility(weight_kg: float, piece_kg: tuple[float, float] | None, tolerance: float = 0.1) -> float:
    """0 (plausible) … 1 (a doubling or more away from any ``n`` pieces of ``piece_kg``); 0 when unknown."""
    if piece_kg is None or weight_kg <= 0:
        return 0.0
    lo, hi = sorted(float(v) for v in piece_kg)
    if lo <= 0:
        return 0.0
    lo, hi = lo * (1 - tolerance), hi * (1 + tolerance)
    best = math.inf
    for n in range(1, min(MAX_PIECES, int(weight_kg / lo) + 1) + 1):
        a, b = n * lo, n * hi
        if a <= weight_kg <= b:
            return 0.0
        best = min(best, math.log2(a / weight_kg) if weight_kg < a else math.log2(weight_kg / b))
    return min(1.0, best)


def rerank(scored: Sequence[tuple[str, float]], weight_kg: float,
           piece_kg: Mapping[str, tuple[float, float] | None], max_penalty: float = 0.2,
           tolerance: float = 0.1) -> list[tuple[str, float]]:
    """``(plu, score)`` pairs with ``max_penalty * implausibility`` subtracted, best first (stable)."""
    out = [(plu, round(score - max_penalty * implausibility(weight_kg, piece_kg.get(plu), tolerance), 6))
           for plu, score in scored]
    return sorted(out, key=lambda item: -item[1])
