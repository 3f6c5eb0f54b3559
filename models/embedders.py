"""Image embedders behind one small interface: a BGR image in, an L2-normalised float32 vector out.

:class:`ImageEmbedder` wraps any :class:`models.runtime.Runner` whose single input is an image tensor (NHWC or
NCHW, uint8 or float) and whose first output is a feature vector (any shape that flattens to ``dim``). What
differs between models is described by :class:`Preprocess`, so plugging in another ONNX embedding model is a
``Preprocess`` and a file path — no new class. :func:`open_embedder` builds one for a registry name (e.g.
``mobilenet-v1-embedding``, the Coral headless MobileNetV1, LiteRT) or for a model file.

An optional :class:`ProjectionHead` (``mean``, ``matrix``) maps the backbone's vector to a learned metric space
(``scripts/train_product_head.py``); ``flip_tta`` averages the embedding of the image and its mirror image.

Example:
    >>> emb = ImageEmbedder(_ConstRunner(), Preprocess(size=(4, 4)))
    >>> v = emb.embed(np.zeros((8, 8, 3), np.uint8))
    >>> v.shape, round(float(np.linalg.norm(v)), 3)
    ((3,), 1.0)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from models.registry import sha256_file
from models.runtime import Runner, RunnerError, open_runner
from models.spec import ModelIntegrityError, ModelSpec

Roi = tuple[float, float, float, float]


@runtime_checkable
class Embedder(Protocol):
    """What the product gallery needs: ``embed(bgr) -> (dim,)`` float32, L2-normalised."""

    name: str
    dim: int

    def embed(self, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its image.

    Attributes:
        size: model input ``(width, height)``.
        layout: ``"nhwc"`` or ``"nchw"``.
        rgb: feed RGB (True) or BGR (False).
        dtype: ``"uint8"`` feeds 0–255 integers as they are (quantised models); ``"float32"`` feeds
            ``(x / scale_div - mean) / std`` per channel.
        crop: ``"center"`` resizes the short side then centre-crops; ``"stretch"`` resizes to ``size``.
    """

    size: tuple[int, int] = (224, 224)
    layout: Literal["nhwc", "nchw"] = "nhwc"
    rgb: bool = True
    dtype: Literal["uint8", "float32"] = "uint8"
    scale_div: float = 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    crop: Literal["center", "stretch"] = "center"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(1, …) tensor for a (H, W, 3) uint8 BGR image."""
        w, h = self.size
        if self.crop == "center":
            ih, iw = image.shape[:2]
            s = max(w / iw, h / ih)
            nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
            resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            x0, y0 = (nw - w) // 2, (nh - h) // 2
            img = resized[y0:y0 + h, x0:x0 + w]
        else:
            img = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if self.rgb:
            img = img[:, :, ::-1]
        if self.dtype == "uint8":
            arr = np.ascontiguousarray(img, dtype=np.uint8)
        else:
            arr = (img.astype(np.float32) / self.scale_div - np.float32(self.mean)) / np.float32(self.std)
        if self.layout == "nchw":
            arr = arr.transpose(2, 0, 1)
        return np.ascontiguousarray(arr[None])


#: Pre-processing of the registry's embedding models (``models/catalog.py``, MANIFEST "Inputs, outputs").
PREPROCESS: dict[str, Preprocess] = {
    "mobilenet-v1-embedding": Preprocess(size=(224, 224), layout="nhwc", rgb=True, dtype="uint8"),
}
#: A common ONNX export convention (torchvision/timm): NCHW float, RGB, ImageNet mean/std.
IMAGENET_ONNX = Preprocess(size=(224, 224), layout="nchw", rgb=True, dtype="float32")


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x`` scaled to unit L2 norm along ``axis`` (zero vectors stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def crop_roi(image: np.ndarray, roi: Roi | None) -> np.ndarray:
    """The tray region of ``image``: ``roi = (x1, y1, x2, y2)`` normalised 0–1; ``None`` = the whole image.

    Example:
        >>> crop_roi(np.zeros((100, 200, 3), np.uint8), (0.25, 0.5, 0.75, 1.0)).shape
        (50, 100, 3)
    """
    if roi is None:
        return image
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in roi)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty ROI {roi}: expected x1 < x2 and y1 < y2, normalised 0-1")
    return image[int(y1 * h):max(int(y1 * h) + 1, int(round(y2 * h))),
                 int(x1 * w):max(int(x1 * w) + 1, int(round(x2 * w)))]


@dataclass(frozen=True)
class HeadBlock:
    """One linear block of a head: ``weight * normalize((x - mean) @ matrix)``; ``matrix`` (dim_in, dim_out)."""

    mean: np.ndarray
    matrix: np.ndarray
    weight: float = 1.0


@dataclass(frozen=True)
class ProjectionHead:
    """A learned metric head: ``normalize(concat_i(w_i * normalize((normalize(x) - mean_i) @ matrix_i)))``.

    One block is a plain linear projection (e.g. LDA); several blocks fuse projections with different
    strengths (e.g. within-class whitening, which generalises to unseen products, next to LDA, which separates
    the trained ones best). Saved as ``.npz``: ``mean``/``matrix`` for one block, else ``blocks`` (count) and
    ``mean_i``/``matrix_i``/``weight_i`` (matrices may be stored as float16; they load as float32).
    """

    blocks: tuple[HeadBlock, ...]

    @classmethod
    def linear(cls, mean: np.ndarray, matrix: np.ndarray) -> ProjectionHead:
        """A one-block head."""
        return cls((HeadBlock(np.asarray(mean, np.float32), np.asarray(matrix, np.float32)),))

    @classmethod
    def load(cls, path: Path | str) -> ProjectionHead:
        """Read a head saved by :meth:`save` (``scripts/train_product_head.py``)."""
        with np.load(Path(path), allow_pickle=False) as data:
            if "blocks" not in data:
                return cls.linear(data["mean"], data["matrix"])
            return cls(tuple(HeadBlock(data[f"mean_{i}"].astype(np.float32), data[f"matrix_{i}"].astype(np.float32),
                                       float(data[f"weight_{i}"])) for i in range(int(data["blocks"]))))

    def save(self, path: Path | str, *, half: bool = False, **extra: np.ndarray) -> None:
        """Write the blocks (plus any ``extra`` arrays) to ``path`` (.npz, compressed; float16 matrices if
        ``half``)."""
        if len(self.blocks) == 1 and self.blocks[0].weight == 1.0 and not half:
            np.savez(Path(path), mean=self.blocks[0].mean, matrix=self.blocks[0].matrix, **extra)
            return
        arrays: dict[str, np.ndarray] = {"blocks": np.int64(len(self.blocks))}
        for i, b in enumerate(self.blocks):
            arrays.update({f"mean_{i}": b.mean, f"matrix_{i}": b.matrix.astype(np.float16 if half else np.float32),
                           f"weight_{i}": np.float32(b.weight)})
        np.savez_compressed(Path(path), **arrays, **extra)

    @property
    def digest(self) -> str:
        """First 12 hex digits of the sha256 of the head's arrays: names its embedding space."""
        h = hashlib.sha256()
        for b in self.blocks:
            h.update(b.mean.tobytes() + b.matrix.tobytes())
            if len(self.blocks) > 1 or b.weight != 1.0:
                h.update(np.float32(b.weight).tobytes())
        return h.hexdigest()[:12]

    @property
    def dim_in(self) -> int:
        return int(self.blocks[0].matrix.shape[0])

    @property
    def dim_out(self) -> int:
        return int(sum(b.matrix.shape[1] for b in self.blocks))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, dim_out) or (dim_out,) projected, L2-normalised."""
        x = l2_normalize(x)
        return l2_normalize(np.concatenate([b.weight * l2_normalize((x - b.mean) @ b.matrix) for b in self.blocks],
                                           axis=-1))


#: Heads shipped in ``models/heads/`` by name → sha256 of the file (``scripts/train_product_head.py``).
BUILTIN_HEADS: dict[str, str] = {
    "grocery_projection": "d4439bbccf337a56ca8f89c0df5ce3ed8ba41a5c24d69fb5c29b9a00761aa70e",
    "grocery_wccn_lda": "dc4df59e7ecd26bcd5dab1e69529fa51273fb31f88f9fb43b2bfeabf1f8e70e9",
}
HEADS_DIR = Path(__file__).resolve().parent / "heads"


def load_head(name_or_path: str | Path) -> ProjectionHead:
    """A shipped head by name (sha256-checked) or an ``.npz`` file saved by :meth:`ProjectionHead.save`."""
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_HEADS:
        path = HEADS_DIR / f"{name_or_path}.npz"
        actual = sha256_file(path)
        if actual != BUILTIN_HEADS[name_or_path]:
            raise ModelIntegrityError(f"{path} sha256 {actual} differs from the pinned one",
                                      expected=BUILTIN_HEADS[name_or_path], actual=actual)
        return ProjectionHead.load(path)
    return ProjectionHead.load(name_or_path)


class ImageEmbedder:
    """A runner + :class:`Preprocess` (+ optional :class:`ProjectionHead`): BGR image → unit vector.

    Args:
        runner: a loaded model (``models.runtime``); its first input takes the image, its first output is the
            feature vector.
        preprocess: how to feed it.
        head: optional learned projection applied after L2-normalising the backbone's vector.
        flip_tta: also embed the mirror image and average (twice the inference time).
        name: reported in statuses and stored with gallery entries.
    """

    def __init__(self, runner: Runner, preprocess: Preprocess, *, head: ProjectionHead | None = None,
                 flip_tta: bool = False, name: str = "embedder") -> None:
        self.runner = runner
        self.preprocess = preprocess
        self.head = head
        self.flip_tta = flip_tta
        self.name = name
        self._input = runner.input_names[0]
        shape = (getattr(runner, "output_shapes", None) or [None])[0]
        static = shape is not None and all(isinstance(d, int) and d > 0 for d in shape)
        self.backbone_dim = int(np.prod(shape)) if static else self._probe_dim()
        if head is not None and head.dim_in != self.backbone_dim:
            raise RunnerError(f"projection head expects {head.dim_in}-d input, the model gives {self.backbone_dim}")
        self.dim = head.dim_out if head is not None else self.backbone_dim
        #: Vectors are comparable only within one space: the backbone and the head that made them.
        self.space = f"{name}+{head.digest}" if head is not None else name

    def _probe_dim(self) -> int:
        w, h = self.preprocess.size
        return int(self._raw(np.zeros((h, w, 3), np.uint8)).size)

    def _raw(self, image: np.ndarray) -> np.ndarray:
        return np.asarray(self.runner.run({self._input: self.preprocess(image)})[0], np.float32).reshape(-1)

    def backbone(self, image: np.ndarray) -> np.ndarray:
        """The backbone's L2-normalised vector (flip-averaged when ``flip_tta``), before the head."""
        v = l2_normalize(self._raw(image))
        if self.flip_tta:
            v = l2_normalize(v + l2_normalize(self._raw(image[:, ::-1])))
        return v

    def embed(self, image: np.ndarray) -> np.ndarray:
        """(dim,) float32 unit vector for a (H, W, 3) uint8 BGR image."""
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise ValueError("embed expects a non-empty (H, W, 3) BGR image")
        v = self.backbone(image)
        return self.head(v) if self.head is not None else v


