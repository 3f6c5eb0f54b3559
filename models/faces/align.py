"""5-point similarity alignment of a face to the ArcFace 112×112 template (in memory only).

Example:
    >>> m = similarity_transform(ARCFACE_TEMPLATE * 2 + 10)        # a face twice as large, shifted
    >>> np.round(m, 3).tolist()
    [[0.5, 0.0, -5.0], [0.0, 0.5, -5.0]]
"""

from __future__ import annotations

import cv2
import numpy as np

#: Landmark positions of the ArcFace 112×112 crop: image-left eye, image-right eye, nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
ALIGNED_SIZE = 112


def similarity_transform(landmarks: np.ndarray, template: np.ndarray = ARCFACE_TEMPLATE) -> np.ndarray:
    """(2, 3) similarity (rotation, uniform scale, translation) mapping (5, 2) ``landmarks`` onto ``template``,
    least squares over all points (``cv2.estimateAffinePartial2D`` with plain LMEDS-free fitting)."""
    src = np.asarray(landmarks, np.float32).reshape(5, 2)
    matrix, _ = cv2.estimateAffinePartial2D(src, template, method=cv2.LMEDS)
    if matrix is None:  # degenerate points (all equal): fall back to a pure translation to the template centre
        matrix = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
        matrix[:, 2] = template.mean(axis=0) - src.mean(axis=0)
    return matrix


def align_face(image_bgr: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE) -> np.ndarray:
    """The (size, size, 3) uint8 BGR face warped so its landmarks sit on the ArcFace template."""
    template = ARCFACE_TEMPLATE * (size / ALIGNED_SIZE)
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(image_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))
