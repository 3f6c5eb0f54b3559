"""YuNet face detector (libfacedetection, WIDER FACE) decoded in numpy: boxes, scores and 5 landmarks.

Model I/O (``yunet_n_dynamic.onnx``): input ``input`` float32 (1, 3, H, W), BGR 0-255, no normalisation, H and W
multiples of 32 (the image is padded bottom/right, so coordinates need no rescaling). Outputs for each stride
s in (8, 16, 32): ``cls_s`` (1, N, 1), ``obj_s`` (1, N, 1), ``bbox_s`` (1, N, 4), ``kps_s`` (1, N, 10), with
N = (H/s)·(W/s) anchors in row-major order. Decode: score = sqrt(clip(cls)·clip(obj)); ``cx = (col + b0)·s``,
``cy = (row + b1)·s``, ``w = exp(b2)·s``, ``h = exp(b3)·s``; landmark k = ``(kps[2k:2k+2] + (col, row))·s`` —
right eye, left eye (as seen in the image: the subject's right eye is on the image's left), nose tip, mouth
corners. Then NMS.

Example:
    >>> det = build_face_detector("yunet-n", model_dir)            # doctest: +SKIP
    >>> faces = det.detect(image_bgr)                               # doctest: +SKIP
    >>> faces.boxes.shape, faces.landmarks.shape                    # doctest: +SKIP
    ((2, 4), (2, 5, 2))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models.detectors.base import nms
from models.runtime import OnnxRunner
from models.spec import UnknownModel

STRIDES = (8, 16, 32)


@dataclass
class Faces:
    """Faces found in one image, in that image's pixels.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2``.
        scores: (N,) float32 in 0-1.
        landmarks: (N, 5, 2) float32 ``(x, y)`` of the two eyes, the nose tip and the two mouth corners, in the
            order of the ArcFace template (image-left eye first).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: np.ndarray | slice | int) -> Faces:
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1)
        return Faces(self.boxes[index], self.scores[index], self.landmarks[index])

    def shifted(self, dx: float, dy: float) -> Faces:
        """The same faces with every coordinate moved by ``(dx, dy)`` (crop → frame coordinates)."""
        offset = np.array([dx, dy], np.float32)
        return Faces(self.boxes + np.tile(offset, 2), self.scores.copy(), self.landmarks + offset)


def decode_yunet(outputs: dict[str, np.ndarray], input_hw: tuple[int, int], *, score_threshold: float = 0.6,
                 nms_iou: float = 0.3, top_k: int = 100) -> Faces:
    """Decode raw YuNet outputs (by output name) for an input of ``input_hw = (H, W)`` pixels.

    Example:
        >>> h = w = 32                       # one anchor per stride-32 cell, zero logits elsewhere
        >>> outs = {f"{k}_{s}": np.zeros((1, (h // s) * (w // s), d), np.float32)
        ...         for s in STRIDES for k, d in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))}
        >>> outs["cls_32"][:] = outs["obj_32"][:] = 0.9
        >>> f = decode_yunet(outs, (h, w))
        >>> f.boxes.tolist(), round(float(f.scores[0]), 2)
        ([[0.0, 0.0, 32.0, 32.0]], 0.9)
    """
    height, width = input_hw
    boxes, scores, kps = [], [], []
    for s in STRIDES:
        cols = width // s
        cls = outputs[f"cls_{s}"].reshape(-1)
        obj = outputs[f"obj_{s}"].reshape(-1)
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        keep = np.nonzero(score >= score_threshold)[0]
        if len(keep) == 0:
            continue
        col = (keep % cols).astype(np.float32)
        row = (keep // cols).astype(np.float32)
        b = outputs[f"bbox_{s}"].reshape(-1, 4)[keep]
        cx, cy = (col + b[:, 0]) * s, (row + b[:, 1]) * s
        w, h = np.exp(b[:, 2]) * s, np.exp(b[:, 3]) * s
        boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1))
        k = outputs[f"kps_{s}"].reshape(-1, 5, 2)[keep]
        kps.append((k + np.stack([col, row], axis=1)[:, None, :]) * s)
        scores.append(score[keep])
    if not scores:
        return Faces()
    all_boxes = np.concatenate(boxes).astype(np.float32)
    all_scores = np.concatenate(scores).astype(np.float32)
    all_kps = np.concatenate(kps).astype(np.float32)
    keep = nms(all_boxes, all_scores, nms_iou)[:top_k]
    return Faces(all_boxes[keep], all_scores[keep], all_kps[keep])


