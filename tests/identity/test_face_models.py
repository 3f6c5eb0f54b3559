"""Face models on real data: the numpy YuNet decoder, 5-point alignment, the ArcFace-style embedder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.identity.face_support import SHARED_MODELS, face_pipeline, photo
from models.faces import ARCFACE_TEMPLATE, align_face, decode_yunet, similarity_transform

PHOTOS = [("Colin_Powell", 44), ("Tiger_Woods", 1), ("Laura_Bush", 3), ("Hans_Blix", 2), ("Winona_Ryder", 5)]


@pytest.mark.parametrize(("name", "number"), PHOTOS)
def test_numpy_decoder_matches_opencv_and_finds_landmarks(name: str, number: int) -> None:
    image = photo(name, number)
    faces = face_pipeline().detector.detect(image)
    assert len(faces) >= 1
    ref = cv2.FaceDetectorYN.create(str(SHARED_MODELS / "face_detection" / "yunet_n_dynamic.onnx"), "",
                                    (image.shape[1], image.shape[0]), 0.6, 0.3, 50)
    _, found = ref.detect(image)
    assert found is not None and len(found) == len(faces)
    ref_boxes = np.concatenate([found[:, :2], found[:, :2] + found[:, 2:4]], axis=1)
    order = np.argsort(-found[:, 14])
    np.testing.assert_allclose(faces.boxes, ref_boxes[order], atol=1.0)
    np.testing.assert_allclose(faces.landmarks.reshape(-1, 10), found[order, 4:14], atol=1.0)
    for box, lm in zip(faces.boxes, faces.landmarks):
        assert ((lm >= box[:2] - 2) & (lm <= box[2:] + 2)).all(), "landmarks lie inside their face box"
        eyes_y, nose_y, mouth_y = lm[:2, 1].mean(), lm[2, 1], lm[3:, 1].mean()
        assert eyes_y < nose_y < mouth_y
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0], "image-left eye/mouth corner first"


def test_central_face_is_the_labelled_person() -> None:
    # Colin_Powell_0044 also shows another face; the labelled person is the one nearest the centre.
    image = photo("Colin_Powell", 44)
    face = face_pipeline().central_face(image)
    centre = (face.boxes[0, :2] + face.boxes[0, 2:]) / 2
    others = face_pipeline().detector.detect(image)
    dists = np.linalg.norm((others.boxes[:, :2] + others.boxes[:, 2:]) / 2 - 125, axis=1)
    assert np.linalg.norm(centre - 125) == pytest.approx(dists.min(), abs=1e-3)


def test_decoder_on_hand_made_outputs() -> None:
    h = w = 64
    outs = {f"{k}_{s}": np.zeros((1, (h // s) * (w // s), d), np.float32)
            for s in (8, 16, 32) for k, d in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))}
    # one confident anchor at stride 16, row 1, col 2 (index 1*4+2), box offset (0.5, 0.5), size exp(0)*16
    outs["cls_16"][0, 6] = outs["obj_16"][0, 6] = 0.81
    outs["bbox_16"][0, 6] = [0.5, 0.5, 0.0, 0.0]
    outs["kps_16"][0, 6] = np.tile([0.25, 0.75], 5)
    faces = decode_yunet(outs, (h, w), score_threshold=0.5)
    assert len(faces) == 1
    assert faces.scores[0] == pytest.approx(0.81, abs=1e-6)
    np.testing.assert_allclose(faces.boxes[0], [32, 16, 48, 32])
    np.testing.assert_allclose(faces.landmarks[0], np.tile([[36, 28]], (5, 1)))


def test_similarity_transform_maps_landmarks_onto_the_template() -> None:
    angle, scale, shift = np.radians(20), 1.7, np.array([40.0, 25.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = ARCFACE_TEMPLATE @ rot.T + shift
    matrix = similarity_transform(landmarks)
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE, atol=1e-3)
    np.testing.assert_allclose(np.linalg.det(matrix[:, :2]), 1 / scale**2, rtol=1e-4)


def test_alignment_puts_the_eyes_on_the_template() -> None:
    image = photo("Tiger_Woods", 1)
    pipe = face_pipeline()
    face = pipe.central_face(image)
    aligned = align_face(image, face.landmarks[0])
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    again = pipe.detector.detect(cv2.copyMakeBorder(aligned, 56, 56, 56, 56, cv2.BORDER_CONSTANT))
    assert len(again) >= 1
    eyes = again.landmarks[0, :2] - 56
    np.testing.assert_allclose(eyes, ARCFACE_TEMPLATE[:2], atol=6.0)


def test_same_person_embeddings_are_closer_than_different_people() -> None:
    pipe = face_pipeline()
    people = {"George_W_Bush": (1, 2, 3), "Colin_Powell": (1, 2, 3), "Laura_Bush": (1, 2, 3)}
    emb, labels = [], []
    for label, (name, numbers) in enumerate(people.items()):
        for number in numbers:
            result = pipe.embed_photo(photo(name, number))
            assert result is not None
            vec, _ = result
            assert vec.shape == (128,) and np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-4)
            emb.append(vec)
            labels.append(label)
    emb, labels = np.stack(emb), np.array(labels)
    sims = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    genuine, impostor = sims[same & off_diag], sims[~same]
    assert genuine.min() > impostor.max()
    assert genuine.mean() > 0.4 > impostor.mean()


def test_fixed_size_yunet_variant_finds_the_same_faces() -> None:
    from tests.identity.face_support import video_frames
    from models.faces import build_face_detector

    dynamic = face_pipeline().detector
    fixed = build_face_detector("yunet-n-640", SHARED_MODELS)
    assert fixed.fixed_hw == (640, 640) and dynamic.fixed_hw is None
    for image in (photo("Tiger_Woods", 1), video_frames()[0]):
        a, b = dynamic.detect(image), fixed.detect(image)
        assert len(a) == len(b) >= 1
        order_a, order_b = a.boxes[:, 0].argsort(), b.boxes[:, 0].argsort()
        np.testing.assert_allclose(a.boxes[order_a], b.boxes[order_b], atol=6.0)
