"""Face quality gate: size, detector score, blur and head pose (from the 5 landmarks), all configurable.

A face passes when every measure is within ``[identity.quality]``; its quality (0-1) ranks the faces of a track:
``score × cos(yaw) × min(1, size/64 px) × min(1, sharpness / (2 × min_sharpness))``.

Pose from landmarks (no extra model): roll is the angle of the eye line; yaw comes from the nose tip's offset from
the eye midpoint along the eye line, relative to half the eye distance (``r``): with the nose tip about as far in
front of the eye plane as the eyes are apart from their midpoint, ``yaw ≈ atan(r)`` (0° frontal, 45° when the nose
reaches an eye, larger for profiles).

Example:
    >>> lm = np.array([[[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]]])
    >>> yaw, roll = head_pose(lm)
    >>> abs(float(yaw[0])) < 3, abs(float(roll[0])) < 1
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agent.config.identity_models import FaceQualityConfig
from models.faces.align import ARCFACE_TEMPLATE, similarity_transform

#: Faces at least this large (shorter box side, px) get the full size factor in the quality.
FULL_QUALITY_PX = 64.0
#: Side of the aligned face the sharpness is measured on, at most (smaller faces: their own size, so an
#: upsampled small face is not mistaken for a blurred large one).
SHARPNESS_MAX_SIDE = 112


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """Measures of one face and the gate's verdict (``reason`` names the first failed check)."""

    score: float
    size_px: float
    sharpness: float
    yaw_deg: float
    roll_deg: float
    quality: float
    passed: bool
    reason: str | None = None


def head_pose(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, 2) landmarks → (yaw, roll) in degrees, each (N,). Signs follow the image (positive yaw: nose
    towards the image-right eye)."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    left, right, nose = lm[:, 0], lm[:, 1], lm[:, 2]
    eye_vec = right - left
    eye_dist = np.maximum(np.linalg.norm(eye_vec, axis=1), 1e-6)
    roll = np.degrees(np.arctan2(eye_vec[:, 1], eye_vec[:, 0]))
    along = ((nose - (left + right) / 2) * eye_vec).sum(axis=1) / eye_dist
    yaw = np.degrees(np.arctan(along / (eye_dist / 2)))
    return yaw, roll


def sharpness(image_bgr: np.ndarray, landmarks: np.ndarray, face_px: float) -> float:
    """Variance of the Laplacian of the grey face aligned at (about) its native resolution."""
    side = int(np.clip(round(face_px), 16, SHARPNESS_MAX_SIDE))
    template = ARCFACE_TEMPLATE * (side / 112.0)
    matrix = similarity_transform(landmarks, template)
    face = cv2.warpAffine(image_bgr, matrix, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(image_bgr: np.ndarray, box: np.ndarray, score: float, landmarks: np.ndarray,
           cfg: FaceQualityConfig) -> FaceQuality:
    """Measure one face ((4,) xyxy box and (5, 2) landmarks in ``image_bgr`` pixels) and apply the gate."""
    size = float(min(box[2] - box[0], box[3] - box[1]))
    yaw, roll = (float(v[0]) for v in head_pose(landmarks))
    sharp = sharpness(image_bgr, landmarks, size) if size >= 4 else 0.0
    reason = None
    if score < cfg.min_score:
        reason = "score"
    elif size < cfg.min_face_px:
        reason = "small"
    elif abs(yaw) > cfg.max_yaw_deg:
        reason = "yaw"
    elif abs(roll) > cfg.max_roll_deg:
        reason = "roll"
    elif sharp < cfg.min_sharpness:
        reason = "blur"
    sharp_factor = min(1.0, sharp / (2 * cfg.min_sharpness)) if cfg.min_sharpness > 0 else 1.0
    quality = float(score) * float(np.cos(np.radians(min(abs(yaw), 89.0)))) \
        * min(1.0, size / FULL_QUALITY_PX) * sharp_factor
    return FaceQuality(float(score), size, sharp, yaw, roll, round(quality, 4), reason is None, reason)
