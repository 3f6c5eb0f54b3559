"""Staff exclusion hook: which track ids are staff, and which ids are the same person (trajectory continuity).

A track is marked staff by a staff zone ("behind the counter") or later by another source (e.g. identity). When
the line counter or a zone re-links a new track id to a lost one, it calls ``link``: the ids then share one
staff status in both directions (marking either marks both), so a staff member whose id switched is still
excluded, and a mark made after an id switch also covers the crossings of the earlier id.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class StaffRegistry:
    """Union-find over track ids with a staff mark per group.

    Args:
        ttl_s: groups untouched (no ``mark``/``link``/``touch``) for this long are dropped by ``prune``.

    Example:
        >>> staff = StaffRegistry()
        >>> staff.link(12, 7)          # id 12 continues id 7
        >>> staff.mark(12, "zone:counter")
        >>> staff.is_staff(7), staff.reason(7)
        (True, 'zone:counter')
    """

    def __init__(self, ttl_s: float = 12 * 3600.0) -> None:
        self.ttl_s = float(ttl_s)
        self._parent: dict[int, int] = {}
        self._reason: dict[int, str] = {}  # root → reason
        self._touched: dict[int, float] = {}  # root → last ts

    def _root(self, track_id: int) -> int:
        parent = self._parent
        root = track_id
        while root in parent:
            root = parent[root]
        node = track_id
        while node in parent and parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def mark(self, track_id: int, reason: str, ts: float | None = None) -> None:
        """Mark a track (and every id linked to it) as staff; the first reason is kept."""
        root = self._root(int(track_id))
        self._reason.setdefault(root, reason)
        self._touch(root, ts)

    def is_staff(self, track_id: int) -> bool:
        """True if the track, or an id linked to it, was marked."""
        return self._root(int(track_id)) in self._reason

    def reason(self, track_id: int) -> str | None:
        """Why the track is staff (``None`` if it is not)."""
        return self._reason.get(self._root(int(track_id)))

    def staff_mask(self, track_ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """(N,) track ids → (N,) bool."""
        if not self._reason:
            return np.zeros(len(np.atleast_1d(np.asarray(track_ids))), dtype=bool)
        return np.fromiter((self.is_staff(int(i)) for i in np.atleast_1d(np.asarray(track_ids))), dtype=bool)

    def link(self, new_id: int, old_id: int, ts: float | None = None) -> None:
        """Record that ``new_id`` continues ``old_id`` (same person)."""
        a, b = self._root(int(new_id)), self._root(int(old_id))
        if a == b:
            return
        self._parent[a] = b
        if a in self._reason:
            self._reason.setdefault(b, self._reason.pop(a))
        t_a = self._touched.pop(a, None)
        if t_a is not None:
            self._touched[b] = max(t_a, self._touched.get(b, t_a))
        self._touch(b, ts)

    def touch(self, track_id: int, ts: float) -> None:
        """Keep a group alive (call while the person is still tracked, if the TTL is short)."""
        self._touch(self._root(int(track_id)), ts)

    def _touch(self, root: int, ts: float | None) -> None:
        if ts is not None:
            self._touched[root] = max(float(ts), self._touched.get(root, float("-inf")))

    def prune(self, now: float) -> int:
        """Drop groups last touched more than ``ttl_s`` before ``now`` (groups never touched with a time are
        kept); returns how many ids were forgotten."""
        cutoff = now - self.ttl_s
        stale = {r for r, t in self._touched.items() if t < cutoff}
        if not stale:
            return 0
        doomed = [i for i in self._parent if self._root(i) in stale] + list(stale)
        for i in doomed:
            self._parent.pop(i, None)
            self._reason.pop(i, None)
            self._touched.pop(i, None)
        return len(doomed)

    def __len__(self) -> int:
        """Number of staff groups."""
        return len(self._reason)
