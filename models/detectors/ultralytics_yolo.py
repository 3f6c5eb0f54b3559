"""Decoder for Ultralytics YOLO ONNX exports (YOLOv8, YOLO11, YOLO26 / end-to-end, ``nms=True`` exports).

Ultralytics' export conventions (``ultralytics/engine/exporter.py``, ``LetterBox``):

- input ``images`` float32 ``[1, 3, H, W]``, **RGB, x / 255**, letterboxed **centred** with pad 114;
- YOLOv8 / YOLO11 detect head: ``output0`` ``[1, 4 + nc, N]`` — ``cx, cy, w, h`` in input pixels then ``nc``
  class scores (already sigmoid; no objectness), needs NMS;
- YOLO26 (end-to-end one-to-one head, the default) and exports with ``nms=True``: ``[1, N, 6]`` — ``x1, y1, x2, y2,
  score, class`` (N = max_det, 300), NMS-free, unused rows have score 0;
- metadata (``names``, ``imgsz``, ``task``, ``stride``) in the ONNX ``metadata_props``.

The layout is read from the output's shape on every run: ``[1, N, 6]`` with ``N > 6`` is end-to-end, ``[1, C, N]``
with ``C < N`` is the v8/v11 head (a 2-class v8 head ``[1, 6, 8400]`` is therefore not mistaken for end-to-end).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Literal

import numpy as np

from models.detectors.base import Detections, Detector, letterbox_centered, nms
from models.runtime import Runner, RunnerError

Layout = Literal["v8", "end2end"]
DEFAULT_IMGSZ = 640


def output_layout(shape: Sequence[int]) -> Layout:
    """``"end2end"`` for ``[1, N, 6]`` (N > 6), ``"v8"`` for ``[1, 4 + nc, N]`` (4 + nc < N).

    Example:
        >>> output_layout((1, 84, 8400)), output_layout((1, 300, 6)), output_layout((1, 6, 8400))
        ('v8', 'end2end', 'v8')
    """
    if len(shape) != 3 or shape[0] != 1:
        raise RunnerError(f"not an Ultralytics detect output: shape {tuple(shape)} (expected [1, 4+nc, N] or "
                          "[1, N, 6])")
    _, a, b = shape
    if b == 6 and a > 6:
        return "end2end"
    if 5 <= a < b:
        return "v8"
    raise RunnerError(f"cannot tell the Ultralytics output layout from shape {tuple(shape)}")


def parse_metadata(metadata: dict[str, str]) -> tuple[tuple[int, int] | None, dict[int, str]]:
    """``(imgsz as (width, height) or None, names)`` from Ultralytics' ONNX metadata (string values)."""
    imgsz: tuple[int, int] | None = None
    names: dict[int, str] = {}
    try:
        raw = ast.literal_eval(metadata["imgsz"]) if "imgsz" in metadata else None
        if isinstance(raw, int):
            imgsz = (raw, raw)
        elif isinstance(raw, (list, tuple)) and len(raw) == 2:
            imgsz = (int(raw[1]), int(raw[0]))  # Ultralytics stores [height, width]
    except (ValueError, SyntaxError):
        imgsz = None
    try:
        raw_names = ast.literal_eval(metadata["names"]) if "names" in metadata else {}
        if isinstance(raw_names, dict):
            names = {int(k): str(v) for k, v in raw_names.items()}
        elif isinstance(raw_names, (list, tuple)):
            names = dict(enumerate(map(str, raw_names)))
    except (ValueError, SyntaxError):
        names = {}
    return imgsz, names


class UltralyticsDetector(Detector):
    """Ultralytics YOLO ONNX export: centred letterbox, RGB/255 input; v8/v11 or end-to-end output.

    Args:
        runner: runner of the ``.onnx`` file; ``runner.metadata`` (if present) gives ``imgsz`` and ``names``.
        score_threshold: minimum class score.
        nms_iou: IoU threshold of the class-aware NMS (v8/v11 layout only; end-to-end output is NMS-free).
        classes: class indices to keep (``(0,)`` = person for COCO models); ``None`` = all.
        imgsz: input ``(width, height)`` for models with a dynamic input; default: the input shape, else the
            metadata, else 640.
    """

    def __init__(self, runner: Runner, *, score_threshold: float = 0.35, nms_iou: float = 0.45,
                 classes: Sequence[int] | None = (0,), imgsz: tuple[int, int] | None = None) -> None:
        shape = runner.input_shapes[0]
        if len(shape) != 4:
            raise RunnerError(f"Ultralytics detector needs an NCHW input, the model has {shape}")
        meta_size, self.names = parse_metadata(getattr(runner, "metadata", {}) or {})
        if shape[2] is not None and shape[3] is not None:
            self.input_size = (int(shape[3]), int(shape[2]))
        else:
            self.input_size = imgsz or meta_size or (DEFAULT_IMGSZ, DEFAULT_IMGSZ)
        self.runner = runner
        self.input_name = runner.input_names[0]
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.classes = None if classes is None else np.asarray(list(classes), np.int64)
        self.last_layout: Layout | None = None

    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        """(1, 3, H, W) float32 RGB 0–1 blob, letterbox ratio and ``(left, top)`` padding."""
        canvas, ratio, pad = letterbox_centered(image_bgr, self.input_size)
        blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) * (1.0 / 255.0)
        return blob, ratio, pad

    def decode(self, raw: np.ndarray, ratio: float, pad: tuple[int, int],
               image_shape: tuple[int, ...]) -> Detections:
        """Detections in original pixels from one raw output (either layout)."""
        layout = output_layout(raw.shape)
        self.last_layout = layout
        if layout == "end2end":
            rows = raw[0]
            boxes, scores, class_ids = rows[:, :4].astype(np.float32), rows[:, 4], rows[:, 5].astype(np.int64)
            mask = scores > self.score_threshold
            if self.classes is not None:
                mask &= np.isin(class_ids, self.classes)
            boxes, scores, class_ids = boxes[mask], scores[mask], class_ids[mask]
            keep = np.argsort(-scores, kind="stable")
        else:
            pred = raw[0]                                            # (4 + nc, N)
            if self.classes is not None and self.classes.max() >= pred.shape[0] - 4:
                raise ValueError(f"classes {self.classes.tolist()} out of range for a {pred.shape[0] - 4}-class "
                                 "model")
            cls = pred[4:] if self.classes is None else pred[4 + self.classes]
            best = cls.argmax(axis=0)
            scores_all = cls[best, np.arange(cls.shape[1])]
            mask = scores_all > self.score_threshold
            if not mask.any():
                return Detections.empty()
            xywh = pred[:4, mask].T
            boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
            scores = scores_all[mask]
            class_ids = best[mask] if self.classes is None else self.classes[best[mask]]
            keep = nms(boxes, scores, self.nms_iou, class_ids)
        if len(keep) == 0:
            return Detections.empty()
        boxes = (boxes[keep] - np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)) / ratio
        h, w = image_shape[:2]
        np.clip(boxes, 0, [w, h, w, h], out=boxes)
        return Detections(boxes, scores[keep], class_ids[keep])

    def detect(self, image_bgr: np.ndarray) -> Detections:
        blob, ratio, pad = self.preprocess(image_bgr)
        raw = self.runner.run({self.input_name: blob})[0]
        return self.decode(raw, ratio, pad, image_bgr.shape)
