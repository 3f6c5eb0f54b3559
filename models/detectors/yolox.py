"""YOLOX decoder: YOLOX-Nano 416 (COCO, 80 classes) and the 192 px person-only detector (same head, 1 class)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.detectors.base import Detections, Detector, letterbox, nms
from models.runtime import Runner, RunnerError

STRIDES = (8, 16, 32)


def yolox_grids(width: int, height: int, strides: Sequence[int] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Anchor grid of a YOLOX head: row-major per stride, x fastest, strides in order.

    Returns:
        grid: (A, 2) float32 cell ``(col, row)``.
        stride: (A, 1) float32 stride of each anchor.

    Example:
        >>> g, s = yolox_grids(416, 416)
        >>> g.shape, g[:2].tolist(), float(s[-1, 0])
        ((3549, 2), [[0.0, 0.0], [1.0, 0.0]], 32.0)
    """
    grids, expanded = [], []
    for stride in strides:
        rows, cols = height // stride, width // stride
        yv, xv = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        grids.append(np.stack([xv, yv], axis=2).reshape(-1, 2))
        expanded.append(np.full((rows * cols, 1), stride))
    return np.concatenate(grids).astype(np.float32), np.concatenate(expanded).astype(np.float32)


class YoloxDetector(Detector):
    """A raw (undecoded) YOLOX head ``[1, A, 5 + nc]``: ``cx, cy, w, h, objectness, class scores``.

    Input: BGR 0–255 float32 NCHW, letterboxed top-left with pad 114 (:func:`letterbox`). Decoding:
    ``cx, cy = (p[0:2] + grid) * stride``, ``w, h = exp(p[2:4]) * stride``, score = objectness × class score
    (the best of ``classes`` per anchor), then class-aware NMS; boxes are divided by the letterbox ratio and
    clipped to the image. The anchor grid is computed once, at construction.

    Args:
        runner: a :class:`~models.runtime.Runner` for the ONNX file (one input ``[1, 3, H, W]``).
        score_threshold: minimum score kept.
        nms_iou: NMS IoU threshold (YOLOX demo: 0.45).
        classes: class indices to report (``(0,)`` = person); ``None`` = all classes.
    """

    def __init__(self, runner: Runner, *, score_threshold: float = 0.35, nms_iou: float = 0.45,
                 classes: Sequence[int] | None = (0,), strides: Sequence[int] = STRIDES) -> None:
        shape = runner.input_shapes[0]
        if len(shape) != 4 or shape[2] is None or shape[3] is None:
            raise RunnerError(f"YOLOX needs a fixed [1, 3, H, W] input, the model has {shape}")
        self.runner = runner
        self.input_name = runner.input_names[0]
        self.input_size = (int(shape[3]), int(shape[2]))
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.grid, self.stride = yolox_grids(*self.input_size, strides)
        self.num_classes: int | None = None
        self.classes = None if classes is None else np.asarray(list(classes), np.int64)
        self._class_index: np.ndarray | None = None

    def _columns(self, n_cols: int) -> np.ndarray:
        """Column indices of the wanted class scores, checked against the model once."""
        if self._class_index is None:
            nc = n_cols - 5
            if nc < 1:
                raise RunnerError(f"YOLOX output needs 5 + classes columns, got {n_cols}")
            if self.classes is not None and (self.classes.min() < 0 or self.classes.max() >= nc):
                raise ValueError(f"classes {self.classes.tolist()} out of range for a {nc}-class model")
            self.num_classes = nc
            wanted = np.arange(nc) if self.classes is None else self.classes
            self._class_index = 5 + wanted
        return self._class_index

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """(1, 3, H, W) float32 blob and the letterbox ratio."""
        canvas, ratio = letterbox(image_bgr, self.input_size)
        return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio

    def decode(self, raw: np.ndarray, ratio: float, image_shape: tuple[int, ...]) -> Detections:
        """Detections from the raw head output ``(1, A, 5 + nc)`` for an image of ``image_shape`` (H, W, ...)."""
        pred = raw.reshape(raw.shape[-2], raw.shape[-1])
        if pred.shape[0] != len(self.grid):
            raise RunnerError(f"YOLOX output has {pred.shape[0]} anchors, the {self.input_size} grid has "
                              f"{len(self.grid)}")
        columns = self._columns(pred.shape[1])
        scores_all = pred[:, 4:5] * pred[:, columns]                      # (A, k)
        best = scores_all.argmax(axis=1)
        scores = scores_all[np.arange(len(best)), best]
        mask = scores > self.score_threshold
        if not mask.any():
            return Detections.empty()
        p, grid, stride = pred[mask], self.grid[mask], self.stride[mask]
        centers = (p[:, 0:2] + grid) * stride
        half = np.exp(p[:, 2:4]) * stride / 2
        boxes = np.concatenate([centers - half, centers + half], axis=1) / ratio
        h, w = image_shape[:2]
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        class_ids = columns[best[mask]] - 5
        keep = nms(boxes, scores[mask], self.nms_iou, class_ids)
        return Detections(boxes[keep], scores[mask][keep], class_ids[keep])

    def detect(self, image_bgr: np.ndarray) -> Detections:
        blob, ratio = self.preprocess(image_bgr)
        raw = self.runner.run({self.input_name: blob})[0]
        return self.decode(raw, ratio, image_bgr.shape)
