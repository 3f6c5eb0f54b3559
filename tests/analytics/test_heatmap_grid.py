"""Heatmap: cell counts, weights, clipping, reset, PNG rendering."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.analytics.heatmap import Heatmap, render_overlay, render_png


def test_counts_land_in_the_right_cells_row_major() -> None:
    hm = Heatmap(grid=(4, 2))  # 4 columns, 2 rows
    hm.add(np.array([[0.0, 0.0], [0.26, 0.1], [0.99, 0.99], [1.0, 1.0], [0.5, 0.6]]))
    assert hm.grid().tolist() == [[1, 1, 0, 0], [0, 0, 1, 2]]
    assert hm.grid().shape == (2, 4)


def test_points_outside_the_image_are_clipped_and_nan_rows_ignored() -> None:
    hm = Heatmap(grid=(3, 3))
    hm.add(np.array([[-0.5, 2.0], [np.nan, 0.5]]))
    assert hm.grid()[2, 0] == 1 and hm.total() == 1


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 50), st.just(2)), elements=st.floats(0, 1)),
       st.integers(1, 40), st.integers(1, 40))
def test_total_equals_sum_of_weights_and_matches_a_histogram(points, cols, rows) -> None:
    hm = Heatmap(grid=(cols, rows))
    w = np.linspace(0.5, 2.0, len(points))
    hm.add(points, w)
    assert hm.total() == pytest.approx(w.sum())
    ref = np.zeros((rows, cols))
    for (x, y), wi in zip(points, w):
        ref[min(int(y * rows), rows - 1), min(int(x * cols), cols - 1)] += wi
    assert np.allclose(hm.grid(), ref)


def test_reset_and_merge() -> None:
    a, b = Heatmap((2, 2)), Heatmap((2, 2))
    a.add(np.array([[0.1, 0.1]]), 2.0)
    b.add(np.array([[0.9, 0.9]]))
    a.merge(b)
    assert a.grid().tolist() == [[2, 0], [0, 1]]
    a.reset()
    assert a.total() == 0
    with pytest.raises(ValueError):
        a.merge(Heatmap((3, 2)))


def test_render_png_over_a_snapshot_and_on_a_blank_canvas(tmp_path) -> None:
    hm = Heatmap((8, 4))
    hm.add(np.array([[0.1, 0.1]] * 10 + [[0.9, 0.9]]))
    snapshot = np.full((90, 160, 3), 128, np.uint8)
    out = tmp_path / "heat.png"
    data = hm.render_png(out, snapshot)
    assert out.read_bytes() == data and data[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (90, 160, 3)
    assert not np.array_equal(img[5, 5], snapshot[5, 5])        # the hot cell is coloured
    assert np.array_equal(img[5, 150], snapshot[5, 150])        # a never-visited cell shows the snapshot
    blank = cv2.imdecode(np.frombuffer(render_png(hm.grid(), size=(320, 180)), np.uint8), cv2.IMREAD_COLOR)
    assert blank.shape == (180, 320, 3)


def test_an_empty_grid_renders_the_snapshot_unchanged() -> None:
    snapshot = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    assert np.array_equal(render_overlay(np.zeros((4, 8)), snapshot), snapshot)
