"""Inference runners behind one small interface: onnxruntime for ``.onnx``, LiteRT for ``.tflite``.

A runner knows its input names and shapes and maps a feed ``{input name: array}`` to the list of outputs, in
the model's output order. Decoders (``models.detectors``) only talk to this interface, so adding a backend
touches one class.

Example:
    >>> runner = open_runner("person_detection/yolox_nano_416x416.onnx", threads=2)  # doctest: +SKIP
    >>> runner.input_names, runner.input_shapes  # doctest: +SKIP
    (['images'], [(1, 3, 416, 416)])
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from models.spec import ModelError, ModelSpec

Shape = tuple[int | None, ...]


@runtime_checkable
class Runner(Protocol):
    """What decoders need from an inference backend.

    ``input_shapes[i]`` is the shape of input ``input_names[i]``, ``None`` for a dynamic dimension.
    ``run(feed)`` returns the outputs in ``output_names`` order.
    """

    input_names: list[str]
    input_shapes: list[Shape]
    output_names: list[str]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class RunnerError(ModelError):
    """A model file that cannot be loaded or run, or a feed that does not fit the model."""


def _static(dims: Any) -> Shape:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in dims)


class OnnxRunner:
    """onnxruntime CPU session: ``threads`` intra-op threads, 1 inter-op thread, all graph optimisations.

    ``metadata`` holds the model's custom metadata (Ultralytics exports store ``names``, ``imgsz``, ``task``...).
    Sessions are thread-safe: one runner may be shared by several cameras.
    """

    def __init__(self, path: Path | str, threads: int = 2) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # RFB-320 lists its initialisers as inputs: silence those warnings
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RunnerError(f"cannot load ONNX model {self.path}: {exc}") from exc
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.input_shapes = [_static(i.shape) for i in inputs]
        self.input_types = [i.type for i in inputs]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.output_shapes = [_static(o.shape) for o in self.session.get_outputs()]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs for ``feed`` (each value shaped like its input)."""
        return self.session.run(self.output_names, feed)

    def __repr__(self) -> str:
        return f"OnnxRunner({str(self.path)!r}, inputs={dict(zip(self.input_names, self.input_shapes))})"


@dataclass(frozen=True)
class Quantization:
    """Affine quantisation of a tensor: ``real = scale * (q - zero_point)``; ``scale == 0`` means not quantised."""

    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class LiteRtRunner:
    """LiteRT (``ai-edge-litert``) interpreter for ``.tflite`` models, e.g. the uint8-quantised MobileNets.

    Inputs: an array whose dtype equals the tensor's dtype is passed as is (for the Coral MobileNets, a uint8 RGB
    image *is* the quantised input). A floating array fed to a quantised input is taken as real values and
    quantised with the tensor's parameters (``input_quantization``). Outputs of quantised tensors are dequantised
    to float32 unless ``dequantize=False`` (then the raw integers come back; ``output_quantization`` has the
    parameters). ``run`` holds a lock: an interpreter is not thread-safe.
    """

    def __init__(self, path: Path | str, threads: int = 2, *, dequantize: bool = True) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RunnerError("running .tflite models needs the LiteRT runtime: pip install ai-edge-litert") from exc
        self.path = Path(path)
        self.dequantize = dequantize
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=max(1, int(threads)))
            self.interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError
            raise RunnerError(f"cannot load TFLite model {self.path}: {exc}") from exc
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        self.input_names = [d["name"] for d in self._inputs]
        self.input_shapes = [tuple(int(x) for x in d["shape"]) for d in self._inputs]
        self.input_dtypes = [np.dtype(d["dtype"]) for d in self._inputs]
        self.output_names = [d["name"] for d in self._outputs]
        self.output_shapes = [tuple(int(x) for x in d["shape"]) for d in self._outputs]
        self.input_quantization = [Quantization(float(d["quantization"][0]), int(d["quantization"][1]))
                                   for d in self._inputs]
        self.output_quantization = [Quantization(float(d["quantization"][0]), int(d["quantization"][1]))
                                    for d in self._outputs]
        self._lock = threading.Lock()

    def _prepare(self, index: int, value: np.ndarray) -> np.ndarray:
        dtype = self.input_dtypes[index]
        value = np.asarray(value)
        if tuple(value.shape) != self.input_shapes[index]:
            raise RunnerError(f"input {self.input_names[index]!r} expects shape {self.input_shapes[index]}, "
                              f"got {value.shape}")
        if value.dtype == dtype:
            return value
        quant = self.input_quantization[index]
        if np.issubdtype(value.dtype, np.floating) and quant.quantized and np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            q = np.rint(value / quant.scale + quant.zero_point)
            return np.clip(q, info.min, info.max).astype(dtype)
        return value.astype(dtype)

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs for ``feed`` in ``output_names`` order (dequantised to float32 by default)."""
        unknown = set(feed) - set(self.input_names)
        if unknown:
            raise RunnerError(f"unknown input(s) {sorted(unknown)}; the model's inputs are {self.input_names}")
        with self._lock:
            for index, detail in enumerate(self._inputs):
                if detail["name"] not in feed:
                    raise RunnerError(f"missing input {detail['name']!r}")
                self.interpreter.set_tensor(detail["index"], self._prepare(index, feed[detail["name"]]))
            self.interpreter.invoke()
            raw = [self.interpreter.get_tensor(d["index"]).copy() for d in self._outputs]
        if not self.dequantize:
            return raw
        return [(q.scale * (r.astype(np.float32) - q.zero_point)).astype(np.float32)
                if q.quantized and np.issubdtype(r.dtype, np.integer) else r
                for r, q in zip(raw, self.output_quantization)]

    def __repr__(self) -> str:
        return f"LiteRtRunner({str(self.path)!r}, inputs={dict(zip(self.input_names, self.input_shapes))})"


def open_runner(spec_or_path: ModelSpec | Path | str, threads: int = 2, *,
                model_dir: Path | None = None) -> OnnxRunner | LiteRtRunner:
    """A runner for a model file, chosen by suffix (``.onnx`` → onnxruntime, ``.tflite`` → LiteRT).

    A :class:`ModelSpec` is looked up in ``model_dir`` (required then) via ``models.registry.model_path``.
    """
    if isinstance(spec_or_path, ModelSpec):
        if model_dir is None:
            raise ValueError("open_runner(spec) needs model_dir")
        from models.registry import model_path

        path = model_path(spec_or_path, model_dir)
    else:
        path = Path(spec_or_path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxRunner(path, threads)
    if suffix == ".tflite":
        return LiteRtRunner(path, threads)
    raise RunnerError(f"no runner for {path.name}: expected a .onnx or .tflite file")
