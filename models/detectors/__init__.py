"""Person (and object) detectors: one decoder per model family behind :class:`Detector`.

``build_detector("yolox-nano", model_dir)`` gives a ready detector for a registry name; a path to an ``.onnx``
file is recognised as a YOLOX head or an Ultralytics YOLO export (v8/v11/26) from its outputs and metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from models.detectors.base import Detections, Detector, box_iou_matrix, letterbox, letterbox_centered, nms
from models.detectors.ultralytics_yolo import UltralyticsDetector, output_layout
from models.detectors.yolox import YoloxDetector, yolox_grids
from models.registry import REGISTRY, get_spec, model_path
from models.runtime import OnnxRunner
from models.spec import UnknownModel

__all__ = ["Detections", "Detector", "UltralyticsDetector", "YoloxDetector", "box_iou_matrix", "build_detector",
           "detector_kind", "letterbox", "letterbox_centered", "nms", "output_layout", "yolox_grids"]

DETECTOR_DECODERS = ("yolox",)


def detector_kind(runner: OnnxRunner) -> str:
    """``"yolox"`` or ``"ultralytics"`` for an ONNX detector, from its metadata and output shape."""
    meta = runner.metadata
    if meta.get("author", "").lower() == "ultralytics" or {"names", "imgsz"} <= meta.keys():
        return "ultralytics"
    in_shape, out_shape = runner.input_shapes[0], runner.output_shapes[0]
    if (len(in_shape) == 4 and in_shape[2] and in_shape[3] and len(out_shape) == 3
            and out_shape[1] == len(yolox_grids(in_shape[3], in_shape[2])[0]) and (out_shape[2] or 0) > 5):
        return "yolox"
    return "ultralytics"


def build_detector(name_or_path: str | Path, model_dir: Path | None, *, threads: int = 2,
                   score_threshold: float = 0.35, nms_iou: float = 0.45,
                   classes: Sequence[int] | None = (0,)) -> Detector:
    """A detector for a registry name (``yolox-nano``, ``light-person``) or an ``.onnx`` path.

    A relative path that does not exist is also looked up in ``model_dir`` (so a user's own
    ``yolo11n.onnx`` can live next to the registry models). Raises ``ModelNotInstalled`` (with the
    ``store-agent models pull`` hint) for a registry detector that is not installed, ``UnknownModel`` otherwise.
    """
    text = str(name_or_path)
    if text in REGISTRY:
        spec = get_spec(text)
        if spec.decoder not in DETECTOR_DECODERS:
            raise UnknownModel(f"{spec.name!r} is a {spec.task} model, not a detector; detectors: "
                               f"{', '.join(n for n, s in REGISTRY.items() if s.decoder in DETECTOR_DECODERS)}")
        if model_dir is None:
            raise ValueError("a registry detector needs model_dir")
        runner = OnnxRunner(model_path(spec, model_dir), threads)
        return YoloxDetector(runner, score_threshold=score_threshold, nms_iou=nms_iou, classes=classes)
    path = Path(text).expanduser()
    if not path.is_file() and not path.is_absolute() and model_dir is not None and (model_dir / path).is_file():
        path = model_dir / path
    if not path.is_file():
        detectors = ", ".join(n for n, s in REGISTRY.items() if s.decoder in DETECTOR_DECODERS)
        raise UnknownModel(f"detector {text!r} is neither a registry detector ({detectors}) nor an existing "
                           ".onnx file")
    if path.suffix.lower() != ".onnx":
        raise UnknownModel(f"detector {text!r}: only .onnx detectors are supported (export Ultralytics weights "
                           "with `store-agent models export WEIGHTS.pt`)")
    runner = OnnxRunner(path, threads)
    if detector_kind(runner) == "yolox":
        return YoloxDetector(runner, score_threshold=score_threshold, nms_iou=nms_iou, classes=classes)
    return UltralyticsDetector(runner, score_threshold=score_threshold, nms_iou=nms_iou, classes=classes)