class _ConstRunner:
    """A stand-in runner for the docstring example: always the same 3-d output."""

    input_names = ["input"]
    input_shapes = [(1, 4, 4, 3)]
    output_names = ["out"]
    output_shapes = [(1, 3)]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.array([[3.0, 0.0, 4.0]], np.float32)]


def open_embedder(model: str | Path | ModelSpec, *, model_dir: Path | None = None, threads: int = 2,
                  preprocess: Preprocess | None = None, head: ProjectionHead | Path | str | None = None,
                  flip_tta: bool = False) -> ImageEmbedder:
    """An embedder for a registry name/spec (installed in ``model_dir``) or a ``.onnx``/``.tflite`` file.

    ``preprocess`` defaults to the registry's entry for known names, else to :data:`IMAGENET_ONNX` for
    ``.onnx`` files and the Coral convention for ``.tflite`` files. ``head`` may be a shipped head's name
    (:data:`BUILTIN_HEADS`) or a path to an ``.npz``.
    """
    from models.registry import REGISTRY

    if isinstance(model, ModelSpec) or (isinstance(model, str) and model in REGISTRY):
        spec = model if isinstance(model, ModelSpec) else REGISTRY[model]
        runner = open_runner(spec, threads, model_dir=model_dir)
        name = spec.name
        default = PREPROCESS.get(spec.name) or (IMAGENET_ONNX if spec.runtime == "onnx" else Preprocess())
    else:
        path = Path(model)
        runner = open_runner(path, threads)
        name = path.name
        default = IMAGENET_ONNX if path.suffix.lower() == ".onnx" else Preprocess()
    if isinstance(head, (str, Path)):
        head = load_head(head)
    return ImageEmbedder(runner, preprocess or fit_input(default, runner), head=head, flip_tta=flip_tta,
                         name=name)


def fit_input(preprocess: Preprocess, runner: Runner) -> Preprocess:
    """``preprocess`` with the size and layout a static image input declares (``(1, 3, H, W)`` or
    ``(1, H, W, 3)``), so a model file with another input size plugs in without code; unchanged otherwise.

    Example:
        >>> fit_input(IMAGENET_ONNX, _ConstRunner()).size, fit_input(IMAGENET_ONNX, _ConstRunner()).layout
        ((4, 4), 'nhwc')
    """
    from dataclasses import replace

    shapes = getattr(runner, "input_shapes", None) or [None]
    shape = shapes[0]
    if shape is None or len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        return preprocess
    if shape[1] == 3:
        return replace(preprocess, layout="nchw", size=(shape[3], shape[2]))
    if shape[3] == 3:
        return replace(preprocess, layout="nhwc", size=(shape[2], shape[1]))
    return preprocess