class YunetDetector:
    """YuNet through onnxruntime with the numpy decoder above.

    Args:
        runner: an :class:`OnnxRunner` of a YuNet model (dynamic or fixed input size).
        score_threshold: minimum face score kept by the decoder.
        nms_iou: NMS IoU threshold.
        max_side: images whose longer side exceeds this are downscaled first (keeps cost bounded on full
            frames; crops of person heads are far smaller).
    """

    def __init__(self, runner: OnnxRunner, *, score_threshold: float = 0.6, nms_iou: float = 0.3,
                 max_side: int = 640) -> None:
        self.runner = runner
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.max_side = max_side
        shape = runner.input_shapes[0]
        self.fixed_hw = (shape[2], shape[3]) if shape[2] and shape[3] else None
        self.input_name = runner.input_names[0]

    def detect(self, image_bgr: np.ndarray) -> Faces:
        """Faces in ``image_bgr`` ((H, W, 3) uint8), in its pixel coordinates, best score first."""
        h, w = image_bgr.shape[:2]
        if h < 2 or w < 2:
            return Faces()
        scale = 1.0
        if self.fixed_hw is not None:
            scale = min(self.fixed_hw[0] / h, self.fixed_hw[1] / w)
            canvas_hw = self.fixed_hw
        else:
            if max(h, w) > self.max_side:
                scale = self.max_side / max(h, w)
            canvas_hw = (int(np.ceil(h * scale / 32) * 32), int(np.ceil(w * scale / 32) * 32))
        image = image_bgr
        if scale != 1.0:
            image = cv2.resize(image_bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        canvas = np.zeros((canvas_hw[0], canvas_hw[1], 3), np.float32)
        ih, iw = image.shape[:2]
        canvas[:ih, :iw] = image
        blob = canvas.transpose(2, 0, 1)[None]
        outputs = dict(zip(self.runner.output_names, self.runner.run({self.input_name: blob})))
        faces = decode_yunet(outputs, canvas_hw, score_threshold=self.score_threshold, nms_iou=self.nms_iou)
        if scale != 1.0 and len(faces):
            faces = Faces(faces.boxes / scale, faces.scores, faces.landmarks / scale)
        return faces


def build_face_detector(name_or_path: str | Path, model_dir: Path | None, *, threads: int = 1,
                        score_threshold: float = 0.6, nms_iou: float = 0.3) -> YunetDetector:
    """A YuNet detector for a registry name (``yunet-n``, ``yunet-n-640``) or an ``.onnx`` path."""
    from models.registry import REGISTRY, get_spec, model_path

    text = str(name_or_path)
    if text in REGISTRY:
        spec = get_spec(text)
        if spec.decoder != "yunet":
            raise UnknownModel(f"{text!r} is not a YuNet face detector (decoder {spec.decoder!r}); use yunet-n")
        if model_dir is None:
            raise ValueError("a registry face detector needs model_dir")
        path = model_path(spec, model_dir)
    else:
        path = Path(text).expanduser()
        if not path.is_file() and model_dir is not None and (Path(model_dir) / path).is_file():
            path = Path(model_dir) / path
        if not path.is_file():
            raise UnknownModel(f"face detector {text!r} is neither a registry YuNet model nor an existing file")
    return YunetDetector(OnnxRunner(path, threads), score_threshold=score_threshold, nms_iou=nms_iou)
