"""ArcFace-style face embedders: a 112×112 aligned face in, an L2-normalised vector out.

Any ONNX model with one (N, 3, 112, 112) input and one (N, D) output plugs in; pre-processing is RGB,
``(x/255 - mean) / std`` per channel. MobileFaceNet (the default, 128-d) uses the ImageNet mean/std; InsightFace
ArcFace exports use mean = std = 0.5.

Example:
    >>> emb = build_face_embedder("mobilefacenet", model_dir)     # doctest: +SKIP
    >>> emb.embed(np.stack([aligned_bgr])).shape                   # doctest: +SKIP
    (1, 128)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.runtime import OnnxRunner
from models.spec import UnknownModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FaceEmbedder:
    """Embeds aligned faces with an ArcFace-style ONNX model (batch dimension fixed at 1 is handled)."""

    def __init__(self, runner: OnnxRunner, *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.runner = runner
        shape = runner.input_shapes[0]
        if len(shape) != 4 or shape[1] not in (3, None):
            raise UnknownModel(f"{runner.path.name}: expected an NCHW face embedder, input shape is {shape}")
        self.size = int(shape[2] or 112)
        self.fixed_batch = shape[0] == 1
        self.input_name = runner.input_names[0]
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self.dim = int(runner.output_shapes[0][-1] or 0) if hasattr(runner, "output_shapes") else 0

    def preprocess(self, faces_bgr: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR → (N, 3, S, S) float32 normalised RGB."""
        x = np.asarray(faces_bgr, np.float32)[..., ::-1].transpose(0, 3, 1, 2) / 255.0
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)

    def embed(self, faces_bgr: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 aligned BGR faces → (N, D) float32 unit vectors."""
        blob = self.preprocess(faces_bgr)
        if len(blob) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.fixed_batch:
            out = np.concatenate([self.runner.run({self.input_name: blob[i:i + 1]})[0] for i in range(len(blob))])
        else:
            out = self.runner.run({self.input_name: blob})[0]
        out = np.asarray(out, np.float32).reshape(len(blob), -1)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def build_face_embedder(name_or_path: str | Path, model_dir: Path | None, *, threads: int = 1,
                        mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> FaceEmbedder:
    """A face embedder for a registry name (``mobilefacenet``) or the path of any ArcFace-style ``.onnx``."""
    from models.registry import REGISTRY, get_spec, model_path

    text = str(name_or_path)
    if text in REGISTRY:
        spec = get_spec(text)
        if spec.task != "face_embedding":
            raise UnknownModel(f"{text!r} is a {spec.task} model, not a face embedder; use mobilefacenet")
        if model_dir is None:
            raise ValueError("a registry face embedder needs model_dir")
        path = model_path(spec, model_dir)
    else:
        path = Path(text).expanduser()
        if not path.is_file() and model_dir is not None and (Path(model_dir) / path).is_file():
            path = Path(model_dir) / path
        if not path.is_file() or path.suffix.lower() != ".onnx":
            raise UnknownModel(f"face embedder {text!r} is neither a registry model nor an existing .onnx file")
    return FaceEmbedder(OnnxRunner(path, threads), mean=mean, std=std)
