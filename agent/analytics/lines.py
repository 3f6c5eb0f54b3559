"""Footfall lines: count each person once per real crossing of a segment, with an explicit IN direction.

Per track the counter keeps a *side* (−1 OUT side, 0 unknown, +1 IN side) that is only set or changed when the
floor anchor is beyond a hysteresis band around the line; a crossing is a side change whose path crossed the
line *within the segment*. See ``docs/analytics.md`` for the pictures and the rules:

- IN side = start→end turned 90° clockwise on the image (a left→right line counts people moving down as IN);
- jitter inside the band never counts; a per-track count strictly alternates IN/OUT;
- the band on a side is clipped to half the room left to the image border (lines near the frame edge count);
- a new track id appearing where a track lost near the line was predicted to be inherits its state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from agent.analytics.geometry import XY, LineFrame, as_points
from agent.analytics.staff import StaffRegistry
from agent.analytics.tracks import TrackTable, inherit_tracks, predict, relink, velocity_update
from agent.config.vision_models import LineConfig

IN, OUT = 1, -1
Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Crossing:
    """One counted crossing (a ``line_crossing`` event).

    Attributes:
        line: line name.
        direction: ``"in"`` or ``"out"``.
        ts: time the floor anchor crossed the line (interpolated between the two frames around it).
        track_id: the track that crossed (after any id switch, the newest id).
        position: (x, y) normalised point of the line where it was crossed.
        confirmed_ts: time of the frame that confirmed the crossing (anchor beyond the band).
        staff: whether the track was known as staff when the crossing was emitted.
    """

    line: str
    direction: Direction
    ts: float
    track_id: int
    position: XY
    confirmed_ts: float
    staff: bool = False

    type = "line_crossing"

    def as_dict(self) -> dict[str, Any]:
        """Event body (JSON-ready)."""
        body = asdict(self)
        body["position"] = [round(self.position[0], 4), round(self.position[1], 4)]
        return {"type": self.type, **body}


_COLUMNS = {
    "side": (1, 0),            # −1 / 0 unknown / +1 (IN side)
    "last_dir": (1, 0),        # direction of the last counted crossing of this track (0: none)
    "pending": (1, 0),         # consecutive frames beyond the band on the other side (min_frames)
    "last_ts": (1, np.nan),
    "last_p": (2, np.nan),
    "last_d": (1, np.nan),     # signed distance of the last anchor
    "last_t": (1, np.nan),     # along-line position of the last anchor
    "vel": (2, np.nan),
    "cross_t": (1, np.nan),    # along-line position where the path last crossed the infinite line
    "cross_ts": (1, np.nan),   # and when
}


class LineCounter:
    """Counts crossings of one line by tracked floor anchors.

    Args:
        line: the line's config (name, start, end, hysteresis; normalised coordinates).
        segment_margin: crossings count within this normalised distance beyond the segment's ends.
        edge_fraction: the band on a side is at most this fraction of the room between the line and the
            image border on that side (so a person leaving the image always gets past it).
        min_frames: consecutive frames beyond the band needed to set or change a side (1 = first frame).
        relink_max_gap_s: a lost track may be continued by a new id for this long (0 disables re-linking).
        relink_radius: gate (normalised) around the lost track's constant-velocity prediction...
        relink_radius_per_s: ...widened by this much per second lost.
        relink_band: only tracks lost within this distance of the line (and its extent), or whose prediction
            reaches that close or crosses the line while they are lost, are re-linked; default
            ``max(4 × hysteresis, 0.1)``.
        max_speed: speed cap (normalised per second) for predictions.
        forget_s: state of tracks unseen for this long is dropped (bounded memory).
        max_tracks: hard cap on remembered tracks (oldest dropped first).
        staff: registry used to flag crossings of staff and to link ids on re-link.

    Example:
        >>> counter = LineCounter(LineConfig(name="door", start=(0.0, 0.5), end=(1.0, 0.5)))
        >>> _ = counter.update(0.0, np.array([1]), np.array([[0.5, 0.40]]))
        >>> [c.direction for c in counter.update(0.2, np.array([1]), np.array([[0.5, 0.60]]))]
        ['in']
    """

    def __init__(self, line: LineConfig, *, segment_margin: float = 0.02, edge_fraction: float = 0.5,
                 min_frames: int = 1, relink_max_gap_s: float = 2.0, relink_radius: float = 0.06,
                 relink_radius_per_s: float = 0.08, relink_band: float | None = None, max_speed: float = 1.5,
                 forget_s: float = 10.0, max_tracks: int = 4096, staff: StaffRegistry | None = None) -> None:
        if not 0.0 < edge_fraction <= 1.0:
            raise ValueError("edge_fraction must be in (0, 1]")
        if min_frames < 1:
            raise ValueError("min_frames must be ≥ 1")
        self.line = line
        self.name = line.name
        self.frame = LineFrame.from_points(line.start, line.end)
        self.hysteresis = float(line.hysteresis)
        self.margin = float(segment_margin)
        self.edge_fraction = float(edge_fraction)
        self.min_frames = int(min_frames)
        self.relink_max_gap_s = float(relink_max_gap_s)
        self.relink_radius = float(relink_radius)
        self.relink_radius_per_s = float(relink_radius_per_s)
        self.relink_band = float(relink_band) if relink_band is not None else max(4 * self.hysteresis, 0.1)
        self.max_speed = float(max_speed)
        self.forget_s = max(float(forget_s), self.relink_max_gap_s)
        self.max_tracks = int(max_tracks)
        self.staff = staff
        self.in_count = 0
        self.out_count = 0
        self.relinks = 0
        self._table = TrackTable(_COLUMNS)
        self._t_min, self._t_max = -self.margin, self.frame.length + self.margin
        self._const_band = self._constant_band()
        self._prune_every_s = min(1.0, self.forget_s / 4)
        self._next_prune = float("-inf")

    @classmethod
    def from_points(cls, name: str, start: XY, end: XY, hysteresis: float = 0.03, **kwargs: Any) -> LineCounter:
        """Build from plain values (validated through ``LineConfig``)."""
        return cls(LineConfig(name=name, start=start, end=end, hysteresis=hysteresis), **kwargs)

    @property
    def tracked(self) -> int:
        """Number of tracks with remembered state."""
        return len(self._table)

    def side_of(self, track_id: int) -> int:
        """−1, 0 (unknown / not tracked) or +1 (IN side) for a track id."""
        slot = self._table.find(np.array([track_id]))[0]
        return int(self._table["side"][slot]) if slot >= 0 else 0

    def bands(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hysteresis half-widths that apply at these anchors, clipped to the image.

        Args:
            anchors: (N, 2).

        Returns:
            ``(band_in, band_out)``, both (N,): ``min(hysteresis, edge_fraction × room to the border)`` on the
            IN and OUT side, measured along the normal from the nearest point of the segment.
        """
        _, t = self.frame.project(anchors)
        band_in, band_out = self._bands_at(t)
        return np.broadcast_to(band_in, t.shape).copy(), np.broadcast_to(band_out, t.shape).copy()

    def _bands_at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        room_in, room_out = self.frame.room_to_border(t)
        return (np.minimum(self.hysteresis, self.edge_fraction * room_in),
                np.minimum(self.hysteresis, self.edge_fraction * room_out))

    def _constant_band(self) -> tuple[float, float] | None:
        """The band is the same everywhere unless the segment is near the border: the room to the border is
        a minimum of linear functions along the segment (concave), so its minimum is at an end point."""
        band_in, band_out = self._bands_at(np.array([0.0, self.frame.length]))
        if np.all(band_in == self.hysteresis) and np.all(band_out == self.hysteresis):
            return self.hysteresis, self.hysteresis
        return None

    def update(self, ts: float, track_ids: np.ndarray | Sequence[int], anchors: np.ndarray,
               velocities: np.ndarray | None = None) -> list[Crossing]:
        """Feed one frame of tracks; return the crossings it completes.

        Args:
            ts: frame time in seconds (frames may be irregularly spaced).
            track_ids: (N,) int track ids (unique within the frame; later duplicates are ignored).
            anchors: (N, 2) normalised floor anchors (bottom-centre of the boxes).
            velocities: optional (N, 2) anchor velocities in normalised units per second (estimated from
                consecutive anchors when omitted).

        Returns:
            Crossings completed in this frame, in track order.
        """
        ts = float(ts)
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        pts = as_points(anchors)
        vel_in = None if velocities is None else as_points(velocities)
        if len(ids) != len(pts) or (vel_in is not None and len(vel_in) != len(ids)):
            raise ValueError("track_ids, anchors and velocities must have the same length")
        if len(set(ids.tolist())) != len(ids):
            _, first = np.unique(ids, return_index=True)
            first.sort()
            ids, pts = ids[first], pts[first]
            vel_in = None if vel_in is None else vel_in[first]
        if ts >= self._next_prune:
            self._prune(ts)
        if len(ids) == 0:
            return []
        table, c = self._table, self._table.col
        slots = table.find(ids)
        if self.relink_max_gap_s > 0 and (slots < 0).any():
            self._relink(ts, ids, pts, slots)
        new = slots < 0
        if new.any():
            slots[new] = table.add(ids[new])

        S = table.state[slots]  # (N, C) this frame's tracks; written back at the end
        d, t = self.frame.project(pts)
        last_d, last_t, last_ts = S[:, c["last_d"]], S[:, c["last_t"]], S[:, c["last_ts"]]
        # Where the path since the previous anchor crossed the infinite line (interpolated).
        raw = (d >= 0) != (last_d >= 0)
        raw &= np.isfinite(last_d)
        if raw.any():
            alpha = last_d[raw] / (last_d[raw] - d[raw])
            S[raw, c["cross_t"]] = last_t[raw] + alpha * (t[raw] - last_t[raw])
            S[raw, c["cross_ts"]] = last_ts[raw] + alpha * (ts - last_ts[raw])

        # Hysteresis: a side is only set or changed beyond the band (clipped to the image near its border).
        band_in, band_out = self._const_band if self._const_band is not None else self._bands_at(t)
        cand = np.where(d > band_in, IN, np.where(d < -band_out, OUT, 0))
        side = S[:, c["side"]]
        wants = (cand != 0) & (cand != side)
        pending = np.where(wants, S[:, c["pending"]] + 1, 0)
        accept = wants & (pending >= self.min_frames)
        cross_t = S[:, c["cross_t"]]
        through = accept & (side != 0) & (cross_t >= self._t_min) & (cross_t <= self._t_max)
        # A track's counted crossings strictly alternate: never twice in the same direction in a row.
        counted = through & (S[:, c["last_dir"]] != cand)
        if vel_in is None:
            vel_in = velocity_update(S[:, c["last_p"]], last_ts, S[:, c["vel"]], pts, ts)
        S[:, c["pending"]] = np.where(accept, 0, pending)
        S[:, c["side"]] = np.where(accept, cand, side)
        S[:, c["last_dir"]] = np.where(counted, cand, S[:, c["last_dir"]])
        S[:, c["vel"]] = np.where(np.isnan(vel_in), S[:, c["vel"]], vel_in)  # keep the estimate if none given
        S[:, c["last_p"]] = pts
        S[:, c["last_d"]] = d
        S[:, c["last_t"]] = t
        S[:, c["last_ts"]] = ts
        table.state[slots] = S
        if not counted.any():
            return []
        return self._emit(ts, ids, S, np.flatnonzero(counted), cand)

    def _emit(self, ts: float, ids: np.ndarray, S: np.ndarray, rows: np.ndarray,
              cand: np.ndarray) -> list[Crossing]:
        c = self._table.col
        positions = self.frame.point_at(S[rows, c["cross_t"]])
        out: list[Crossing] = []
        for row, pos in zip(rows.tolist(), positions.tolist()):
            direction: Direction = "in" if cand[row] == IN else "out"
            if direction == "in":
                self.in_count += 1
            else:
                self.out_count += 1
            track_id = int(ids[row])
            out.append(Crossing(line=self.name, direction=direction, ts=float(S[row, c["cross_ts"]]),
                                track_id=track_id, position=(float(pos[0]), float(pos[1])), confirmed_ts=ts,
                                staff=bool(self.staff is not None and self.staff.is_staff(track_id))))
        return out

    def _relink(self, ts: float, ids: np.ndarray, pts: np.ndarray, slots: np.ndarray) -> None:
        """Let new ids continue tracks lost near the line (updates ``slots`` in place)."""
        table = self._table
        lost = np.setdiff1d(table.live(), slots[slots >= 0])
        if len(lost) == 0:
            return
        gap = ts - table["last_ts"][lost]
        # Near the line: lost within the relink band, or predicted to have reached/crossed it while lost.
        ld, lt = table["last_d"][lost], table["last_t"][lost]
        pd, pt = self.frame.project(predict(table["last_p"][lost], table["vel"][lost], gap, self.max_speed))
        reach = self.margin + self.relink_band
        near = ((np.abs(ld) <= self.relink_band) | (np.abs(pd) <= self.relink_band) | ((ld >= 0) != (pd >= 0)))
        within = ((np.minimum(lt, pt) <= self.frame.length + reach) & (np.maximum(lt, pt) >= -reach))
        ok = (gap > 0) & (gap <= self.relink_max_gap_s) & near & within
        lost = lost[ok]
        new_rows = np.flatnonzero(slots < 0)
        ni, li = relink(pts[new_rows], table["last_p"][lost], table["vel"][lost], gap[ok],
                        radius=self.relink_radius, radius_per_s=self.relink_radius_per_s, max_speed=self.max_speed)
        if len(ni) == 0:
            return
        self.relinks += inherit_tracks(table, slots, ids, new_rows[ni], lost[li], self.staff, ts)

    def _prune(self, ts: float) -> None:
        self._next_prune = ts + self._prune_every_s
        table = self._table
        live = table.live()
        if len(live) == 0:
            return
        age = ts - table["last_ts"][live]
        table.remove(live[age > self.forget_s])
        if len(table) > self.max_tracks:
            live = table.live()
            oldest = live[np.argsort(table["last_ts"][live], kind="stable")]
            table.remove(oldest[: len(table) - self.max_tracks])
