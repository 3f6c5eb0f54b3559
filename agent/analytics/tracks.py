"""Per-track state as a struct of arrays, and trajectory continuity (re-linking a new track id to a lost one).

``TrackTable`` keeps one slot per track id with named numpy columns, so counters update all tracks of a frame
with array operations. ``relink`` pairs newly appeared tracks with recently lost ones whose constant-velocity
prediction lands near them: the new id then inherits the lost one's slot (its side of a line, its open visit).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Column spec: name → (width, fill value). Width 1 columns are 1-D, wider ones 2-D.
ColumnSpec = Mapping[str, tuple[int, float]]


class TrackTable:
    """Slots of per-track state keyed by track id, stored as one float64 matrix ``state`` (capacity, C).

    Each named column is a view: ``table["side"]`` is ``state[:, k]`` (capacity,), a width-2 column is
    ``state[:, k:k+2]`` (capacity, 2). Hot paths gather the rows of a frame's tracks at once
    (``S = table.state[slots]``), compute on column views of ``S`` with ``table.col[name]``, and scatter back
    (``table.state[slots] = S``): two numpy calls instead of two per column.

    Example:
        >>> table = TrackTable({"side": (1, 0.0), "last_p": (2, np.nan)})
        >>> slots = table.add(np.array([7, 9]))
        >>> table["side"][slots] = [1, -1]
        >>> table.find(np.array([9, 5])).tolist(), table["side"][table.find(np.array([7]))].tolist()
        ([1, -1], [1.0])
    """

    def __init__(self, columns: ColumnSpec, capacity: int = 64) -> None:
        self.col: dict[str, int | slice] = {}
        fills: list[float] = []
        for name, (width, fill) in columns.items():
            k = len(fills)
            self.col[name] = k if width == 1 else slice(k, k + width)
            fills += [float(fill)] * width
        self._fill = np.asarray(fills, dtype=np.float64)
        self._cap = max(1, int(capacity))
        self.state = np.tile(self._fill, (self._cap, 1))
        self.ids = np.full(self._cap, -1, dtype=np.int64)
        self.used = np.zeros(self._cap, dtype=bool)
        self._slot_of: dict[int, int] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.state[:, self.col[name]]

    def __len__(self) -> int:
        return len(self._slot_of)

    def live(self) -> np.ndarray:
        """Slots in use, (M,) int."""
        return np.flatnonzero(self.used)

    def find(self, track_ids: np.ndarray) -> np.ndarray:
        """(N,) track ids → (N,) slots, ``-1`` where unknown."""
        get = self._slot_of.get
        return np.fromiter((get(i, -1) for i in np.asarray(track_ids).tolist()), dtype=np.int64,
                           count=len(track_ids))

    def add(self, track_ids: np.ndarray) -> np.ndarray:
        """Allocate slots (columns reset to their fill values) for ids not in the table; (N,) slots."""
        ids = np.asarray(track_ids, dtype=np.int64)
        free = np.flatnonzero(~self.used)
        if len(free) < len(ids):
            self._grow(len(self._slot_of) + len(ids))
            free = np.flatnonzero(~self.used)
        slots = free[: len(ids)]
        self.state[slots] = self._fill
        self.ids[slots] = ids
        self.used[slots] = True
        for s, i in zip(slots.tolist(), ids.tolist()):
            self._slot_of[i] = s
        return slots

    def rename(self, slots: np.ndarray, new_ids: np.ndarray) -> None:
        """Give existing slots new track ids (the state carries over: trajectory continuity)."""
        for s, i in zip(np.asarray(slots).tolist(), np.asarray(new_ids).tolist()):
            self._slot_of.pop(int(self.ids[s]), None)
            self.ids[s] = i
            self._slot_of[int(i)] = int(s)

    def remove(self, slots: np.ndarray) -> None:
        """Free slots."""
        for s in np.asarray(slots, dtype=np.int64).tolist():
            if self.used[s]:
                self._slot_of.pop(int(self.ids[s]), None)
                self.used[s] = False
                self.ids[s] = -1

    def _grow(self, needed: int) -> None:
        cap = self._cap
        while cap < needed:
            cap *= 2
        extra = cap - self._cap
        self.ids = np.concatenate([self.ids, np.full(extra, -1, dtype=np.int64)])
        self.used = np.concatenate([self.used, np.zeros(extra, dtype=bool)])
        self.state = np.concatenate([self.state, np.tile(self._fill, (extra, 1))])
        self._cap = cap


def predict(points: np.ndarray, velocities: np.ndarray, gaps_s: np.ndarray, max_speed: float) -> np.ndarray:
    """Constant-velocity prediction with the speed clipped to ``max_speed``.

    Args:
        points: (K, 2) last positions.
        velocities: (K, 2) per second.
        gaps_s: (K,) seconds since each last position.
        max_speed: normalised units per second.

    Returns:
        (K, 2) predicted positions.
    """
    v = np.nan_to_num(np.asarray(velocities, dtype=np.float64).reshape(-1, 2))
    speed = np.hypot(v[:, 0], v[:, 1])
    scale = np.where(speed > max_speed, max_speed / np.maximum(speed, 1e-12), 1.0)
    return points + v * (scale * np.asarray(gaps_s, dtype=np.float64))[:, None]


def relink(new_points: np.ndarray, lost_points: np.ndarray, lost_velocities: np.ndarray, lost_gaps_s: np.ndarray,
           *, radius: float, radius_per_s: float, max_speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair new tracks with lost tracks whose predicted position is close: greedy, nearest first, one-to-one.

    A lost track ``k`` may take new track ``m`` when ``|new_m − predict_k| ≤ radius + radius_per_s · gap_k``
    (the gate widens with the time the track has been lost).

    Args:
        new_points: (M, 2) anchors of tracks seen for the first time.
        lost_points: (K, 2) last anchors of lost tracks.
        lost_velocities: (K, 2) their velocities (per second).
        lost_gaps_s: (K,) seconds since each was last seen.

    Returns:
        ``(new_index, lost_index)``: two (P,) int arrays of matched pairs.

    Example:
        >>> relink(np.array([[0.5, 0.52]]), np.array([[0.5, 0.45]]), np.array([[0.0, 0.1]]), np.array([0.6]),
        ...        radius=0.05, radius_per_s=0.05, max_speed=1.0)
        (array([0]), array([0]))
    """
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if len(new_points) == 0 or len(lost_points) == 0:
        return empty
    pred = predict(lost_points, lost_velocities, lost_gaps_s, max_speed)  # (K, 2)
    dist = np.linalg.norm(new_points[:, None, :] - pred[None, :, :], axis=2)  # (M, K)
    gate = radius + radius_per_s * np.asarray(lost_gaps_s, dtype=np.float64)  # (K,)
    cand_m, cand_k = np.nonzero(dist <= gate[None, :])
    if len(cand_m) == 0:
        return empty
    order = np.argsort(dist[cand_m, cand_k], kind="stable")
    used_m: set[int] = set()
    used_k: set[int] = set()
    out_m: list[int] = []
    out_k: list[int] = []
    for m, k in zip(cand_m[order].tolist(), cand_k[order].tolist()):
        if m in used_m or k in used_k:
            continue
        used_m.add(m)
        used_k.add(k)
        out_m.append(m)
        out_k.append(k)
    return np.asarray(out_m, dtype=np.int64), np.asarray(out_k, dtype=np.int64)


