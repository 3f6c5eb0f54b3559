"""What the registry knows about one model file: :class:`ModelSpec`, and the errors of the model library."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Task = Literal["person_detection", "person_reid", "face_detection", "face_embedding", "product_embedding",
               "product_classification", "labels", "sample_media"]
Runtime = Literal["onnx", "tflite", "none"]


@dataclass(frozen=True)
class ModelSpec:
    """One model file: where it comes from, how to check it, and how to feed and read it.

    ``relpath`` is relative to the model directory, with the same layout as a mirror directory
    (e.g. ``person_detection/yolox_nano_416x416.onnx``). ``input_size`` is ``(width, height)`` in pixels, or
    ``None`` when the model takes any size (see ``preprocessing``) or has no input (a labels file).

    Example:
        >>> spec = ModelSpec(name="x", task="labels", relpath="x/labels.txt", url="file:///x", sha256="0" * 64,
        ...                  size=10, licence="MIT", licence_caveat="", input_size=None, preprocessing="-",
        ...                  decoder="none", runtime="none", source="o/r@c:labels.txt")
        >>> spec.filename
        'labels.txt'
    """

    name: str
    task: Task
    relpath: str
    url: str
    sha256: str
    size: int
    licence: str
    licence_caveat: str
    input_size: tuple[int, int] | None
    preprocessing: str
    decoder: str
    runtime: Runtime
    source: str

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits")
        if self.size <= 0:
            raise ValueError(f"{self.name}: size must be positive")
        if self.relpath.startswith("/") or ".." in self.relpath.split("/"):
            raise ValueError(f"{self.name}: relpath must be relative and stay inside the model directory")

    @property
    def filename(self) -> str:
        """Base name of the installed file."""
        return self.relpath.rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-able dict (``input_size`` as a list or ``None``)."""
        data = asdict(self)
        data["input_size"] = list(self.input_size) if self.input_size else None
        return data


class ModelError(Exception):
    """Base class of the model library's errors."""


class UnknownModel(ModelError):
    """A name that is not in the registry."""


class ModelNotInstalled(ModelError):
    """A registry model whose file is not in the model directory; the message says how to install it."""


class ModelIntegrityError(ModelError):
    """A file whose size or sha256 differs from the registry's (corrupt, truncated or substituted)."""

    def __init__(self, message: str, *, expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class ModelSourceError(ModelError):
    """The upstream URL or the mirror could not provide the file."""
