"""Zones: timed visits (dwell), live occupancy, loitering and crowding alerts, queues, staff zones.

A visit starts after ``enter_frames`` consecutive detections of a track's floor anchor inside the polygon (enter
time = the first of those frames; missed detections do not break the streak, a detection outside does). It ends
once the track has been outside *or unseen* for ``exit_grace_s`` (exit time = the last time it was seen inside),
so occlusions and detector misses shorter than the grace never split a visit, and a track lost for good ends
its visit after the grace. A new track id appearing inside the zone near where a visitor lost within the grace
was predicted to be continues that visit (trajectory continuity across an id switch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from agent.analytics.geometry import PolygonTest, as_points
from agent.analytics.staff import StaffRegistry
from agent.analytics.tracks import TrackTable, inherit_tracks, relink, velocity_update
from agent.config.vision_models import ZoneConfig

_EPS = 1e-9  # tolerance on time comparisons (frame times are sums of floats)

ZoneEventType = Literal["zone_visit", "zone_loitering", "zone_crowding", "zone_crowding_cleared"]


@dataclass(frozen=True, slots=True)
class ZoneEvent:
    """An event of a zone.

    ``zone_visit`` (one per visit, when it ends): ``track_id, enter_ts, exit_ts, dwell_s``, ``ts = exit_ts``.
    ``zone_loitering`` (once per visit, when its dwell first exceeds ``loiter_after_s``): ``track_id, enter_ts,
    dwell_s`` so far, ``ts`` = time of the frame that saw it.
    ``zone_crowding`` (occupancy > ``crowd_max`` for ``crowd_for_s``): ``occupancy``, ``enter_ts`` = since when.
    ``zone_crowding_cleared`` (occupancy back to ≤ ``crowd_max``): ``occupancy`` (the maximum seen),
    ``enter_ts`` = since when, ``dwell_s`` = how long it was over the threshold.
    ``staff``: the track was known as staff when the event was emitted (re-checked by the aggregator).
    """

    type: ZoneEventType
    zone: str
    ts: float
    track_id: int | None = None
    enter_ts: float | None = None
    exit_ts: float | None = None
    dwell_s: float | None = None
    occupancy: int | None = None
    staff: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Event body (JSON-ready; fields that do not apply are left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


_COLUMNS = {
    "streak": (1, 0),              # consecutive detections inside
    "streak_ts": (1, np.nan),      # time of the first of them
    "in_visit": (1, 0),            # 1 while a visit is open
    "enter_ts": (1, np.nan),
    "last_inside_ts": (1, np.nan),
    "last_seen_ts": (1, np.nan),
    "last_p": (2, np.nan),
    "vel": (2, np.nan),
    "loitered": (1, 0),            # 1 once this visit raised its loitering alert
}


class ZoneTracker:
    """Visits, occupancy and alerts of one polygon zone.

    Args:
        zone: the zone's config (polygon, kind, enter_frames, exit_grace_s, alert thresholds, service time).
        staff: registry; tracks entering a ``staff`` zone are marked there, and events/occupancy use it.
        relink_max_gap_s: a visitor lost for at most this long (and within the grace) may be continued by a new
            track id that appears inside near its prediction (0 disables).
        relink_radius, relink_radius_per_s, max_speed: the prediction gate (see ``tracks.relink``).
        forget_s: state of tracks not in a visit and unseen for this long is dropped.
        max_tracks: cap on remembered tracks not in a visit.

    Example:
        >>> zone = ZoneTracker(ZoneConfig(name="phones", polygon=[(0, 0), (1, 0), (1, 1)], enter_frames=2,
        ...                               exit_grace_s=1.0))
        >>> for k in range(5):
        ...     _ = zone.update(0.2 * k, np.array([3]), np.array([[0.8, 0.2]]))
        >>> zone.occupancy
        1
        >>> [(e.type, e.enter_ts, e.exit_ts) for e in zone.update(2.0, np.array([], int), np.zeros((0, 2)))]
        [('zone_visit', 0.0, 0.8)]
    """

    def __init__(self, zone: ZoneConfig, *, staff: StaffRegistry | None = None, relink_max_gap_s: float = 2.0,
                 relink_radius: float = 0.06, relink_radius_per_s: float = 0.08, max_speed: float = 1.5,
                 forget_s: float = 10.0, max_tracks: int = 4096) -> None:
        self.zone = zone
        self.name = zone.name
        self.kind = zone.kind
        self.polygon = np.asarray(zone.polygon, dtype=np.float64).reshape(-1, 2)
        self._inside = PolygonTest(self.polygon)
        self.enter_frames = int(zone.enter_frames)
        self.exit_grace_s = float(zone.exit_grace_s)
        self.staff = staff if staff is not None else (StaffRegistry() if zone.kind == "staff" else None)
        self.relink_max_gap_s = float(relink_max_gap_s)
        self.relink_radius = float(relink_radius)
        self.relink_radius_per_s = float(relink_radius_per_s)
        self.max_speed = float(max_speed)
        self.forget_s = max(float(forget_s), self.exit_grace_s)
        self.max_tracks = int(max_tracks)
        self.relinks = 0
        self._streak_gap_s = max(self.exit_grace_s, 1.0)
        self._table = TrackTable(_COLUMNS)
        self._prune_every_s = min(1.0, self.forget_s / 4)
        self._next_prune = float("-inf")
        self._open = 0  # visits currently open (kept in step with the in_visit column)
        self._over_since: float | None = None
        self._crowd_alerted = False
        self._crowd_peak = 0

    # ----------------------------------------------------------------------------------------------- live state
    def visitors(self) -> np.ndarray:
        """(M,) ids of tracks currently in a visit (including those within the exit grace)."""
        table = self._table
        live = table.live()
        return table.ids[live[table["in_visit"][live] > 0]].copy()

    @property
    def occupancy(self) -> int:
        """People currently in a visit, staff included (used for crowding)."""
        return self._open

    @property
    def customer_occupancy(self) -> int:
        """People currently in a visit, staff excluded (used for aggregates and queues)."""
        if self.staff is None or self._open == 0 or len(self.staff) == 0:
            return self._open
        return int(np.count_nonzero(~self.staff.staff_mask(self.visitors())))

    @property
    def queue_length(self) -> int:
        """Customers in the zone (meaningful for ``queue`` zones)."""
        return self.customer_occupancy

    @property
    def queue_wait_s(self) -> float:
        """Estimated wait: queue length × service time per person."""
        return self.queue_length * float(self.zone.service_s_per_person)

    def contains(self, anchors: np.ndarray) -> np.ndarray:
        """(N, 2) anchors → (N,) bool inside the polygon."""
        return self._inside(anchors)

    # ------------------------------------------------------------------------------------------------- update
    def update(self, ts: float, track_ids: np.ndarray | Sequence[int], anchors: np.ndarray,
               velocities: np.ndarray | None = None) -> list[ZoneEvent]:
        """Feed one frame; return the events it produces (visits that ended, alerts), ordered by time.

        Args:
            ts: frame time (seconds; frames may be irregular; call with empty arrays on frames without people
                so visits of lost tracks end on time).
            track_ids: (N,) int.
            anchors: (N, 2) normalised floor anchors.
            velocities: optional (N, 2) per second (estimated when omitted; used to re-link id switches).
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
        events: list[ZoneEvent] = []
        if len(ids):
            events += self._observe(ts, ids, pts, vel_in)
        events += self._end_visits(ts, force=False)
        events += self._crowding(ts)
        events.sort(key=lambda e: e.ts)
        return events

    def flush(self, ts: float) -> list[ZoneEvent]:
        """End every open visit (end of a replay or shutdown) and clear an active crowding alert."""
        events = self._end_visits(float(ts), force=True)
        if self._crowd_alerted:
            events.append(self._crowd_cleared(float(ts)))
        self._over_since, self._crowd_alerted, self._crowd_peak = None, False, 0
        table = self._table
        table["streak"][table.live()] = 0
        events.sort(key=lambda e: e.ts)
        return events

    # -------------------------------------------------------------------------------------------- internals
    def _observe(self, ts: float, ids: np.ndarray, pts: np.ndarray, vel_in: np.ndarray | None) -> list[ZoneEvent]:
        table, c = self._table, self._table.col
        inside = self._inside(pts)
        slots = table.find(ids)
        if self.relink_max_gap_s > 0 and ((slots < 0) & inside).any():
            self._relink(ts, ids, pts, inside, slots)
        new = slots < 0
        if new.any():
            slots[new] = table.add(ids[new])

        S = table.state[slots]  # (N, C) this frame's tracks; written back below
        # A streak counts consecutive *detections*: misses keep it, an outside detection or a long absence
        # resets it.
        streak = np.where(ts - S[:, c["last_seen_ts"]] > self._streak_gap_s, 0, S[:, c["streak"]])
        S[:, c["streak_ts"]] = np.where(inside & (streak == 0), ts, S[:, c["streak_ts"]])
        streak = np.where(inside, streak + 1, 0)
        S[:, c["streak"]] = streak
        S[:, c["last_inside_ts"]] = np.where(inside, ts, S[:, c["last_inside_ts"]])
        if vel_in is None:
            vel_in = velocity_update(S[:, c["last_p"]], S[:, c["last_seen_ts"]], S[:, c["vel"]], pts, ts)
        S[:, c["vel"]] = np.where(np.isnan(vel_in), S[:, c["vel"]], vel_in)  # keep the estimate if none given
        S[:, c["last_p"]] = pts
        S[:, c["last_seen_ts"]] = ts
        in_visit = S[:, c["in_visit"]] > 0
        start = inside & ~in_visit & (streak >= self.enter_frames)
        if start.any():
            S[start, c["in_visit"]] = 1
            S[start, c["enter_ts"]] = S[start, c["streak_ts"]]
            S[start, c["loitered"]] = 0
            in_visit |= start
            self._open += int(np.count_nonzero(start))
            if self.kind == "staff" and self.staff is not None:
                for track_id in ids[start].tolist():
                    self.staff.mark(track_id, f"zone:{self.name}", ts)

        events: list[ZoneEvent] = []
        loiter_after = self.zone.loiter_after_s
        if loiter_after is not None:
            dwell = ts - S[:, c["enter_ts"]]
            loiter = inside & in_visit & (S[:, c["loitered"]] == 0) & (dwell > loiter_after)
            for row in np.flatnonzero(loiter).tolist():
                S[row, c["loitered"]] = 1
                events.append(ZoneEvent("zone_loitering", self.name, ts, track_id=int(ids[row]),
                                        enter_ts=float(S[row, c["enter_ts"]]), dwell_s=float(dwell[row]),
                                        staff=self._is_staff(int(ids[row]))))
        table.state[slots] = S
        return events

    def _end_visits(self, ts: float, *, force: bool) -> list[ZoneEvent]:
        table = self._table
        if self._open == 0:
            return []
        live = table.live()
        in_visit = live[table["in_visit"][live] > 0]
        last_in = table["last_inside_ts"][in_visit]
        done = in_visit if force else in_visit[(ts > last_in) & (ts - last_in >= self.exit_grace_s - _EPS)]
        events = []
        for slot in done.tolist():
            enter, exit_ = float(table["enter_ts"][slot]), float(table["last_inside_ts"][slot])
            track_id = int(table.ids[slot])
            events.append(ZoneEvent("zone_visit", self.name, exit_, track_id=track_id, enter_ts=enter,
                                    exit_ts=exit_, dwell_s=exit_ - enter, staff=self._is_staff(track_id)))
        table["in_visit"][done] = 0
        table["streak"][done] = 0
        self._open -= len(done)
        return events

    def _crowding(self, ts: float) -> list[ZoneEvent]:
        limit = self.zone.crowd_max
        if limit is None:
            return []
        occ = self.occupancy
        if occ > limit:
            if self._over_since is None:
                self._over_since, self._crowd_peak = ts, occ
            self._crowd_peak = max(self._crowd_peak, occ)
            if not self._crowd_alerted and ts - self._over_since >= self.zone.crowd_for_s - _EPS:
                self._crowd_alerted = True
                return [ZoneEvent("zone_crowding", self.name, ts, enter_ts=self._over_since, occupancy=occ)]
            return []
        events = [self._crowd_cleared(ts)] if self._crowd_alerted else []
        self._over_since, self._crowd_alerted, self._crowd_peak = None, False, 0
        return events

    def _crowd_cleared(self, ts: float) -> ZoneEvent:
        since = self._over_since if self._over_since is not None else ts
        return ZoneEvent("zone_crowding_cleared", self.name, ts, enter_ts=since, dwell_s=ts - since,
                         occupancy=self._crowd_peak)

    def _relink(self, ts: float, ids: np.ndarray, pts: np.ndarray, inside: np.ndarray, slots: np.ndarray) -> None:
        """New ids appearing inside continue open visits of tracks lost within the grace (in place)."""
        table = self._table
        lost = np.setdiff1d(table.live(), slots[slots >= 0])
        if len(lost) == 0:
            return
        gap = ts - table["last_seen_ts"][lost]
        ok = ((table["in_visit"][lost] > 0) & (gap > 0) & (gap <= self.relink_max_gap_s)
              & (ts - table["last_inside_ts"][lost] < self.exit_grace_s - _EPS))
        lost = lost[ok]
        new_rows = np.flatnonzero((slots < 0) & inside)
        ni, li = relink(pts[new_rows], table["last_p"][lost], table["vel"][lost], gap[ok],
                        radius=self.relink_radius, radius_per_s=self.relink_radius_per_s, max_speed=self.max_speed)
        if len(ni) == 0:
            return
        self.relinks += inherit_tracks(table, slots, ids, new_rows[ni], lost[li], self.staff, ts)

    def _is_staff(self, track_id: int) -> bool:
        return bool(self.staff is not None and self.staff.is_staff(track_id))

    def _prune(self, ts: float) -> None:
        self._next_prune = ts + self._prune_every_s
        table = self._table
        live = table.live()
        if len(live) == 0:
            return
        idle = table["in_visit"][live] == 0
        table.remove(live[idle & (ts - table["last_seen_ts"][live] > self.forget_s)])
        live = table.live()
        idle_slots = live[table["in_visit"][live] == 0]
        if len(idle_slots) > self.max_tracks:
            oldest = idle_slots[np.argsort(table["last_seen_ts"][idle_slots], kind="stable")]
            table.remove(oldest[: len(idle_slots) - self.max_tracks])
