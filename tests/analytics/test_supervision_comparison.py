"""Reproduce supervision LineZone failure modes on synthetic trajectories and show LineCounter does not have them.

Skipped when ``supervision`` is not installed (it is not a dependency of the project). supervision counts a
left→right line's downward crossings as ``out`` (the opposite of our convention), so totals are compared.
The figures are quoted in docs/analytics.md; if a new supervision release fixes one of these, update the doc.
"""

from __future__ import annotations

import numpy as np
import pytest

from agent.analytics.lines import LineCounter
from agent.config.vision_models import LineConfig

sv = pytest.importorskip("supervision")

SIZE = 1000  # pixels; our counter gets the same anchors normalised
BOX_W, BOX_H = 0.06, 0.2


def sv_total(path: list[tuple[float, float]], ids: list[int], line_y: float, anchors=None) -> int:
    kwargs = {} if anchors is None else {"triggering_anchors": anchors}
    zone = sv.LineZone(start=sv.Point(0, line_y * SIZE), end=sv.Point(SIZE, line_y * SIZE), **kwargs)
    for (x, y), tid in zip(path, ids):
        box = np.array([[x - BOX_W / 2, y - BOX_H, x + BOX_W / 2, y]]) * SIZE
        zone.trigger(sv.Detections(xyxy=np.clip(box, 0, SIZE), tracker_id=np.array([tid])))
    return zone.in_count + zone.out_count


def our_crossings(path: list[tuple[float, float]], ids: list[int], line_y: float) -> list[str]:
    counter = LineCounter(LineConfig(name="l", start=(0.0, line_y), end=(1.0, line_y)))
    out = []
    for k, (p, tid) in enumerate(zip(path, ids)):
        out += counter.update(0.2 * k, [tid], np.clip(np.array([p]), 0.0, 1.0))
    return [c.direction for c in out]


def test_jitter_on_the_line_double_counts_in_supervision_with_a_floor_anchor() -> None:
    rng = np.random.default_rng(1)
    ys = [*np.linspace(0.2, 0.49, 6), *(0.5 + rng.uniform(-0.012, 0.012, 20)), *np.linspace(0.52, 0.8, 6)]
    path, ids = [(0.5, float(y)) for y in ys], [1] * len(ys)
    assert sv_total(path, ids, 0.5, anchors=[sv.Position.BOTTOM_CENTER]) > 2, "supervision no longer double counts"
    assert our_crossings(path, ids, 0.5) == ["in"]


def test_a_line_near_the_frame_edge_never_counts_in_supervision() -> None:  # supervision #1838
    path, ids = [(0.5, float(y)) for y in np.linspace(0.6, 1.15, 12)], [1] * 12
    assert sv_total(path, ids, 0.98) == 0, "supervision now counts near the edge"
    assert our_crossings(path, ids, 0.98) == ["in"]


def test_an_id_switch_at_the_line_loses_the_crossing_in_supervision() -> None:
    path, ids = [(0.5, float(y)) for y in np.linspace(0.2, 0.8, 12)], [1] * 6 + [2] * 6
    assert sv_total(path, ids, 0.5) == 0 and sv_total(path, ids, 0.5, [sv.Position.BOTTOM_CENTER]) == 0
    assert our_crossings(path, ids, 0.5) == ["in"]
