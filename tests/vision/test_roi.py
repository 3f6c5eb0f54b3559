"""ROI polygons and the minimum box height: the vectorised point-in-polygon agrees with OpenCV on random
polygons, and the filter keeps exactly the detections whose floor anchor is inside and that are tall enough."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.vision.roi import RoiFilter, bottom_centers, points_in_polygon
from models.detectors.base import Detections

coord = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(coord, coord), min_size=3, max_size=8), st.lists(st.tuples(coord, coord), min_size=1,
                                                                            max_size=30))
def test_point_in_polygon_matches_opencv(polygon, points) -> None:  # noqa: ANN001
    poly = np.array(polygon, np.float32)
    assume(abs(cv2.contourArea(poly)) > 1e-3)
    pts = np.array(points, np.float64)
    ours = points_in_polygon(pts, poly)
    for p, inside in zip(pts, ours):
        d = cv2.pointPolygonTest(poly.reshape(-1, 1, 2), (float(p[0]), float(p[1])), True)
        if abs(d) > 1e-4:  # on-edge points may go either way
            assert inside == (d > 0), (polygon, p)


def test_filter_keeps_floor_anchor_inside_roi_and_tall_enough() -> None:
    # ROI: the left half of a 640×480 image, from mid-height down (a shop floor in front of a counter)
    roi = RoiFilter([[(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)]], min_box_height=0.1)
    dets = Detections(
        boxes=np.array([[50, 100, 100, 400],     # feet at (75, 400): inside, 300 px tall → kept
                        [400, 100, 450, 400],    # feet on the right half → dropped
                        [50, 10, 100, 200],      # feet at y=200 (above the ROI) although the box overlaps → dropped
                        [50, 380, 60, 420],      # 40 px < 48 px (0.1 × 480) → dropped
                        [250, 200, 330, 470]], np.float32),  # feet at x=290 (< 320) → kept
        scores=np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32), class_ids=np.zeros(5, np.int64))
    kept = roi(dets, (640, 480))
    assert isinstance(kept, Detections)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.5])
    assert roi.mask(dets.boxes, (640, 480)).tolist() == [True, False, False, False, True]


def test_no_roi_means_whole_image_and_several_rois_are_a_union() -> None:
    boxes = np.array([[0, 0, 10, 50], [90, 0, 100, 50]], float)
    assert RoiFilter().mask(boxes, (100, 100)).tolist() == [True, True]
    left = [(0, 0), (0.2, 0), (0.2, 1), (0, 1)]
    right = [(0.8, 0), (1, 0), (1, 1), (0.8, 1)]
    assert RoiFilter([left]).mask(boxes, (100, 100)).tolist() == [True, False]
    assert RoiFilter([left, right]).mask(boxes, (100, 100)).tolist() == [True, True]
    np.testing.assert_allclose(bottom_centers(boxes), [[5, 50], [95, 50]])
    assert RoiFilter([left]).mask(np.zeros((0, 4)), (100, 100)).shape == (0,)


def test_invalid_roi_is_rejected() -> None:
    with pytest.raises(ValueError):
        RoiFilter([[(0, 0), (1, 1)]])
    with pytest.raises(ValueError):
        RoiFilter(min_box_height=2.0)
