"""Occupancy heatmap: a coarse grid of where floor anchors were, accumulated per interval, rendered to PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.analytics.geometry import as_points

#: Canvas size (width, height) when no snapshot is given.
DEFAULT_CANVAS = (640, 360)


class Heatmap:
    """A (rows, cols) grid over the normalised image; each anchor adds its weight to the cell it falls in.

    Args:
        grid: ``(cols, rows)`` as in the config's ``heatmap_grid``.

    Example:
        >>> hm = Heatmap(grid=(4, 2))
        >>> hm.add(np.array([[0.1, 0.1], [0.9, 0.9], [0.95, 0.99]]))
        >>> hm.grid().astype(int).tolist()
        [[1, 0, 0, 0], [0, 0, 0, 2]]
    """

    def __init__(self, grid: tuple[int, int] = (32, 18)) -> None:
        cols, rows = int(grid[0]), int(grid[1])
        if cols < 1 or rows < 1:
            raise ValueError("heatmap grid must be at least 1×1")
        self.cols, self.rows = cols, rows
        self._grid = np.zeros(rows * cols, dtype=np.float64)
        self._scale = np.array([cols, rows], dtype=np.float64)
        self._last = np.array([cols - 1, rows - 1], dtype=np.int64)

    def cells(self, anchors: np.ndarray) -> np.ndarray:
        """(N, 2) anchors → (N,) flat row-major cell indices (points outside 0–1 are clipped to the border)."""
        p = as_points(anchors)
        cr = np.minimum(np.maximum((p * self._scale).astype(np.int64), 0), self._last)  # (N, 2) col, row
        return cr[:, 1] * self.cols + cr[:, 0]

    def add(self, anchors: np.ndarray, weight: float | np.ndarray = 1.0) -> None:
        """Accumulate anchors.

        Args:
            anchors: (N, 2) normalised points; non-finite rows are ignored.
            weight: scalar or (N,) weights (e.g. seconds each anchor stands for).
        """
        p = as_points(anchors)
        if len(p) == 0:
            return
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (len(p),))
        ok = np.isfinite(p).all(axis=1) & np.isfinite(w)
        if not ok.all():
            p, w = p[ok], w[ok]
        np.add.at(self._grid, self.cells(p), w)

    def merge(self, other: Heatmap) -> None:
        """Add another heatmap of the same grid."""
        if (other.cols, other.rows) != (self.cols, self.rows):
            raise ValueError("heatmap grids differ")
        self._grid += other._grid

    def grid(self) -> np.ndarray:
        """(rows, cols) accumulated weights (a copy)."""
        return self._grid.reshape(self.rows, self.cols).copy()

    def total(self) -> float:
        """Sum of all cells."""
        return float(self._grid.sum())

    def reset(self) -> None:
        """Zero every cell."""
        self._grid[:] = 0.0

    def render_png(self, path: str | Path | None = None, snapshot_bgr: np.ndarray | None = None, **kwargs) -> bytes:
        """PNG of this grid over a snapshot (see ``render_png``)."""
        return render_png(self.grid(), path=path, snapshot_bgr=snapshot_bgr, **kwargs)


def render_overlay(grid: np.ndarray, snapshot_bgr: np.ndarray | None = None, *, size: tuple[int, int] | None = None,
                   alpha: float = 0.55, colormap: int = cv2.COLORMAP_JET, gamma: float = 0.5) -> np.ndarray:
    """Colour-map a grid and blend it over a snapshot.

    Args:
        grid: (rows, cols) non-negative weights.
        snapshot_bgr: (H, W, 3) uint8 BGR image, or ``None`` for a dark canvas.
        size: ``(width, height)`` of the canvas when there is no snapshot (default 640×360).
        alpha: opacity of the heat colours where there is heat (cells with zero weight stay transparent).
        colormap: an OpenCV colormap.
        gamma: exponent applied to the normalised weights (< 1 lifts rarely visited cells).

    Returns:
        (H, W, 3) uint8 BGR image.
    """
    g = np.nan_to_num(np.asarray(grid, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    if snapshot_bgr is None:
        width, height = size or DEFAULT_CANVAS
        base = np.full((height, width, 3), 40, dtype=np.uint8)
    else:
        base = np.ascontiguousarray(snapshot_bgr, dtype=np.uint8)
        if base.ndim == 2:
            base = cv2.cvtColor(base, cv2.COLOR_GRAY2BGR)
        height, width = base.shape[:2]
    peak = float(g.max()) if g.size else 0.0
    if peak <= 0.0:
        return base.copy()
    norm = (g / peak) ** gamma
    heat = cv2.resize(norm.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap((heat * 255.0).clip(0, 255).astype(np.uint8), colormap)
    mask = cv2.resize((g > 0).astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    a = (alpha * np.clip(mask, 0.0, 1.0))[:, :, None]
    return (base.astype(np.float32) * (1.0 - a) + colours.astype(np.float32) * a).round().astype(np.uint8)


def render_png(grid: np.ndarray, path: str | Path | None = None, snapshot_bgr: np.ndarray | None = None,
               **kwargs) -> bytes:
    """Encode ``render_overlay(grid, snapshot_bgr, **kwargs)`` as PNG; also write it to ``path`` if given.

    Returns:
        The PNG bytes.
    """
    image = render_overlay(grid, snapshot_bgr, **kwargs)
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV failure
        raise RuntimeError("PNG encoding failed")
    data = buf.tobytes()
    if path is not None:
        Path(path).write_bytes(data)
    return data
