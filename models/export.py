"""Convert Ultralytics ``.pt`` weights to an ONNX file the agent runs (needs the optional ``ultralytics`` extra).

The runtime never needs torch: export once (ideally on a workstation, see ``docs/models.md``), copy the ``.onnx``
into the model directory and name it as the camera's detector. The exported file keeps Ultralytics' metadata
(``names``, ``imgsz``), which :class:`models.detectors.UltralyticsDetector` reads.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from models.spec import ModelError

INSTALL_HINT = "pip install 'store-edge-agent[ultralytics]'"


class ExportUnavailable(ModelError):
    """The ``ultralytics`` package is not installed."""


def export_ultralytics(weights: Path, *, out: Path | None = None, imgsz: int = 640, opset: int | None = None,
                       dynamic: bool = False, simplify: bool = True) -> Path:
    """Export ``weights`` (a ``.pt`` file) to ONNX and return the ONNX path (``out`` if given).

    Static input (``dynamic=False``) is the default: onnxruntime plans a fixed shape better on a small CPU.
    Raises :class:`ExportUnavailable` naming ``pip install 'store-edge-agent[ultralytics]'`` when ultralytics
    is not installed, ``FileNotFoundError`` when ``weights`` does not exist.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"no such weights file: {weights}")
    try:
        from ultralytics import YOLO  # heavy (torch): imported only here
    except ImportError as exc:
        raise ExportUnavailable(f"exporting Ultralytics weights needs the ultralytics package: {INSTALL_HINT} "
                                "(it pulls torch and opencv-python; see docs/models.md for exporting on a "
                                "workstation instead)") from exc
    kwargs: dict[str, object] = {"format": "onnx", "imgsz": imgsz, "dynamic": dynamic, "simplify": simplify}
    if opset is not None:
        kwargs["opset"] = opset
    produced = Path(str(YOLO(str(weights)).export(**kwargs)))
    if out is None or Path(out).resolve() == produced.resolve():
        return produced
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(produced), str(out))
    return out
