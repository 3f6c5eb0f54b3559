"""A face gallery in faiss: inner product on L2-normalised vectors (= cosine similarity).

Small galleries use an exact ``IndexFlatIP``; once a gallery holds more than ``ann_min_size`` vectors it is
rebuilt as an IVF index (``IndexIVFFlat``, inner product) that visits ``nprobe`` cells per query. Both keep
caller-chosen int64 labels, support removal, and are guarded by one lock (faiss indexes are not safe to search
while they are being written). Searches run single-threaded (``search_threads``): a decision is one query, and
OpenMP threads only add spin-wait on a box whose cores are busy with video.

>>> g = FaissGallery(4)
>>> g.add(np.array([7, 8]), np.eye(4, dtype=np.float32)[:2])
>>> scores, labels = g.search(np.array([[1, 0.1, 0, 0]], dtype=np.float32), k=1)
>>> int(labels[0, 0]), round(float(scores[0, 0]), 3)
(7, 0.995)
"""

from __future__ import annotations

import math
import os
import threading

import faiss
import numpy as np

__all__ = ["FaissGallery", "normalise"]


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` (N, D) scaled to unit length, as contiguous float32 (zero rows stay zero)."""
    arr = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.maximum(norms, 1e-12), dtype=np.float32)


class FaissGallery:
    """Labelled unit vectors searchable by cosine similarity; exact below ``ann_min_size``, IVF above."""

    def __init__(self, dim: int, *, ann_min_size: int = 50_000, nprobe: int = 128, seed: int = 1234,
                 search_threads: int = 1) -> None:
        self.dim = dim
        self.search_threads = search_threads
        self.ann_min_size = ann_min_size
        self.nprobe = nprobe
        self.seed = seed
        self._lock = threading.Lock()
        self._index: faiss.Index = self._flat()
        self._ann = False
        self._trained_size = 0

    # -- building ----------------------------------------------------------------------------------
    def _flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    @property
    def kind(self) -> str:
        """``exact`` (flat) or ``ivf`` (approximate)."""
        return "ivf" if self._ann else "exact"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Add ``vectors`` (N, D), normalised here, under int64 ``labels`` (N,)."""
        vecs = normalise(vectors)
        ids = np.ascontiguousarray(np.asarray(labels, dtype=np.int64).reshape(-1))
        if vecs.shape != (ids.size, self.dim):
            raise ValueError(f"expected {ids.size} vectors of dimension {self.dim}, got shape {vecs.shape}")
        if ids.size == 0:
            return
        with self._lock:
            self._index.add_with_ids(vecs, ids)
            if (not self._ann and self._index.ntotal > self.ann_min_size) or (
                    self._ann and self._index.ntotal > 4 * self._trained_size):
                self._rebuild_ivf()  # cells trained on a quarter of the data get too crowded: re-train

    def remove(self, labels: np.ndarray | list[int]) -> int:
        """Remove every vector with one of ``labels``; returns how many went."""
        ids = np.ascontiguousarray(np.asarray(labels, dtype=np.int64).reshape(-1))
        if ids.size == 0:
            return 0
        with self._lock:
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
            if self._ann and self._index.ntotal <= self.ann_min_size // 2:
                self._rebuild_flat()  # hysteresis: do not flip back and forth around the threshold
        return removed

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (labels, vectors) currently held (used to switch index type)."""
        if not self._ann:
            flat = faiss.downcast_index(self._index.index)
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            vecs = flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.zeros((0, self.dim), np.float32)
            return ids, vecs
        ivf = self._index
        invlists = ivf.invlists
        ids_parts, vec_parts = [], []
        for cell in range(ivf.nlist):
            size = invlists.list_size(cell)
            if size == 0:
                continue
            ids_parts.append(faiss.rev_swig_ptr(invlists.get_ids(cell), size).copy())
            codes = faiss.rev_swig_ptr(invlists.get_codes(cell), size * invlists.code_size).copy()
            vec_parts.append(codes.view(np.float32).reshape(size, self.dim))
        if not ids_parts:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        return np.concatenate(ids_parts).astype(np.int64), np.concatenate(vec_parts)

    def _rebuild_ivf(self) -> None:
        ids, vecs = self._all()
        nlist = max(16, int(2 * math.sqrt(len(ids))))
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = self.seed
        rng = np.random.default_rng(self.seed)
        sample = vecs[rng.choice(len(vecs), size=min(len(vecs), 64 * nlist), replace=False)]
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # k-means training does use every core
        ivf.train(sample)
        ivf.add_with_ids(vecs, ids)
        ivf.nprobe = min(self.nprobe, nlist)
        ivf.quantizer_trains_alone = 0
        self._quantizer = quantizer  # faiss does not own the Python-side quantizer: keep it alive
        self._index, self._ann, self._trained_size = ivf, True, len(ids)

    def _rebuild_flat(self) -> None:
        ids, vecs = self._all()
        index = self._flat()
        if len(ids):
            index.add_with_ids(vecs, ids)
        self._index, self._ann = index, False

    # -- searching ---------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores (Q, k), labels (Q, k)) for ``queries`` (Q, D); missing results are label -1,
        score -inf."""
        q = normalise(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"query dimension {q.shape[1]} != gallery dimension {self.dim}")
        with self._lock:
            if self._index.ntotal == 0:
                return np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
            # One query at a time (one per track decision): OpenMP threads only add spin-wait on a busy box.
            faiss.omp_set_num_threads(self.search_threads)
            scores, labels = self._index.search(q, k)
        scores = np.where(labels < 0, -np.inf, scores).astype(np.float32)
        return scores, labels
