"""models.detectors.base: greedy NMS keeps exactly what the greedy definition keeps; both letterboxes place the
resized image where the decoders assume and pad with 114; Detections validates its arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.detectors.base import PAD_VALUE, Detections, box_iou_matrix, letterbox, letterbox_centered, nms

coord = st.floats(0, 500, allow_nan=False, allow_infinity=False)
extent = st.floats(1, 200, allow_nan=False, allow_infinity=False)


@st.composite
def box_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 40))
    xy = np.array(draw(st.lists(st.tuples(coord, coord), min_size=n, max_size=n)), np.float64).reshape(-1, 2)
    wh = np.array(draw(st.lists(st.tuples(extent, extent), min_size=n, max_size=n)), np.float64).reshape(-1, 2)
    ranks = draw(st.permutations(range(n)))  # distinct scores, also after the cast to float32
    scores = (np.asarray(ranks, np.float32) + 1) / (n + 1)
    classes = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
    return np.concatenate([xy, xy + wh], axis=1), scores, classes


def _check_greedy(boxes: np.ndarray, scores: np.ndarray, keep: np.ndarray, thr: float,
                  classes: np.ndarray) -> None:
    """Greedy NMS with distinct scores is characterised by: no kept box overlaps a better kept box of its class
    by more than ``thr``, and every dropped box does."""
    iou = box_iou_matrix(boxes, boxes)
    kept = np.zeros(len(boxes), bool)
    kept[keep] = True
    assert kept.sum() == len(keep)
    assert np.all(np.diff(scores[keep]) <= 0), "kept boxes must come best score first"
    # judges[i, j]: j is a kept box of i's class with a better score  (1e-6: float32 vs float64 IoU at the threshold)
    judges = kept[None, :] & (classes[:, None] == classes[None, :]) & (scores[None, :] > scores[:, None])
    assert not np.any((judges & (iou > thr + 1e-6))[kept]), "a kept box overlaps a better kept box"
    assert np.all(np.any(judges & (iou > thr - 1e-6), axis=1)[~kept]), "a dropped box overlaps no better kept box"


@settings(max_examples=150, deadline=None)
@given(box_sets(), st.sampled_from([0.3, 0.45, 0.5, 0.7]))
def test_nms_keeps_exactly_the_greedy_set(data: tuple[np.ndarray, np.ndarray, np.ndarray], thr: float) -> None:
    boxes, scores, _ = data
    keep = nms(boxes, scores, thr)
    _check_greedy(boxes, scores, keep, thr, np.zeros(len(boxes), np.int64))


@settings(max_examples=100, deadline=None)
@given(box_sets(), st.sampled_from([0.45, 0.6]))
def test_class_aware_nms_only_suppresses_within_a_class(data: tuple[np.ndarray, np.ndarray, np.ndarray],
                                                        thr: float) -> None:
    boxes, scores, classes = data
    keep = nms(boxes, scores, thr, classes)
    _check_greedy(boxes, scores, keep, thr, classes)
    for c in np.unique(classes):  # per class it is the plain NMS of that class
        idx = np.flatnonzero(classes == c)
        assert set(keep[classes[keep] == c].tolist()) == set(idx[nms(boxes[idx], scores[idx], thr)].tolist())


def test_identical_boxes_of_two_classes_both_survive() -> None:
    boxes = np.array([[10, 10, 50, 90], [10, 10, 50, 90]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.45).tolist() == [0]
    assert sorted(nms(boxes, scores, 0.45, np.array([0, 1])).tolist()) == [0, 1]


def test_nms_of_nothing_and_of_zero_scores() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    boxes = np.array([[0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    assert sorted(nms(boxes, np.array([0.0, 0.0], np.float32), 0.5).tolist()) == [0, 1]


sizes = st.tuples(st.integers(1, 700), st.integers(1, 700))
targets = st.one_of(st.integers(32, 640), st.tuples(st.integers(32, 640), st.integers(32, 640)))


def _image(h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(h * 1000 + w)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _wh(target: int | tuple[int, int]) -> tuple[int, int]:
    return (target, target) if isinstance(target, int) else target


@settings(max_examples=80, deadline=None)
@given(sizes, targets)
def test_letterbox_pastes_top_left_and_pads_114(hw: tuple[int, int], target: int | tuple[int, int]) -> None:
    import cv2

    h, w = hw
    width, height = _wh(target)
    image = _image(h, w)
    canvas, ratio = letterbox(image, target)
    assert canvas.shape == (height, width, 3) and canvas.dtype == np.uint8
    assert ratio == pytest.approx(min(height / h, width / w))
    new_w, new_h = max(1, int(w * ratio)), max(1, int(h * ratio))
    assert new_w <= width and new_h <= height
    expected = image if (new_w, new_h) == (w, h) else cv2.resize(image, (new_w, new_h))
    np.testing.assert_array_equal(canvas[:new_h, :new_w], expected)
    assert np.all(canvas[new_h:] == PAD_VALUE) and np.all(canvas[:, new_w:] == PAD_VALUE)
    # the image's far corner maps inside the canvas and back: decoders divide by the ratio
    assert (w * ratio) / ratio == pytest.approx(w) and w * ratio <= width + 1e-6


@settings(max_examples=80, deadline=None)
@given(sizes, targets)
def test_centered_letterbox_splits_the_padding(hw: tuple[int, int], target: int | tuple[int, int]) -> None:
    import cv2

    h, w = hw
    width, height = _wh(target)
    image = _image(h, w)
    canvas, ratio, (left, top) = letterbox_centered(image, target)
    assert canvas.shape == (height, width, 3)
    new_w, new_h = max(1, round(w * ratio)), max(1, round(h * ratio))
    right, bottom = width - new_w - left, height - new_h - top
    assert min(left, right, top, bottom) >= 0
    assert abs(left - right) <= 1 and abs(top - bottom) <= 1
    assert min(left + right, top + bottom) <= 1  # the limiting side fills the canvas
    expected = image if (new_w, new_h) == (w, h) else cv2.resize(image, (new_w, new_h))
    np.testing.assert_array_equal(canvas[top:top + new_h, left:left + new_w], expected)
    mask = np.ones((height, width), bool)
    mask[top:top + new_h, left:left + new_w] = False
    assert np.all(canvas[mask] == PAD_VALUE)


def test_centered_letterbox_matches_ultralytics_numbers() -> None:
    """A 1080p frame into 640: Ultralytics pads 140 px top and bottom (r = 1/3)."""
    canvas, ratio, pad = letterbox_centered(np.zeros((1080, 1920, 3), np.uint8), 640)
    assert (ratio, pad) == (pytest.approx(1 / 3), (0, 140)) and canvas.shape == (640, 640, 3)
    canvas, ratio, pad = letterbox_centered(np.zeros((270, 480, 3), np.uint8), 640)
    assert pad == (0, 140) and ratio == pytest.approx(4 / 3)


def test_detections_validate_and_index() -> None:
    det = Detections(np.array([[0, 0, 10, 20], [5, 5, 15, 45]]), np.array([0.9, 0.4]), np.array([0, 2]))
    assert det.boxes.dtype == np.float32 and det.class_ids.dtype == np.int64
    assert det.bottom_centers().tolist() == [[5.0, 20.0], [10.0, 45.0]]
    high = det[det.scores > 0.5]
    assert len(high) == 1 and high.class_ids.tolist() == [0]
    assert len(Detections.empty()) == 0 and Detections.empty().boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="same length"):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))
