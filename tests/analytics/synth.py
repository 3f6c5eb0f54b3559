"""Synthetic trajectories for the analytics tests (normalised coordinates, irregular frame times)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    ts: float
    ids: np.ndarray  # (N,) int
    anchors: np.ndarray  # (N, 2)


def frame_times(n: int, rng: np.random.Generator, dt_range: tuple[float, float] = (0.12, 0.3),
                t0: float = 0.0) -> np.ndarray:
    """n irregular frame times starting at t0 (GIF-like / detect-rate jitter)."""
    return t0 + np.concatenate([[0.0], np.cumsum(rng.uniform(*dt_range, size=n - 1))])


def straight_walk(start: tuple[float, float], end: tuple[float, float], ts: np.ndarray) -> np.ndarray:
    """(T, 2) points moving at constant speed from start (at ts[0]) to end (at ts[-1])."""
    a, b = np.asarray(start, float), np.asarray(end, float)
    f = (ts - ts[0]) / max(ts[-1] - ts[0], 1e-9)
    return a + f[:, None] * (b - a)


def frames_from_tracks(tracks: dict[int, tuple[np.ndarray, np.ndarray]], shuffle_rng: np.random.Generator | None = None
                       ) -> list[Frame]:
    """Merge per-track (ts, points) into frames (one per distinct ts; rows shuffled if a generator is given)."""
    by_ts: dict[float, list[tuple[int, np.ndarray]]] = {}
    for tid, (ts, pts) in tracks.items():
        for t, p in zip(ts.tolist(), pts):
            by_ts.setdefault(round(t, 9), []).append((tid, p))
    frames = []
    for t in sorted(by_ts):
        rows = by_ts[t]
        if shuffle_rng is not None:
            rows = [rows[i] for i in shuffle_rng.permutation(len(rows))]
        frames.append(Frame(t, np.array([r[0] for r in rows], dtype=np.int64),
                            np.array([r[1] for r in rows], dtype=float).reshape(-1, 2)))
    return frames


def run(counter, frames: Iterable[Frame]) -> list:
    """Feed frames to anything with ``update(ts, ids, anchors)``; return all events."""
    out = []
    for f in frames:
        out += counter.update(f.ts, f.ids, f.anchors)
    return out


def single(ts: np.ndarray, pts: np.ndarray, track_id: int = 1) -> Iterator[Frame]:
    for t, p in zip(ts.tolist(), pts):
        yield Frame(t, np.array([track_id]), np.asarray(p, float).reshape(1, 2))
