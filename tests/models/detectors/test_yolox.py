"""YOLOX decoder on the real models and real frames: the worker in the warehouse clip is found in every sampled
frame, MOT17 pedestrians are recalled at measured floors, and the vectorised decoder agrees with a plain
transcription of the YOLOX demo's post-processing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.detectors import Detections, YoloxDetector, box_iou_matrix, build_detector, yolox_grids
from models.registry import REGISTRY
from models.runtime import OnnxRunner
from models.spec import ModelNotInstalled, UnknownModel

MOT = "mot17-mini/train"


@pytest.fixture(scope="module")
def nano(shared_models: Path) -> YoloxDetector:
    detector = build_detector("yolox-nano", shared_models, threads=2)
    assert isinstance(detector, YoloxDetector)
    return detector


@pytest.fixture(scope="module")
def light(shared_models: Path) -> YoloxDetector:
    detector = build_detector("light-person", shared_models, threads=2)
    assert isinstance(detector, YoloxDetector)
    return detector


def _recall(detector: YoloxDetector, seq_dir: Path, frames: list[int] | None = None) -> tuple[int, int]:
    """(matched, total) of evaluated pedestrians (flag 1, class 1, visibility > 0.3) at IoU 0.5, one-to-one."""
    gt = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",")
    numbers = frames or sorted(int(p.stem) for p in (seq_dir / "img1").glob("*.jpg"))
    matched = total = 0
    for number in numbers:
        rows = gt[(gt[:, 0] == number) & (gt[:, 6] == 1) & (gt[:, 7] == 1) & (gt[:, 8] > 0.3)]
        truth = np.c_[rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]]
        image = cv2.imread(str(seq_dir / "img1" / f"{number:06d}.jpg"))
        iou = box_iou_matrix(truth, detector.detect(image).boxes)
        while iou.size and iou.max() >= 0.5:  # greedy one-to-one matching, best pair first
            i, j = np.unravel_index(iou.argmax(), iou.shape)
            matched += 1
            iou[i, :] = 0
            iou[:, j] = 0
        total += len(truth)
    return matched, total


def test_grids_are_row_major_x_fastest_per_stride() -> None:
    grid, stride = yolox_grids(192, 192)
    assert grid.shape == (24 * 24 + 12 * 12 + 6 * 6, 2) == (756, 2)
    assert grid[:3].tolist() == [[0, 0], [1, 0], [2, 0]] and grid[24].tolist() == [0, 1]
    assert grid[576].tolist() == [0, 0] and stride[575, 0] == 8 and stride[576, 0] == 16 and stride[-1, 0] == 32


def test_nano_finds_the_worker_in_every_sampled_frame(nano: YoloxDetector, worker_frames: list[np.ndarray]) -> None:
    confident = 0
    for index in range(0, 71, 5):
        det = nano.detect(worker_frames[index])
        assert len(det) == 1, f"frame {index}: {len(det)} persons"
        x1, y1, x2, y2 = det.boxes[0]
        assert det.class_ids[0] == 0 and 100 < y2 - y1 < 270 and 0 <= x1 < x2 <= 480, (index, det.boxes[0])
        confident += int(det.scores[0] > 0.6)
    assert confident >= 13  # measured 14/15 (frame 5, the worker half-turned, scores 0.37)


def test_light_detector_finds_the_worker_in_most_frames(light: YoloxDetector,
                                                        worker_frames: list[np.ndarray]) -> None:
    found = [len(light.detect(worker_frames[i])) == 1 for i in range(0, 71, 5)]
    assert sum(found) >= 12, found  # measured 13/15 (its recall is lower than YOLOX-Nano's)


def test_nano_recall_on_mot17_09(nano: YoloxDetector, shared_data: Path) -> None:
    seq = shared_data / MOT / "MOT17-09-FRCNN"
    matched, total = _recall(nano, seq, [1])
    assert total == 4 and matched >= 2          # measured 2/4 on frame 1 (two far, dim people behind glass)
    matched, total = _recall(nano, seq)
    assert matched / total >= 0.45, (matched, total)  # measured 9/17 = 0.53 over the 4 frames


def test_light_recall_on_mot17_is_lower(nano: YoloxDetector, light: YoloxDetector, shared_data: Path) -> None:
    matched, total = _recall(light, shared_data / MOT / "MOT17-09-FRCNN")
    assert matched / total >= 0.4, (matched, total)   # measured 8/17 = 0.47
    seq05 = shared_data / MOT / "MOT17-05-FRCNN"
    light_m, n = _recall(light, seq05)
    nano_m, _ = _recall(nano, seq05)
    assert nano_m / n >= 0.6 and light_m / n >= 0.3, (nano_m, light_m, n)  # measured 0.68 and 0.39
    assert nano_m > light_m


def _reference_decode(raw: np.ndarray, size: int, ratio: float, thr: float, iou: float) -> np.ndarray:
    """YOLOX demo_postprocess + person-only NMS, written out plainly (loops over strides and kept boxes)."""
    out = raw[0].copy()
    grids, strides = [], []
    for s in (8, 16, 32):
        n = size // s
        xv, yv = np.meshgrid(np.arange(n), np.arange(n))
        grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
        strides.append(np.full((n * n, 1), s))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    boxes = np.c_[out[:, :2] - out[:, 2:4] / 2, out[:, :2] + out[:, 2:4] / 2] / ratio
    scores = out[:, 4] * out[:, 5]
    order = [i for i in np.argsort(-scores) if scores[i] > thr]
    kept: list[int] = []
    for i in order:
        if all(box_iou_matrix(boxes[i:i + 1], boxes[j:j + 1])[0, 0] <= iou for j in kept):
            kept.append(i)
    return boxes[kept]


def test_vectorised_decoder_matches_the_plain_reference(nano: YoloxDetector, shared_data: Path) -> None:
    image = cv2.imread(str(shared_data / MOT / "MOT17-04-FRCNN" / "img1" / "000001.jpg"))
    blob, ratio = nano.preprocess(image)
    raw = nano.runner.run({"images": blob})[0]
    ours = nano.decode(raw, ratio, image.shape)
    ref = _reference_decode(raw, 416, ratio, nano.score_threshold, nano.nms_iou)
    ref = np.clip(ref, 0, [1920, 1080, 1920, 1080])
    assert len(ours) == len(ref) >= 8
    np.testing.assert_allclose(ours.boxes, ref, atol=0.05)


def test_all_classes_on_request(shared_models: Path, shared_data: Path) -> None:
    """COCO model with classes=None: people (0) and other objects; person-only by default."""
    image = cv2.imread(str(shared_data / MOT / "MOT17-04-FRCNN" / "img1" / "000001.jpg"))
    every = build_detector("yolox-nano", shared_models, classes=None, score_threshold=0.3).detect(image)
    people = build_detector("yolox-nano", shared_models, score_threshold=0.3).detect(image)
    assert set(people.class_ids.tolist()) == {0}
    assert np.count_nonzero(every.class_ids == 0) == len(people)
    with pytest.raises(ValueError, match="out of range"):
        build_detector("light-person", shared_models, classes=(0, 2)).detect(image)


def test_empty_scene_gives_empty_detections(nano: YoloxDetector) -> None:
    det = nano.detect(np.full((270, 480, 3), 114, np.uint8))
    assert isinstance(det, Detections) and len(det) == 0 and det.boxes.shape == (0, 4)


def test_build_detector_errors_say_what_to_do(tmp_path: Path, shared_models: Path) -> None:
    with pytest.raises(ModelNotInstalled, match="store-agent models pull yolox-nano"):
        build_detector("yolox-nano", tmp_path)
    with pytest.raises(UnknownModel, match="not a detector"):
        build_detector("mobilefacenet", shared_models)
    with pytest.raises(UnknownModel, match="neither a registry detector"):
        build_detector("yolov99n.onnx", tmp_path)


def test_build_detector_recognises_a_yolox_file_by_its_outputs(shared_models: Path) -> None:
    detector = build_detector(REGISTRY["light-person"].relpath, shared_models)  # a path, not a registry name
    assert isinstance(detector, YoloxDetector) and detector.input_size == (192, 192)
    assert isinstance(detector.runner, OnnxRunner)
