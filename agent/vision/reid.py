"""Person appearance vectors for re-linking lost tracks (non-biometric: clothing and body shape, not faces),
with the Intel Open Model Zoo person re-identification model from the model registry.

Vectors live only in the tracker's memory; nothing is stored or sent.

Example:
    >>> reid = PersonReid.from_registry(Path("/var/lib/store-agent/models"))  # doctest: +SKIP
    >>> tracks = tracker.update(boxes, scores, ts, embed=reid.embedder(image, boxes))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

#: Model input: 128 wide × 256 high, NHWC, BGR 0–255 (normalisation is inside the graph; MANIFEST.md).
REID_SIZE = (128, 256)


def crop_batch(image_bgr: np.ndarray, boxes: np.ndarray, size: tuple[int, int] = REID_SIZE) -> np.ndarray:
    """(N, 4) xyxy boxes of ``image_bgr`` → (N, H, W, 3) float32 BGR crops resized to ``size`` = (W, H).
    Boxes are clipped to the image; an empty box gives a grey crop."""
    h, w = image_bgr.shape[:2]
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = np.clip(np.round(b[:, [0, 2]]), 0, w)
    b[:, [1, 3]] = np.clip(np.round(b[:, [1, 3]]), 0, h)
    out = np.full((len(b), size[1], size[0], 3), 128.0, np.float32)
    for i, (x1, y1, x2, y2) in enumerate(b.astype(int)):
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            out[i] = cv2.resize(image_bgr[y1:y2, x1:x2], size, interpolation=cv2.INTER_LINEAR)
    return out


class PersonReid:
    """``embed(image, boxes) -> (N, 256)`` L2-normalised appearance vectors.

    Args:
        runner: a ``models.runtime`` runner of ``person-reid-0248`` (or -0288) — input ``inputs:0``
            [1, 256, 128, 3], output [1, 256]. The model takes one crop per call.
    """

    def __init__(self, runner: object) -> None:
        self.runner = runner
        self._input = runner.input_names[0]  # type: ignore[attr-defined]

    @classmethod
    def from_registry(cls, model_dir: Path, name: str = "person-reid-0248", threads: int = 1) -> PersonReid:
        from models.registry import model_path
        from models.runtime import OnnxRunner

        return cls(OnnxRunner(model_path(name, Path(model_dir)), threads))

    def embed(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        crops = crop_batch(image_bgr, boxes)
        if not len(crops):
            return np.zeros((0, 256), np.float32)
        vectors = np.concatenate([self.runner.run({self._input: crop[None]})[0]  # type: ignore[attr-defined]
                                  for crop in crops]).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embedder(self, image_bgr: np.ndarray, boxes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """``embed(det_indices)`` for :meth:`agent.vision.bytetrack.ByteTracker.update`: the tracker asks only
        for the detections it needs (lost-track candidates and stale track vectors), so most frames cost no
        re-id inference."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)

        def embed(indices: np.ndarray) -> np.ndarray:
            return self.embed(image_bgr, boxes[np.asarray(indices, np.int64)])

        return embed
