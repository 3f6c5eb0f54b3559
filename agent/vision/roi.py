"""Per-camera detection filters: regions of interest (polygons) and a minimum box height. Vectorised over all
detections; coordinates of polygons and heights are normalised to the image (0–1, y down)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np


class _HasBoxes(Protocol):
    boxes: np.ndarray

    def __getitem__(self, index: np.ndarray) -> _HasBoxes: ...


D = TypeVar("D", bound=_HasBoxes)


def bottom_centers(boxes: np.ndarray) -> np.ndarray:
    """(N, 2) floor anchors ``((x1 + x2) / 2, y2)`` of (N, 4) xyxy boxes."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], axis=1)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd (ray casting) test of (N, 2) points against one (V, 2) polygon, vectorised over points and
    edges → (N,) bool. Points exactly on an edge may fall either way.

    Example:
        >>> square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
        >>> points_in_polygon(np.array([[0.5, 0.5], [1.5, 0.5], [0.2, 0.9]]), square).tolist()
        [True, False, True]
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    if len(poly) < 3 or len(pts) == 0:
        return np.zeros(len(pts), bool)
    x, y = pts[:, 0:1], pts[:, 1:2]                     # (N, 1)
    x1, y1 = poly[:, 0], poly[:, 1]                     # (V,)
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)                    # (N, V): the edge crosses the point's horizontal line
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_cross)
    return (np.count_nonzero(crossings, axis=1) % 2) == 1


def points_in_any_polygon(points: np.ndarray, polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) bool: the point is inside at least one of ``polygons``."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    inside = np.zeros(len(pts), bool)
    for polygon in polygons:
        inside |= points_in_polygon(pts, polygon)
    return inside


class RoiFilter:
    """Keep detections whose floor anchor (box bottom-centre) is inside a region of interest and whose box is at
    least ``min_box_height`` of the image tall.

    Args:
        polygons: normalised (V, 2) polygons (the camera's ``roi``); empty = the whole image.
        min_box_height: normalised minimum box height (0 disables).

    Example:
        >>> roi = RoiFilter([[(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)]], min_box_height=0.1)
        >>> boxes = np.array([[10, 40, 30, 90], [60, 40, 80, 90], [10, 85, 20, 90]], float)
        >>> roi.mask(boxes, (100, 100)).tolist()  # inside, anchor outside the ROI, too small
        [True, False, False]
    """

    def __init__(self, polygons: Sequence[Sequence[tuple[float, float]]] = (), min_box_height: float = 0.0) -> None:
        self.polygons = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons]
        for polygon in self.polygons:
            if len(polygon) < 3:
                raise ValueError("a region of interest needs at least 3 points")
        if not 0.0 <= min_box_height <= 1.0:
            raise ValueError("min_box_height is a fraction of the image height (0–1)")
        self.min_box_height = float(min_box_height)

    def mask(self, boxes: np.ndarray, image_wh: tuple[int, int]) -> np.ndarray:
        """(N,) bool for (N, 4) xyxy pixel boxes in an image of ``image_wh`` = (width, height) pixels."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        width, height = image_wh
        keep = (boxes[:, 3] - boxes[:, 1]) >= self.min_box_height * height
        if self.polygons and len(boxes):
            anchors = bottom_centers(boxes) / np.array([width, height], np.float64)
            keep &= points_in_any_polygon(anchors, self.polygons)
        return keep

    def __call__(self, detections: D, image_wh: tuple[int, int]) -> D:
        """The subset of ``detections`` (anything with ``boxes`` and boolean-mask indexing, such as
        ``models.detectors.Detections``) that passes."""
        return detections[self.mask(detections.boxes, image_wh)]