def velocity_update(prev_points: np.ndarray, prev_ts: np.ndarray, prev_vel: np.ndarray, points: np.ndarray,
                    ts: float, smoothing: float = 0.5) -> np.ndarray:
    """Smoothed velocity estimate from consecutive anchors (per second).

    Args:
        prev_points: (N, 2) previous anchors (NaN where none).
        prev_ts: (N,) their timestamps (NaN where none).
        prev_vel: (N, 2) previous velocity estimates (NaN where none yet).
        points: (N, 2) current anchors.
        ts: current time.
        smoothing: weight of the previous estimate (0 = use the latest step only).

    Returns:
        (N, 2) velocities; unchanged where no usable previous anchor (or no time elapsed).

    Example:
        >>> velocity_update(np.array([[0.5, 0.5]]), np.array([0.0]), np.full((1, 2), np.nan),
        ...                 np.array([[0.5, 0.6]]), 0.5).round(3).tolist()
        [[0.0, 0.2]]
    """
    dt = ts - prev_ts
    ok = dt > 1e-6  # NaN (no previous anchor) compares False
    inst = (points - prev_points) / np.where(ok, dt, 1.0)[:, None]
    blended = np.where(np.isnan(prev_vel), inst, smoothing * prev_vel + (1.0 - smoothing) * inst)
    return np.where(ok[:, None], blended, prev_vel)


def inherit_tracks(table: TrackTable, slots: np.ndarray, ids: np.ndarray, rows: np.ndarray,
                   inherited: np.ndarray, staff, ts: float) -> int:  # noqa: ANN001 - StaffRegistry | None
    """New ids ``ids[rows]`` take over the state rows ``inherited`` of re-linked lost tracks (and their staff
    mark); returns how many were re-linked."""
    old_ids = table.ids[inherited].copy()
    table.rename(inherited, ids[rows])
    slots[rows] = inherited
    if staff is not None:
        for new_id, old_id in zip(ids[rows].tolist(), old_ids.tolist()):
            staff.link(new_id, old_id, ts)
    return len(rows)
