"""Per-camera interval aggregates for the ``telemetry/aggregates`` stream (priority 0).

Intervals are aligned to multiples of ``interval_s`` of the timestamps (wall-clock epoch seconds on a live
camera: a 60 s interval starts on the minute). Every interval gets a body, even with nobody in it, so the cloud
tells "nobody came" (a body with zeros and ``coverage_s`` > 0) from "no data" (no body, or ``coverage_s`` = 0).

Time-weighted figures (occupancy mean, queue means, heatmap) weight each frame by the time since the previous
frame (a span split between intervals when it straddles a boundary; after a gap longer than ``max_gap_s``, or
for the first frame, ``frame_dt_s`` within the frame's own interval), so irregular frame intervals and
motion-gated frames do not bias them. Crossings belong to the interval of their crossing time,
visits to the interval in which they *ended* (exit time). Staff are excluded from the customer figures and
counted apart; staff status is re-checked at flush time, so a person marked staff later in the interval is
excluded from its earlier crossings too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.analytics.heatmap import Heatmap
from agent.analytics.lines import Crossing
from agent.analytics.staff import StaffRegistry
from agent.analytics.zones import ZoneEvent
from agent.config.vision_models import LineConfig, ZoneConfig

log = logging.getLogger(__name__)

#: Outbox stream and priority of the bodies.
STREAM = "telemetry/aggregates"
PRIORITY = 0
SCHEMA = "aggregates/1"


@dataclass
class _ZoneAcc:
    occ_area: float = 0.0  # ∫ occupancy dt
    occ_time: float = 0.0
    occ_max: int = 0
    q_area: float = 0.0
    q_time: float = 0.0
    q_max: int = 0
    wait_area: float = 0.0
    visits: list[tuple[int | None, float, bool]] = field(default_factory=list)  # (track_id, dwell_s, staff)


@dataclass
class _Bucket:
    index: int  # interval number: start = index × interval_s
    grid: tuple[int, int]
    coverage_s: float = 0.0
    frames: int = 0
    late: int = 0
    crossings: list[tuple[str, str, int, bool]] = field(default_factory=list)  # (line, dir, track, staff)
    zones: dict[str, _ZoneAcc] = field(default_factory=dict)
    heatmap: Heatmap | None = None

    def zone(self, name: str) -> _ZoneAcc:
        acc = self.zones.get(name)
        if acc is None:
            acc = self.zones[name] = _ZoneAcc()
        return acc

    def heat(self) -> Heatmap:
        if self.heatmap is None:
            self.heatmap = Heatmap(self.grid)
        return self.heatmap


class IntervalAggregator:
    """Accumulates one camera's analytics per interval and produces the aggregate bodies.

    Args:
        camera: camera name (in every body).
        interval_s: interval length (``vision.aggregate_interval_s``).
        grid: heatmap ``(cols, rows)`` (``vision.heatmap_grid``).
        lines: line configs or names (listed in every body, zeros when nobody crossed).
        zones: zone configs or names (queue figures for ``queue`` zones; names alone mean dwell zones).
        staff: registry to re-check staff status at flush time.
        lateness_s: an interval is closed only this long after its end, so visits that end in it but are
            emitted after the exit grace still land in it (use ≥ the longest ``exit_grace_s``).
        max_gap_s: longest time one frame may stand for (longer gaps are treated as missing data).
        frame_dt_s: time a frame stands for after a gap or as the first frame.
        start_ts: first interval is the one containing this time (default: first data or first flush).
        max_backfill: at most this many empty intervals are produced after a long silence (clock jumps).

    Example:
        >>> agg = IntervalAggregator("cam1", 60.0, (4, 2), lines=["door"])
        >>> agg.add_frame(10.0, np.array([[0.5, 0.5]]), occupancy={})
        >>> agg.due(59.0), agg.due(60.0)
        (False, True)
        >>> [b["interval_start"] for b in agg.flush(130.0)]
        [0.0, 60.0]
    """

    def __init__(self, camera: str, interval_s: float = 60.0, grid: tuple[int, int] = (32, 18), *,
                 lines: Sequence[LineConfig | str] = (), zones: Sequence[ZoneConfig | str] = (),
                 staff: StaffRegistry | None = None, lateness_s: float = 0.0, max_gap_s: float = 2.0,
                 frame_dt_s: float = 0.2, start_ts: float | None = None, max_backfill: int = 1440) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.camera = camera
        self.interval_s = float(interval_s)
        self.grid = (int(grid[0]), int(grid[1]))
        self.line_names = [ln if isinstance(ln, str) else ln.name for ln in lines]
        self.zone_kinds: dict[str, str] = {}
        self.service_s: dict[str, float] = {}
        for z in zones:
            if isinstance(z, str):
                self.zone_kinds[z] = "dwell"
            else:
                self.zone_kinds[z.name] = z.kind
                self.service_s[z.name] = float(z.service_s_per_person)
        self.staff = staff
        self.lateness_s = float(lateness_s)
        self.max_gap_s = float(max_gap_s)
        self.frame_dt_s = float(frame_dt_s)
        self.max_backfill = int(max_backfill)
        self._buckets: dict[int, _Bucket] = {}
        self._next: int | None = None if start_ts is None else self._index(start_ts)
        self._prev_ts: float | None = None

    # ------------------------------------------------------------------------------------------- feeding
    def add_frame(self, ts: float, anchors: np.ndarray | None = None, track_ids: np.ndarray | None = None,
                  occupancy: Mapping[str, int] | None = None,
                  queues: Mapping[str, int] | None = None) -> None:
        """Account one processed frame.

        Args:
            ts: frame time.
            anchors: (N, 2) floor anchors for the heatmap.
            track_ids: (N,) their track ids (anchors of staff tracks are left out of the heatmap).
            occupancy: customer occupancy per zone at this frame.
            queues: queue length per queue zone (default: the zone's customer occupancy).
        """
        ts = float(ts)
        gap = None if self._prev_ts is None else ts - self._prev_ts
        if gap is not None and gap < 0:
            dt = 0.0  # time went backwards: count the frame, give it no weight
        elif gap is not None and gap <= self.max_gap_s:
            dt = gap
            self._prev_ts = ts
        else:  # first frame, or after a gap: it stands for frame_dt_s, within its own interval
            dt = min(self.frame_dt_s, ts - self._index(ts) * self.interval_s)
            self._prev_ts = ts
        self._ensure_started(ts)
        pts = None
        if anchors is not None and len(anchors):
            pts = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
            if track_ids is not None and self.staff is not None and len(self.staff):
                pts = pts[~self.staff.staff_mask(np.asarray(track_ids).reshape(-1))]
        occupancy = dict(occupancy or {})
        if queues is None:
            queues = {z: n for z, n in occupancy.items() if self.zone_kinds.get(z) == "queue"}
        self._bucket(self._index(ts)).frames += 1
        for bucket, seconds in self._spread(ts - dt, ts):
            bucket.coverage_s += seconds
            if pts is not None and len(pts):
                bucket.heat().add(pts, seconds)
            for name, n in occupancy.items():
                acc = bucket.zone(name)
                acc.occ_area += n * seconds
                acc.occ_time += seconds
                acc.occ_max = max(acc.occ_max, int(n))
            for name, n in queues.items():
                acc = bucket.zone(name)
                acc.q_area += n * seconds
                acc.q_time += seconds
                acc.q_max = max(acc.q_max, int(n))
                acc.wait_area += n * self.service_s.get(name, 0.0) * seconds

    def add_crossings(self, crossings: Iterable[Crossing]) -> None:
        """Count crossings in the interval of their crossing time."""
        for c in crossings:
            bucket = self._event_bucket(c.ts)
            bucket.crossings.append((c.line, c.direction, int(c.track_id), bool(c.staff)))

    def add_zone_events(self, events: Iterable[ZoneEvent]) -> None:
        """Count ``zone_visit`` events in the interval of their exit time (alerts are not aggregated)."""
        for e in events:
            if e.type != "zone_visit":
                continue
            bucket = self._event_bucket(e.exit_ts if e.exit_ts is not None else e.ts)
            bucket.zone(e.zone).visits.append((e.track_id, float(e.dwell_s or 0.0), bool(e.staff)))

    def add_events(self, events: Iterable[Crossing | ZoneEvent]) -> None:
        """Dispatch a mixed list of crossings and zone events."""
        events = list(events)
        self.add_crossings(e for e in events if isinstance(e, Crossing))
        self.add_zone_events(e for e in events if isinstance(e, ZoneEvent))

    # ------------------------------------------------------------------------------------------- output
    def due(self, now: float) -> bool:
        """True when at least one interval is closed (ended ``lateness_s`` or more before ``now``)."""
        return self._next is not None and (self._next + 1) * self.interval_s + self.lateness_s <= now

    def flush(self, now: float, *, final: bool = False) -> list[dict[str, Any]]:
        """Bodies of the closed intervals, oldest first (``final``: also the open ones, e.g. end of a replay).

        Empty intervals between the last flushed one and ``now`` produce bodies with zeros.
        """
        if self._next is None:
            self._next = self._index(now)
            if not final:
                return []
        last = math.floor((now - self.lateness_s) / self.interval_s) - 1  # last closed interval
        if final:
            last = max([last, self._index(now), *self._buckets])
        if last < self._next:
            return []
        first = self._next
        if last - first + 1 > self.max_backfill:
            skip_to = last - self.max_backfill + 1
            kept = [k for k in self._buckets if first <= k < skip_to]
            log.warning("aggregates: %d empty intervals skipped after a long gap", skip_to - first - len(kept))
            indices = sorted(kept) + list(range(skip_to, last + 1))
        else:
            indices = list(range(first, last + 1))
        bodies = [self._body(self._buckets.pop(k, None) or _Bucket(k, self.grid)) for k in indices]
        self._next = last + 1
        return bodies

    # ----------------------------------------------------------------------------------------- internals
    def _index(self, ts: float) -> int:
        return math.floor(float(ts) / self.interval_s)

    def _ensure_started(self, ts: float) -> None:
        if self._next is None:
            self._next = self._index(ts)

    def _bucket(self, index: int) -> _Bucket:
        index = max(index, self._next if self._next is not None else index)
        bucket = self._buckets.get(index)
        if bucket is None:
            bucket = self._buckets[index] = _Bucket(index, self.grid)
        return bucket

    def _event_bucket(self, ts: float) -> _Bucket:
        """Bucket of an event; an event for an interval already flushed goes to the oldest open one."""
        self._ensure_started(ts)
        index = self._index(ts)
        bucket = self._bucket(index)
        if self._next is not None and index < self._next:
            bucket.late += 1
        return bucket

    def _spread(self, a: float, b: float) -> list[tuple[_Bucket, float]]:
        """Split the time span [a, b] over the open intervals it overlaps."""
        if self._next is not None:
            a = max(a, self._next * self.interval_s)
        if b <= a:
            return [(self._bucket(self._index(b)), 0.0)]
        out = []
        k = self._index(a)
        while k * self.interval_s < b:
            lo, hi = max(a, k * self.interval_s), min(b, (k + 1) * self.interval_s)
            if hi > lo:
                out.append((self._bucket(k), hi - lo))
            k += 1
        return out

    def _body(self, bucket: _Bucket) -> dict[str, Any]:
        staff = self.staff
        lines = {name: {"in": 0, "out": 0} for name in self.line_names}
        staff_lines: dict[str, dict[str, int]] = {name: {"in": 0, "out": 0} for name in self.line_names}
        for line, direction, track_id, flagged in bucket.crossings:
            is_staff = flagged or (staff is not None and staff.is_staff(track_id))
            target = staff_lines if is_staff else lines
            target.setdefault(line, {"in": 0, "out": 0})[direction] += 1
            lines.setdefault(line, {"in": 0, "out": 0})
            staff_lines.setdefault(line, {"in": 0, "out": 0})
        zones: dict[str, Any] = {}
        staff_zones: dict[str, dict[str, int]] = {}
        for name in [*self.zone_kinds, *[z for z in bucket.zones if z not in self.zone_kinds]]:
            acc = bucket.zones.get(name, _ZoneAcc())
            dwell = [d for tid, d, flagged in acc.visits
                     if not (flagged or (staff is not None and tid is not None and staff.is_staff(tid)))]
            staff_zones[name] = {"visits": len(acc.visits) - len(dwell)}
            body = {
                "occupancy_mean": _r(acc.occ_area / acc.occ_time) if acc.occ_time > 0 else 0.0,
                "occupancy_max": acc.occ_max,
                "visits": len(dwell),
                "dwell_s": _dwell_stats(dwell),
            }
            if self.zone_kinds.get(name) == "queue":
                body["queue"] = {
                    "length_mean": _r(acc.q_area / acc.q_time) if acc.q_time > 0 else 0.0,
                    "length_max": acc.q_max,
                    "wait_s_mean": _r(acc.wait_area / acc.q_time) if acc.q_time > 0 else 0.0,
                }
            zones[name] = body
        heat = bucket.heatmap.grid() if bucket.heatmap is not None else np.zeros(self.grid[::-1])
        return {
            "camera": self.camera,
            "interval_start": bucket.index * self.interval_s,
            "interval_s": self.interval_s,
            "coverage_s": _r(bucket.coverage_s),
            "frames": bucket.frames,
            "lines": lines,
            "zones": zones,
            "heatmap": {"cols": self.grid[0], "rows": self.grid[1], "unit": "ms",
                        "counts": np.rint(heat * 1000.0).astype(np.int64).ravel().tolist()},
            "staff_excluded": {"lines": staff_lines, "zones": staff_zones},
            "late": bucket.late,
        }


def _r(x: float) -> float:
    return round(float(x), 3)


def _dwell_stats(dwell: list[float]) -> dict[str, Any]:
    if not dwell:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0}
    arr = np.asarray(dwell, dtype=np.float64)
    p50, p90 = np.percentile(arr, [50, 90])
    return {"count": len(dwell), "mean": _r(arr.mean()), "p50": _r(p50), "p90": _r(p90)}
