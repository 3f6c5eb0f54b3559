"""Ultralytics YOLO decoder, checked on tiny synthetic ONNX graphs (built with the ``onnx`` package) whose output is
a known tensor in each export layout: v8/v11 ``[1, 4 + nc, N]`` and YOLO26 / nms=True ``[1, N, 6]``. No
Ultralytics file is downloaded; the graphs reproduce the exports' input, output and metadata conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package builds the synthetic test graphs (test dependency)")
from onnx import TensorProto, helper, numpy_helper

from models.detectors import UltralyticsDetector, YoloxDetector, build_detector, output_layout
from models.detectors.base import letterbox_centered
from models.runtime import OnnxRunner, RunnerError

IMGSZ = 320
ANCHORS = (IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2   # 2100, as a v8 head at 320
COCO_NAMES = {i: f"class{i}" for i in range(80)} | {0: "person", 2: "car"}
IMAGE_SHAPE = (300, 500, 3)   # r = 0.64, centred: pad top 64

# (x1, y1, x2, y2) in the ORIGINAL image, score, class
PERSON = ([50, 40, 150, 240], 0.9, 0)
CAR = ([300, 100, 420, 280], 0.8, 2)
PERSON_DUP = ([55, 45, 152, 238], 0.6, 0)     # overlaps PERSON: suppressed by NMS
PERSON_LOW = ([400, 10, 450, 60], 0.1, 0)     # under the score threshold
PERSON_2 = ([200, 50, 260, 200], 0.5, 0)
OBJECTS = [PERSON, CAR, PERSON_DUP, PERSON_LOW, PERSON_2]


def _to_letterbox(box: list[float]) -> np.ndarray:
    _, ratio, (left, top) = letterbox_centered(np.zeros(IMAGE_SHAPE, np.uint8), IMGSZ)
    return np.asarray(box, np.float32) * ratio + np.array([left, top, left, top], np.float32)


def v8_output(objects: list, nc: int = 80) -> np.ndarray:
    """[1, 4 + nc, N]: cx, cy, w, h then per-class scores, objects at scattered anchors."""
    out = np.zeros((1, 4 + nc, ANCHORS), np.float32)
    out[0, 2:4] = 4.0  # small boxes everywhere with zero scores
    for k, (box, score, cls) in enumerate(objects):
        x1, y1, x2, y2 = _to_letterbox(box)
        anchor = 37 + 401 * k
        out[0, :4, anchor] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        out[0, 4 + cls, anchor] = score
        out[0, 4 + (cls + 1) % nc, anchor] = score / 3  # a weaker second class must not win
    return out


def e2e_output(objects: list, rows: int = 300) -> np.ndarray:
    """[1, rows, 6]: x1, y1, x2, y2, score, class; unused rows are zeros (YOLO26 / nms=True exports)."""
    out = np.zeros((1, rows, 6), np.float32)
    for k, (box, score, cls) in enumerate(objects):
        out[0, k, :4] = _to_letterbox(box)
        out[0, k, 4:] = [score, cls]
    return out


def make_onnx(path: Path, output: np.ndarray, *, metadata: dict[str, str] | None = None,
              dynamic: bool = False) -> Path:
    """A graph with Ultralytics' input ``images`` [1, 3, H, W] whose ``output0`` is ``output`` (+ 0·max(images))."""
    dims: list[int | str] = [1, 3, "height", "width"] if dynamic else [1, 3, IMGSZ, IMGSZ]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)
    result = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))
    nodes = [
        helper.make_node("Constant", [], ["table"], value=numpy_helper.from_array(output, "table")),
        helper.make_node("ReduceMax", ["images"], ["peak"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.zeros((), np.float32))),
        helper.make_node("Mul", ["peak", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    model = helper.make_model(helper.make_graph(nodes, "synthetic-yolo", [images], [result]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


ULTRA_META = {"author": "Ultralytics", "task": "detect", "imgsz": f"[{IMGSZ}, {IMGSZ}]", "names": str(COCO_NAMES)}


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, IMAGE_SHAPE, dtype=np.uint8)


def _expect(det, objects: list) -> None:
    order = np.argsort(-det.scores)
    assert len(det) == len(objects), (det.boxes, det.scores)
    for i, (box, score, cls) in zip(order, sorted(objects, key=lambda o: -o[1])):
        np.testing.assert_allclose(det.boxes[i], box, atol=1e-3)
        assert det.scores[i] == pytest.approx(score) and det.class_ids[i] == cls


def test_v8_layout_is_decoded_back_to_original_pixels(tmp_path: Path) -> None:
    path = make_onnx(tmp_path / "yolo11n.onnx", v8_output(OBJECTS), metadata=ULTRA_META)
    runner = OnnxRunner(path, threads=1)
    people = UltralyticsDetector(runner, score_threshold=0.25)
    _expect(people.detect(_image()), [PERSON, PERSON_2])
    assert people.last_layout == "v8" and people.names[0] == "person" and people.input_size == (IMGSZ, IMGSZ)
    everything = UltralyticsDetector(runner, score_threshold=0.25, classes=None)
    _expect(everything.detect(_image()), [PERSON, CAR, PERSON_2])


def test_nms_is_class_aware_in_the_v8_layout(tmp_path: Path) -> None:
    """The car box drawn on top of the person must not suppress it (different class)."""
    car_on_person = ([50, 40, 150, 240], 0.95, 2)
    path = make_onnx(tmp_path / "m.onnx", v8_output([PERSON, car_on_person]), metadata=ULTRA_META)
    det = UltralyticsDetector(OnnxRunner(path), classes=None).detect(_image())
    assert sorted(det.class_ids.tolist()) == [0, 2]


def test_end_to_end_layout_needs_no_nms(tmp_path: Path) -> None:
    path = make_onnx(tmp_path / "yolo26n.onnx", e2e_output(OBJECTS), metadata=ULTRA_META)
    detector = UltralyticsDetector(OnnxRunner(path), score_threshold=0.25)
    det = detector.detect(_image())
    assert detector.last_layout == "end2end"
    _expect(det, [PERSON, PERSON_DUP, PERSON_2])   # NMS-free: the model is trusted not to emit duplicates
    every = UltralyticsDetector(OnnxRunner(path), score_threshold=0.25, classes=None).detect(_image())
    assert sorted(every.class_ids.tolist()) == [0, 0, 0, 2]


def test_a_two_class_v8_head_is_not_mistaken_for_end_to_end(tmp_path: Path) -> None:
    path = make_onnx(tmp_path / "two.onnx", v8_output([([50, 40, 150, 240], 0.9, 1)], nc=2))
    detector = UltralyticsDetector(OnnxRunner(path), classes=(1,))
    det = detector.detect(_image())
    assert detector.last_layout == "v8" and det.class_ids.tolist() == [1]
    np.testing.assert_allclose(det.boxes[0], [50, 40, 150, 240], atol=1e-3)


def test_dynamic_input_takes_its_size_from_the_metadata(tmp_path: Path) -> None:
    path = make_onnx(tmp_path / "dyn.onnx", v8_output(OBJECTS), metadata=ULTRA_META, dynamic=True)
    runner = OnnxRunner(path)
    assert runner.input_shapes[0] == (1, 3, None, None)
    detector = UltralyticsDetector(runner, score_threshold=0.25)
    assert detector.input_size == (IMGSZ, IMGSZ)
    _expect(detector.detect(_image()), [PERSON, PERSON_2])


def test_build_detector_recognises_ultralytics_exports(tmp_path: Path) -> None:
    with_meta = make_onnx(tmp_path / "a.onnx", e2e_output(OBJECTS), metadata=ULTRA_META)
    make_onnx(tmp_path / "b.onnx", v8_output(OBJECTS))
    assert isinstance(build_detector(with_meta, None), UltralyticsDetector)
    detector = build_detector("b.onnx", tmp_path)  # a relative name is looked up in the model dir
    assert isinstance(detector, UltralyticsDetector) and not isinstance(detector, YoloxDetector)
    _expect(detector.detect(_image()), [PERSON, PERSON_2])


@pytest.mark.parametrize("shape", [(1, 84), (2, 84, 8400), (1, 4, 8400), (1, 6, 6)])
def test_unknown_output_shapes_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(RunnerError):
        output_layout(shape)
