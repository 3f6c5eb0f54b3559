"""The face quality gate: blur, size, pose (from landmarks) and detector score, with configurable thresholds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from agent.config.identity_models import FaceQualityConfig
from agent.identity.face_quality import assess, head_pose
from tests.identity.face_support import face_pipeline, photo
from models.faces import ARCFACE_TEMPLATE


def _central(image: np.ndarray):
    face = face_pipeline().central_face(image)
    assert len(face) == 1
    return face.boxes[0], float(face.scores[0]), face.landmarks[0]


def test_sharp_frontal_face_passes() -> None:
    image = photo("Tiger_Woods", 1)
    q = assess(image, *_central(image), FaceQualityConfig())
    assert q.passed and q.reason is None
    assert 0.5 < q.quality <= 1.0
    assert q.size_px > 80 and abs(q.roll_deg) < 15


def test_blurred_face_is_rejected() -> None:
    image = photo("Tiger_Woods", 1)
    sharp = assess(image, *_central(image), FaceQualityConfig())
    blurred_image = cv2.GaussianBlur(image, (0, 0), 4)
    blurred = assess(blurred_image, *_central(blurred_image), FaceQualityConfig())
    assert not blurred.passed and blurred.reason == "blur"
    assert blurred.sharpness < sharp.sharpness / 5
    assert blurred.quality < sharp.quality


def test_small_face_is_rejected_and_threshold_is_configurable() -> None:
    small_image = cv2.resize(photo("Tiger_Woods", 1), (80, 80), interpolation=cv2.INTER_AREA)
    box, score, lm = _central(small_image)
    q = assess(small_image, box, score, lm, FaceQualityConfig())
    assert q.size_px < 36 and not q.passed and q.reason == "small"
    relaxed = assess(small_image, box, score, lm, FaceQualityConfig(min_face_px=12, min_sharpness=0.0))
    assert relaxed.passed


def test_profile_is_rejected_by_yaw() -> None:
    image = photo("Tiger_Woods", 1)
    box, score, lm = _central(image)
    profile = lm.copy()
    eye_mid = lm[:2].mean(axis=0)
    half = np.linalg.norm(lm[1] - lm[0]) / 2
    profile[2, 0] = eye_mid[0] + 1.6 * half  # nose tip beyond the image-right eye: head turned ~58°
    q = assess(image, box, score, profile, FaceQualityConfig())
    assert abs(q.yaw_deg) > 50 and not q.passed and q.reason == "yaw"
    assert assess(image, box, score, profile, FaceQualityConfig(max_yaw_deg=70)).reason != "yaw"


@pytest.mark.parametrize(("name", "number"), [("Winona_Ryder", 5), ("Tiger_Woods", 1)])
def test_head_pose_sign_flips_with_a_mirrored_photo(name: str, number: int) -> None:
    image = photo(name, number)  # heads visibly turned (~15-20°)
    _, _, lm = _central(image)
    _, _, lm_flipped = _central(cv2.flip(image, 1))
    yaw, roll = head_pose(np.stack([lm, lm_flipped]))
    assert abs(yaw[0]) > 10, "this photo is not frontal"
    assert np.sign(yaw[0]) == -np.sign(yaw[1])
    assert abs(abs(yaw[0]) - abs(yaw[1])) < 4
    assert abs(roll[0] + roll[1]) < 4


def test_template_landmarks_are_frontal() -> None:
    yaw, roll = head_pose(ARCFACE_TEMPLATE[None])
    assert abs(yaw[0]) < 2 and abs(roll[0]) < 1


def test_low_detector_score_is_rejected() -> None:
    image = photo("Tiger_Woods", 1)
    box, _, lm = _central(image)
    assert assess(image, box, 0.3, lm, FaceQualityConfig()).reason == "score"
