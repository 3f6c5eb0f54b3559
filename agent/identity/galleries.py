"""The in-memory side of the galleries: one :class:`FaissGallery` per gallery, labels mapped to identity ids.

The database is the truth (encrypted); this set is rebuilt from it at start and kept in step by the service.
Not thread-safe on its own: :class:`~agent.identity.service.IdentityService` holds its lock around every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.identity.gallery import FaissGallery
from agent.identity.repository import GALLERIES

__all__ = ["GallerySet", "Match", "Member"]


@dataclass(frozen=True, slots=True)
class Member:
    """What matching needs to know about an identity (no biometric data)."""

    id: str
    gallery: str
    kind: str | None = None
    reason: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """Best gallery hit of a face: the identity and its cosine similarity."""

    member: Member
    score: float


class GallerySet:
    """Every gallery of the store, searchable in decision order (opt-out first, anonymous visitors last)."""

    def __init__(self, dim: int, *, ann_min_size: int = 50_000, nprobe: int = 128) -> None:
        self.dim = dim
        self.galleries = {g: FaissGallery(dim, ann_min_size=ann_min_size, nprobe=nprobe) for g in GALLERIES}
        self.members: dict[str, Member] = {}
        self._owner: dict[int, str] = {}
        self._labels: dict[str, list[int]] = {}
        self._next = 1

    def __contains__(self, identity_id: str) -> bool:
        return identity_id in self.members

    def sizes(self) -> dict[str, int]:
        """Embeddings held per gallery."""
        return {name: len(g) for name, g in self.galleries.items()}

    def add(self, member: Member, vectors: np.ndarray) -> None:
        """Add ``vectors`` (N, D) of ``member`` (creating or updating its record)."""
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        old = self.members.get(member.id)
        if old is not None and old.gallery != member.gallery:
            self.remove(member.id)
        self.members[member.id] = member
        if len(vectors) == 0:
            return
        labels = np.arange(self._next, self._next + len(vectors), dtype=np.int64)
        self._next += len(vectors)
        self.galleries[member.gallery].add(labels, vectors)
        for label in labels.tolist():
            self._owner[label] = member.id
        self._labels.setdefault(member.id, []).extend(labels.tolist())

    def add_bulk(self, items: list[tuple[Member, np.ndarray]]) -> None:
        """Add many new members at once (start-up load): one faiss add per gallery, so a large gallery is
        indexed (and an IVF trained) once, not once per identity."""
        per_gallery: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        for member, vectors in items:
            vectors = np.atleast_2d(np.asarray(vectors, np.float32))
            self.members[member.id] = member
            if len(vectors) == 0:
                continue
            labels = np.arange(self._next, self._next + len(vectors), dtype=np.int64)
            self._next += len(vectors)
            for label in labels.tolist():
                self._owner[label] = member.id
            self._labels.setdefault(member.id, []).extend(labels.tolist())
            ids, vecs = per_gallery.setdefault(member.gallery, ([], []))
            ids.append(labels)
            vecs.append(vectors)
        for name, (ids, vecs) in per_gallery.items():
            self.galleries[name].add(np.concatenate(ids), np.concatenate(vecs))

    def remove(self, identity_id: str) -> Member | None:
        """Forget ``identity_id`` entirely; returns its record if it was held."""
        member = self.members.pop(identity_id, None)
        labels = self._labels.pop(identity_id, [])
        for label in labels:
            self._owner.pop(label, None)
        if member is not None and labels:
            self.galleries[member.gallery].remove(labels)
        return member

    def count(self, identity_id: str) -> int:
        """Embeddings held for ``identity_id``."""
        return len(self._labels.get(identity_id, ()))

    def best(self, vector: np.ndarray, *, now: float, thresholds: dict[str, float], k: int = 4,
             exclude: frozenset[str] = frozenset()) -> Match | None:
        """The first gallery, in decision order, whose best valid hit reaches its threshold.

        Expired watchlist entries and ``exclude``-d ids are skipped.
        """
        query = np.asarray(vector, np.float32).reshape(1, -1)
        for name in GALLERIES:
            gallery = self.galleries[name]
            if len(gallery) == 0:
                continue
            scores, labels = gallery.search(query, k=k)
            for score, label in zip(scores[0].tolist(), labels[0].tolist()):
                if label < 0 or score < thresholds[name]:
                    break
                member = self.members.get(self._owner.get(label, ""))
                if member is None or member.id in exclude:
                    continue
                if member.expires_at is not None and member.expires_at < now:
                    continue
                return Match(member, float(score))
        return None
