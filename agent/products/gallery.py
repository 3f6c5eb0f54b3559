"""The in-memory product gallery: unit embeddings keyed by PLU in a faiss inner-product index.

Search is max-per-class: a query's score for a PLU is its best cosine similarity to any of that PLU's entries,
and the top-k PLUs are returned. Asking faiss for ``top_k * cap_per_plu`` neighbours is exact (at most
``cap_per_plu`` neighbours belong to one PLU, so that many cover ``top_k`` distinct PLUs).

Adding keeps each PLU's entries few and different:

- **dedupe**: a vector whose cosine to an entry of the same PLU is ``>= dedupe_cosine`` is a near-identical image
  and is not added;
- **cap with diversity-preserving replacement**: at ``cap_per_plu`` entries, the most redundant of the
  ``cap + 1`` candidates (the one whose highest similarity to the others is largest) is dropped — if that is the
  new vector, nothing changes.

Persistence is the caller's (:mod:`agent.products.store`): :meth:`Gallery.add` returns what to write.

Example:
    >>> g = Gallery(dim=2, cap_per_plu=2, dedupe_cosine=0.99)
    >>> g.add("4011", np.array([1.0, 0.0]), uid="a").added
    True
    >>> g.add("4011", np.array([1.0, 0.001]), uid="b").reason
    'duplicate'
    >>> [(c.plu, round(c.score, 2)) for c in g.search(np.array([0.8, 0.6]), top_k=1)]
    [('4011', 0.8)]
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import faiss
import numpy as np

from models.embedders import l2_normalize


@dataclass(frozen=True)
class Candidate:
    """One PLU proposed for a query: ``score`` = best cosine to its entries; ``rank`` 1-based."""

    plu: str
    score: float
    rank: int = 0


@dataclass(frozen=True)
class AddResult:
    """Outcome of :meth:`Gallery.add`: ``reason`` is ``added``, ``replaced``, ``duplicate`` or ``redundant``;
    ``removed`` is the uid dropped to make room (``replaced``)."""

    added: bool
    reason: str
    uid: str
    removed: str | None = None


class Gallery:
    """Thread-safe gallery of ``dim``-d unit vectors by PLU (see the module doc)."""

    def __init__(self, dim: int, *, cap_per_plu: int = 20, dedupe_cosine: float = 0.97) -> None:
        if dim <= 0 or cap_per_plu <= 0:
            raise ValueError("dim and cap_per_plu must be positive")
        self.dim = dim
        self.cap_per_plu = cap_per_plu
        self.dedupe_cosine = dedupe_cosine
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._next_id = 1
        self._by_plu: dict[str, dict[int, np.ndarray]] = {}
        self._plu_of: dict[int, str] = {}
        self._uid_of: dict[int, str] = {}
        self._id_of_uid: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- reads -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._plu_of)

    def plus(self) -> list[str]:
        """PLUs with at least one entry, sorted."""
        with self._lock:
            return sorted(p for p, e in self._by_plu.items() if e)

    def count(self, plu: str) -> int:
        """Entries of ``plu``."""
        with self._lock:
            return len(self._by_plu.get(plu, {}))

    def uids(self, plu: str | None = None) -> list[str]:
        """uids of ``plu``'s entries (all entries when ``plu`` is None)."""
        with self._lock:
            ids = self._by_plu.get(plu, {}) if plu is not None else self._plu_of
            return [self._uid_of[i] for i in ids]

    def search(self, vector: np.ndarray, top_k: int = 5) -> list[Candidate]:
        """Top ``top_k`` PLUs by best cosine similarity to ``vector`` (dim,), best first."""
        q = l2_normalize(np.asarray(vector, np.float32).reshape(1, -1))
        if q.shape[1] != self.dim:
            raise ValueError(f"query has {q.shape[1]} dims, the gallery {self.dim}")
        with self._lock:
            n = self._index.ntotal
            if n == 0 or top_k <= 0:
                return []
            scores, ids = self._index.search(q, min(n, top_k * self.cap_per_plu))
            best: dict[str, float] = {}
            for s, i in zip(scores[0], ids[0]):
                plu = self._plu_of.get(int(i))
                if plu is not None and plu not in best:
                    best[plu] = float(s)
                    if len(best) == top_k:
                        break
        return [Candidate(plu, s, r + 1) for r, (plu, s) in enumerate(best.items())]

    # -- writes ------------------------------------------------------------------------------------
    def add(self, plu: str, vector: np.ndarray, *, uid: str, force: bool = False) -> AddResult:
        """Add ``vector`` under ``plu`` unless it is a near-duplicate or the most redundant at the cap.

        ``force`` skips both checks (used when loading persisted entries).
        """
        v = l2_normalize(np.asarray(vector, np.float32).reshape(-1))
        if v.shape[0] != self.dim:
            raise ValueError(f"vector has {v.shape[0]} dims, the gallery {self.dim}")
        with self._lock:
            if uid in self._id_of_uid:
                return AddResult(False, "duplicate", uid)
            entries = self._by_plu.setdefault(plu, {})
            removed: str | None = None
            if entries and not force:
                ids = list(entries)
                mat = np.stack([entries[i] for i in ids])
                if float((mat @ v).max()) >= self.dedupe_cosine:
                    return AddResult(False, "duplicate", uid)
                if len(ids) >= self.cap_per_plu:
                    drop = _most_redundant(np.vstack([mat, v[None]]))
                    if drop == len(ids):
                        return AddResult(False, "redundant", uid)
                    removed = self._uid_of[ids[drop]]
                    self._remove_id(ids[drop])
            self._insert(plu, v, uid)
        return AddResult(True, "replaced" if removed else "added", uid, removed)

    def remove(self, uids: list[str]) -> int:
        """Remove entries by uid; returns how many existed."""
        with self._lock:
            found = [self._id_of_uid[u] for u in uids if u in self._id_of_uid]
            for i in found:
                self._remove_id(i)
            return len(found)

    def remove_plu(self, plu: str) -> list[str]:
        """Remove every entry of ``plu``; returns their uids."""
        with self._lock:
            ids = list(self._by_plu.get(plu, {}))
            uids = [self._uid_of[i] for i in ids]
            for i in ids:
                self._remove_id(i)
            return uids

    def _insert(self, plu: str, v: np.ndarray, uid: str) -> None:
        i = self._next_id
        self._next_id += 1
        self._index.add_with_ids(v[None], np.array([i], dtype=np.int64))
        self._by_plu.setdefault(plu, {})[i] = v
        self._plu_of[i] = plu
        self._uid_of[i] = uid
        self._id_of_uid[uid] = i

    def _remove_id(self, i: int) -> None:
        self._index.remove_ids(np.array([i], dtype=np.int64))
        plu = self._plu_of.pop(i)
        self._by_plu[plu].pop(i, None)
        self._id_of_uid.pop(self._uid_of.pop(i), None)


def _most_redundant(vectors: np.ndarray) -> int:
    """Index of the row of (N, D) unit ``vectors`` whose highest cosine to another row is largest.

    Ties go to the later row, so an equally redundant new vector (the last row) is the one left out.
    """
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.max(axis=1)
    return int(len(nearest) - 1 - np.argmax(nearest[::-1]))
