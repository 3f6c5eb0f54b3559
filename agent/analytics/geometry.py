"""Pure, vectorised geometry on normalised image coordinates: (0, 0) top-left, (1, 1) bottom-right, y down.

Nothing here keeps state; every function takes arrays of points and returns arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: A point in normalised image coordinates.
XY = tuple[float, float]


def as_points(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Coerce to a float64 array of shape (N, 2) (an empty input gives shape (0, 2))."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    return arr.reshape(-1, 2)


def bottom_centers(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Floor anchors of boxes: the bottom-centre point of each box.

    Args:
        boxes: (N, 4) ``x1, y1, x2, y2`` (normalised to 0–1 upstream).

    Returns:
        (N, 2) ``((x1 + x2) / 2, y2)``.

    Example:
        >>> bottom_centers(np.array([[0.2, 0.1, 0.4, 0.9]])).tolist()
        [[0.30000000000000004, 0.9]]
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, b[:, 3]], axis=1)


class PolygonTest:
    """Crossing-number (even–odd) point-in-polygon test with the polygon's edges precomputed.

    Works for concave polygons. Points exactly on an edge may fall either way.

    Args:
        polygon: (V, 2) vertices in order (V ≥ 3; the closing edge is implied).

    Example:
        >>> inside = PolygonTest([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
        >>> inside(np.array([[0.5, 0.5], [1.5, 0.5]])).tolist()
        [True, False]
    """

    def __init__(self, polygon: np.ndarray | Sequence[XY]) -> None:
        poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3:
            raise ValueError("a polygon needs at least 3 vertices")
        self.vertices = poly
        self._xi, self._yi = poly[:, 0], poly[:, 1]
        xj, self._yj = np.roll(self._xi, 1), np.roll(self._yi, 1)
        dy = self._yj - self._yi
        self._slope = (xj - self._xi) / np.where(dy == 0.0, 1.0, dy)  # dx/dy of each edge

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) points → (N,) bool, True where inside (vectorised over points × edges)."""
        p = as_points(points)
        x, y = p[:, 0:1], p[:, 1:2]  # (N, 1) against (V,) edges
        straddles = (self._yi > y) != (self._yj > y)  # (N, V)
        x_cross = self._xi + (y - self._yi) * self._slope
        return (np.count_nonzero(straddles & (x < x_cross), axis=1) & 1).astype(bool)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray | Sequence[XY]) -> np.ndarray:
    """Crossing-number point-in-polygon test (see ``PolygonTest``; build one to test many frames).

    Args:
        points: (N, 2) query points.
        polygon: (V, 2) vertices in order.

    Returns:
        (N,) bool, True where the point is inside.

    Example:
        >>> square = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
        >>> points_in_polygon(np.array([[0.5, 0.5], [1.5, 0.5]]), square).tolist()
        [True, False]
    """
    return PolygonTest(polygon)(points)


def ray_exit_distance(origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Distance from each origin, along one unit direction, to the border of the unit square [0, 1]².

    Args:
        origins: (N, 2) points (normally inside the square).
        direction: (2,) unit vector.

    Returns:
        (N,) distances ≥ 0 (0 for an origin on or outside the border in that direction).
    """
    o = as_points(origins)
    out = np.full(len(o), np.inf)
    for axis in (0, 1):
        v = float(direction[axis])
        if v > 1e-12:
            out = np.minimum(out, (1.0 - o[:, axis]) / v)
        elif v < -1e-12:
            out = np.minimum(out, -o[:, axis] / v)
    return np.maximum(out, 0.0)


@dataclass(frozen=True, slots=True)
class LineFrame:
    """A segment's local frame: origin at ``start``, ``u`` along the segment, ``n`` its IN normal.

    ``n`` is ``u`` turned 90° clockwise *as seen on the image* (y grows downwards): ``n = (-u_y, u_x)``.
    A segment drawn left→right (u = (1, 0)) has n = (0, 1), i.e. IN points down the image.
    """

    origin: np.ndarray  # (2,)
    u: np.ndarray  # (2,) unit vector start→end
    n: np.ndarray  # (2,) unit IN normal
    length: float

    @classmethod
    def from_points(cls, start: XY, end: XY) -> LineFrame:
        """Build the frame of the segment ``start → end`` (normalised points)."""
        a = np.asarray(start, dtype=np.float64)
        b = np.asarray(end, dtype=np.float64)
        d = b - a
        length = float(np.hypot(d[0], d[1]))
        if length < 1e-9:
            raise ValueError("line start and end must differ")
        u = d / length
        return cls(origin=a, u=u, n=np.array([-u[1], u[0]]), length=length)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distance to the (infinite) line and position along it.

        Args:
            points: (N, 2).

        Returns:
            ``(d, t)``, both (N,): ``d > 0`` on the IN side; ``t`` in [0, length] is over the segment.
        """
        rel = as_points(points) - self.origin
        return rel @ self.n, rel @ self.u

    def point_at(self, t: np.ndarray) -> np.ndarray:
        """(N,) along-line positions → (N, 2) points on the line."""
        return self.origin + np.asarray(t, dtype=np.float64)[:, None] * self.u

    def room_to_border(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How far the image extends on each side of the segment, measured along the normal.

        Args:
            t: (N,) along-line positions (clipped to the segment before measuring).

        Returns:
            ``(room_in, room_out)``, both (N,): distance from the segment point to the image border along
            ``+n`` and along ``-n``.
        """
        q = self.point_at(np.clip(np.asarray(t, dtype=np.float64), 0.0, self.length))
        return ray_exit_distance(q, self.n), ray_exit_distance(q, -self.n)
