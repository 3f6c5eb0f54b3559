"""Tray image → top-k PLU candidates: crop the tray, embed, search the gallery, re-rank by weight plausibility.

Example:
    >>> from agent.products.gallery import Gallery
    >>> class Fixed:  # an embedder that sees every image as the same vector
    ...     name, dim, space = "fixed", 2, "fixed"
    ...     def embed(self, image): return np.array([1.0, 0.0], np.float32)
    >>> g = Gallery(2); _ = g.add("apple", np.array([1.0, 0.1]), uid="a"); _ = g.add("melon", np.array([1.0, 0.0]), uid="m")
    >>> r = Recognizer(Fixed(), g, top_k=2)
    >>> [c.plu for c in r.rank(r.embed(np.zeros((4, 4, 3), np.uint8)))]
    ['melon', 'apple']
    >>> [c.plu for c in r.rank(np.array([1.0, 0.0]), weight_kg=0.2, piece_kg={"melon": (2.0, 8.0)})]
    ['apple', 'melon']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from agent.config.products_models import ProductsConfig
from agent.products.gallery import Candidate, Gallery
from agent.products.plausibility import rerank
from models.embedders import Embedder, Roi, crop_roi, open_embedder


class Recognizer:
    """An embedder and a gallery with the scale's top-k and plausibility settings."""

    def __init__(self, embedder: Embedder, gallery: Gallery, *, top_k: int = 5, weight_penalty: float = 0.2) -> None:
        self.embedder = embedder
        self.gallery = gallery
        self.top_k = top_k
        self.weight_penalty = weight_penalty

    @property
    def space(self) -> str:
        """Name of the embedding space the gallery's vectors live in."""
        return str(getattr(self.embedder, "space", self.embedder.name))

    def embed(self, image: np.ndarray, roi: Roi | None = None) -> np.ndarray:
        """(dim,) unit vector of the tray region of a BGR image."""
        return self.embedder.embed(crop_roi(image, roi))

    def rank(self, vector: np.ndarray, *, weight_kg: float | None = None,
             piece_kg: Mapping[str, tuple[float, float] | None] | None = None,
             top_k: int | None = None) -> list[Candidate]:
        """Top-k candidates for ``vector``; with a weight and piece-weight ranges, implausible PLUs drop down.

        Twice ``top_k`` are fetched before re-ranking so a plausible PLU just below the cut can move up.
        """
        k = top_k or self.top_k
        found = self.gallery.search(vector, k * 2 if weight_kg and piece_kg else k)
        scored = [(c.plu, c.score) for c in found]
        if weight_kg and piece_kg and self.weight_penalty > 0:
            scored = rerank(scored, weight_kg, piece_kg, self.weight_penalty)
        return [Candidate(plu, round(float(score), 4), rank + 1) for rank, (plu, score) in enumerate(scored[:k])]


def embedder_from_config(cfg: ProductsConfig, model_dir: Path, *, mirror: Path | None = None) -> Embedder:
    """The configured embedder (installs a registry model from ``mirror`` first when given)."""
    from models.registry import REGISTRY, install

    if cfg.embedder in REGISTRY and mirror is not None:
        install(cfg.embedder, model_dir, mirror=mirror)
    return open_embedder(cfg.embedder, model_dir=model_dir, threads=cfg.threads, head=cfg.head or None,
                         flip_tta=cfg.flip_tta)


def gallery_from_config(cfg: ProductsConfig, dim: int) -> Gallery:
    """An empty gallery with the configured cap and dedupe threshold."""
    return Gallery(dim, cap_per_plu=cfg.cap_per_plu, dedupe_cosine=cfg.dedupe_cosine)
