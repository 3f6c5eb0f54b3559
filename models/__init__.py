"""Model registry and ONNX/LiteRT runners (people analytics, faces, products). Never imports ``agent``.

- :mod:`models.registry` — known models (``REGISTRY``), ``install`` (URL or mirror, sha256-verified, atomic),
  ``verify``, ``verify_installed`` (for the doctor), ``model_path``.
- :mod:`models.runtime` — ``Runner`` interface, ``OnnxRunner``, ``LiteRtRunner``, ``open_runner``.
- :mod:`models.detectors` — ``Detections``, ``Detector``, ``YoloxDetector``, ``UltralyticsDetector``,
  ``build_detector``, ``letterbox``, ``nms``.
- :mod:`models.export` — Ultralytics ``.pt`` → ONNX (optional ``ultralytics`` extra).

Submodules are imported on demand so ``import models.registry`` stays light (no onnxruntime, no OpenCV).
"""
