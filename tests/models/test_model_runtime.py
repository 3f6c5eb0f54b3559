"""models.runtime: one runner interface over onnxruntime and LiteRT, on the real model files; quantised TFLite
inputs and outputs are handled with the tensors' own quantisation parameters."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from models.registry import REGISTRY
from models.runtime import LiteRtRunner, OnnxRunner, Runner, RunnerError, open_runner


def _rel(name: str) -> str:
    return REGISTRY[name].relpath


@pytest.fixture(scope="module")
def classifier(shared_models: Path) -> LiteRtRunner:
    return LiteRtRunner(shared_models / _rel("mobilenet-v2"), threads=2)


@pytest.fixture(scope="module")
def labels(shared_models: Path) -> list[str]:
    return (shared_models / _rel("imagenet-labels")).read_text().splitlines()


def _rgb224(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (224, 224), interpolation=cv2.INTER_AREA)[None]


def test_open_runner_picks_the_backend_by_suffix(shared_models: Path) -> None:
    onnx = open_runner(shared_models / _rel("yolox-nano"), threads=1)
    tflite = open_runner(shared_models / _rel("mobilenet-v1-embedding"), threads=1)
    assert isinstance(onnx, OnnxRunner) and isinstance(tflite, LiteRtRunner)
    assert isinstance(onnx, Runner) and isinstance(tflite, Runner)
    assert (onnx.input_names, onnx.input_shapes) == (["images"], [(1, 3, 416, 416)])
    assert (tflite.input_names, tflite.input_shapes) == (["input"], [(1, 224, 224, 3)])
    with pytest.raises(RunnerError, match=r"\.onnx or \.tflite"):
        open_runner(shared_models / _rel("imagenet-labels"))


def test_open_runner_resolves_a_spec_in_the_model_dir(shared_models: Path) -> None:
    runner = open_runner(REGISTRY["person-reid-0248"], threads=1, model_dir=shared_models)
    assert runner.input_shapes == [(1, 256, 128, 3)]
    out = runner.run({runner.input_names[0]: np.zeros((1, 256, 128, 3), np.float32)})
    assert out[0].shape == (1, 256)


def test_onnx_runner_runs_yolox_and_reports_its_outputs(shared_models: Path) -> None:
    runner = OnnxRunner(shared_models / _rel("yolox-nano"), threads=2)
    assert runner.output_names == ["output"] and runner.output_shapes == [(1, 3549, 85)]
    out = runner.run({"images": np.full((1, 3, 416, 416), 114, np.float32)})
    assert len(out) == 1 and out[0].shape == (1, 3549, 85) and out[0].dtype == np.float32
    assert runner.session.get_session_options().intra_op_num_threads == 2


def test_rfb_loads_quietly_despite_initialisers_listed_as_inputs(shared_models: Path,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    runner = OnnxRunner(shared_models / _rel("rfb-320"), threads=1)
    assert runner.input_names[0] == "input" and runner.input_shapes[0] == (1, 3, 240, 320)
    err = capfd.readouterr().err
    assert "W:onnxruntime" not in err and "appears in graph inputs" not in err


def test_a_broken_model_file_is_a_runner_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x00not onnx")
    with pytest.raises(RunnerError, match="cannot load ONNX model"):
        OnnxRunner(bad)
    bad_tflite = tmp_path / "broken.tflite"
    bad_tflite.write_bytes(b"\x00not tflite")
    with pytest.raises(RunnerError, match="cannot load TFLite model"):
        LiteRtRunner(bad_tflite)


def test_litert_exposes_the_quantisation_of_its_tensors(classifier: LiteRtRunner) -> None:
    assert classifier.input_dtypes == [np.dtype(np.uint8)]
    (qin,), (qout,) = classifier.input_quantization, classifier.output_quantization
    assert (qin.scale, qin.zero_point) == (0.0078125, 128)
    assert (qout.scale, qout.zero_point) == (pytest.approx(1 / 256), 0)
    assert qin.quantized and qout.quantized


@pytest.mark.parametrize(("product", "label"), [("Fruit/Banana/Banana_Iconic.jpg", "banana"),
                                                ("Fruit/Pineapple/Pineapple_Iconic.jpg", "pineapple"),
                                                ("Vegetables/Cabbage/Cabbage_Iconic.jpg", "cabbage")])
def test_litert_classifies_real_product_photos(classifier: LiteRtRunner, labels: list[str], shared_data: Path,
                                               product: str, label: str) -> None:
    image = _rgb224(shared_data / "grocery" / "iconic-images-and-descriptions" / product)
    probs = classifier.run({"input": image})[0][0]
    assert probs.dtype == np.float32 and probs.shape == (1001,)
    assert 0.7 < probs.sum() < 1.05  # a dequantised softmax
    top = int(np.argmax(probs))
    assert label in labels[top].lower() and probs[top] > 0.8


def test_float_input_is_quantised_like_the_uint8_image(classifier: LiteRtRunner, shared_data: Path) -> None:
    image = _rgb224(shared_data / "grocery" / "iconic-images-and-descriptions" / "Fruit/Banana/Banana_Iconic.jpg")
    real = (image.astype(np.float32) - 128) / 128  # what the uint8 image means to the model
    np.testing.assert_array_equal(classifier.run({"input": real})[0], classifier.run({"input": image})[0])


def test_raw_quantised_outputs_on_request(shared_models: Path) -> None:
    runner = LiteRtRunner(shared_models / _rel("mobilenet-v1-embedding"), threads=1, dequantize=False)
    raw = runner.run({"input": np.full((1, 224, 224, 3), 128, np.uint8)})[0]
    assert raw.dtype == np.uint8 and raw.shape == (1, 1, 1, 1024)
    q = runner.output_quantization[0]
    assert q.scale == pytest.approx(0.023528, rel=1e-3) and q.zero_point == 0


def test_litert_rejects_a_wrongly_shaped_or_unknown_input(classifier: LiteRtRunner) -> None:
    with pytest.raises(RunnerError, match="expects shape"):
        classifier.run({"input": np.zeros((1, 200, 200, 3), np.uint8)})
    with pytest.raises(RunnerError, match="unknown input"):
        classifier.run({"image": np.zeros((1, 224, 224, 3), np.uint8)})
