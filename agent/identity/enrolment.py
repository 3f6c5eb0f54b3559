"""Enrolment of one consenting person from a folder of photos: only embeddings are kept, never the photos.

``embed`` is any function ``image (H, W, 3) BGR uint8 -> (embedding (D,), quality 0-1) | None`` — by default the
face pipeline's :meth:`~agent.identity.pipeline.FacePipeline.embed_photo`. Photos that do not look like the
same person as the others are refused as a whole (one folder = one person).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["EnrolmentError", "PhotoEmbeddings", "embed_folder"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
EmbedFn = Callable[[np.ndarray], "tuple[np.ndarray, float] | None"]


class EnrolmentError(ValueError):
    """The folder cannot be enrolled (no photos, no faces, or not one person)."""


@dataclass
class PhotoEmbeddings:
    """Embeddings kept from a folder, best quality first, and what was skipped."""

    embeddings: list[np.ndarray]
    qualities: list[float]
    photos: int
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> reason


def _read(path: Path) -> np.ndarray | None:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def embed_folder(directory: Path, embed: EmbedFn, *, keep: int = 5, same_person_min: float = 0.3,
                 read: Callable[[Path], np.ndarray | None] = _read) -> PhotoEmbeddings:
    """Embed every photo in ``directory``; keep the ``keep`` best. Raises :class:`EnrolmentError` when there is
    no usable face, or when a face is further than ``same_person_min`` (cosine) from the others' mean."""
    files = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not files:
        raise EnrolmentError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {directory}")
    found: list[tuple[float, np.ndarray, str]] = []
    skipped: dict[str, str] = {}
    for path in files:
        image = read(path)
        if image is None:
            skipped[path.name] = "unreadable image"
            continue
        result = embed(image)
        del image  # the photo itself is never kept
        if result is None:
            skipped[path.name] = "no face found"
            continue
        vec, quality = result
        quality = float(getattr(quality, "quality", quality))
        vec = np.asarray(vec, np.float32)
        found.append((quality, vec / max(float(np.linalg.norm(vec)), 1e-12), path.name))
    if not found:
        raise EnrolmentError(f"no usable face in the {len(files)} photo(s) of {directory}")
    if len(found) > 1:
        vecs = np.stack([v for _, v, _ in found])
        for i, (_, vec, name) in enumerate(found):
            others = np.delete(vecs, i, axis=0).mean(axis=0)
            sim = float(vec @ (others / max(float(np.linalg.norm(others)), 1e-12)))
            if sim < same_person_min:
                raise EnrolmentError(f"{name} does not look like the same person as the other photos "
                                     f"(similarity {sim:.2f}); enrol one person per folder")
    found.sort(key=lambda item: -item[0])
    kept = found[:keep]
    return PhotoEmbeddings([v for _, v, _ in kept], [q for q, _, _ in kept], len(files), skipped)
