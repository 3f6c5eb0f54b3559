"""One camera's analytics: lines, zones, staff, heatmap and interval aggregates behind one ``update`` call.

Pure composition (no threads, no I/O): the camera pipeline feeds tracker output per processed frame and
publishes what comes back (events → ``events/<type>``, aggregate bodies → ``telemetry/aggregates``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.analytics.aggregates import IntervalAggregator
from agent.analytics.geometry import as_points, bottom_centers
from agent.analytics.lines import Crossing, LineCounter
from agent.analytics.staff import StaffRegistry
from agent.analytics.tracks import TrackTable, velocity_update
from agent.analytics.zones import ZoneEvent, ZoneTracker
from agent.config.vision_models import CameraAnalyticsConfig, LineConfig, VisionConfig, ZoneConfig

Event = Crossing | ZoneEvent


class CameraAnalytics:
    """Counting, dwell, alerts, heatmap and aggregates of one camera.

    Args:
        camera: camera name.
        lines: counting lines.
        zones: zones (staff zones are evaluated first, so a staff mark applies to the same frame's events).
        interval_s: aggregation interval.
        grid: heatmap ``(cols, rows)``.
        staff: shared registry (default: a new one).
        lateness_s: how long after its end an interval is held open (default: the longest exit grace plus
            the re-link window plus 1 s, so visits and re-linked crossings land in their own interval).
        line_options: extra keyword arguments for every ``LineCounter``.
        zone_options: extra keyword arguments for every ``ZoneTracker``.

    Example:
        >>> cam = CameraAnalytics("door-cam", lines=[LineConfig(name="door", start=(0, 0.5), end=(1, 0.5))])
        >>> _ = cam.update(0.0, [1], boxes=np.array([[0.4, 0.1, 0.5, 0.4]]))
        >>> [e.direction for e in cam.update(0.2, [1], boxes=np.array([[0.4, 0.3, 0.5, 0.6]]))]
        ['in']
    """

    def __init__(self, camera: str, *, lines: Sequence[LineConfig] = (), zones: Sequence[ZoneConfig] = (),
                 interval_s: float = 60.0, grid: tuple[int, int] = (32, 18), staff: StaffRegistry | None = None,
                 lateness_s: float | None = None, line_options: dict[str, Any] | None = None,
                 zone_options: dict[str, Any] | None = None) -> None:
        self.camera = camera
        self.staff = staff if staff is not None else StaffRegistry()
        self.lines = [LineCounter(ln, staff=self.staff, **(line_options or {})) for ln in lines]
        ordered = sorted(zones, key=lambda z: z.kind != "staff")
        self.zones = [ZoneTracker(z, staff=self.staff, **(zone_options or {})) for z in ordered]
        if lateness_s is None:
            relink = max([c.relink_max_gap_s for c in self.lines] + [0.0])
            lateness_s = max([z.exit_grace_s for z in zones] + [0.0]) + relink + 1.0
        self.aggregator = IntervalAggregator(camera, interval_s, grid, lines=list(lines), zones=list(zones),
                                             staff=self.staff, lateness_s=lateness_s)
        self.frames = 0
        self._last_prune: float | None = None
        # One velocity estimate per track, shared by every line and zone (they use it to re-link id switches).
        self._motion = TrackTable({"last_ts": (1, np.nan), "last_p": (2, np.nan), "vel": (2, np.nan)})

    @classmethod
    def from_config(cls, camera: str, config: CameraAnalyticsConfig, vision: VisionConfig | None = None,
                    **kwargs: Any) -> CameraAnalytics:
        """Build from a camera's ``analytics`` section and the shared ``[vision]`` settings."""
        vision = vision or VisionConfig()
        return cls(camera, lines=config.lines, zones=config.zones, interval_s=vision.aggregate_interval_s,
                   grid=tuple(vision.heatmap_grid), **kwargs)

    def update(self, ts: float, track_ids: np.ndarray | Sequence[int], boxes: np.ndarray | None = None, *,
               anchors: np.ndarray | None = None, velocities: np.ndarray | None = None) -> list[Event]:
        """Feed one processed frame; return its events (crossings, visits that ended, alerts) by time.

        Args:
            ts: frame time (seconds).
            track_ids: (N,) int.
            boxes: (N, 4) normalised xyxy boxes (the anchor is their bottom-centre) — or give ``anchors``.
            anchors: (N, 2) normalised floor anchors.
            velocities: optional (N, 2) anchor velocities per second.
        """
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        if anchors is None:
            anchors = bottom_centers(boxes if boxes is not None else np.zeros((0, 4)))
        # A box cut off by the image border is clipped to exactly 1.0; point-in-polygon tests leave out points
        # on a polygon's bottom/right edge, so a zone drawn to the border would lose that person.
        pts = np.clip(as_points(anchors), 0.0, np.nextafter(1.0, 0.0))
        if len(set(ids.tolist())) != len(ids):
            _, first = np.unique(ids, return_index=True)
            first.sort()
            ids, pts = ids[first], pts[first]
            velocities = None if velocities is None else as_points(velocities)[first]
        if velocities is None:
            velocities = self._velocities(ts, ids, pts)
        events: list[Event] = []
        for zone in self.zones:
            if zone.kind == "staff":
                events += zone.update(ts, ids, pts, velocities)
        for line in self.lines:
            events += line.update(ts, ids, pts, velocities)
        for zone in self.zones:
            if zone.kind != "staff":
                events += zone.update(ts, ids, pts, velocities)
        self.aggregator.add_events(events)
        self.aggregator.add_frame(ts, pts, ids, occupancy={z.name: z.customer_occupancy for z in self.zones})
        self.frames += 1
        if self._last_prune is None or ts - self._last_prune > 60.0:
            self._prune(ts)
        events.sort(key=lambda e: e.ts)
        return events

    def _velocities(self, ts: float, ids: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """(N, 2) anchor velocities per second, from each track's previous anchor (NaN for new tracks)."""
        table, c = self._motion, self._motion.col
        slots = table.find(ids)
        new = slots < 0
        if new.any():
            slots[new] = table.add(ids[new])
        S = table.state[slots]
        S[:, c["vel"]] = velocity_update(S[:, c["last_p"]], S[:, c["last_ts"]], S[:, c["vel"]], pts, ts)
        S[:, c["last_p"]] = pts
        S[:, c["last_ts"]] = ts
        table.state[slots] = S
        return S[:, c["vel"]]

    def _prune(self, ts: float) -> None:
        self._last_prune = ts
        self.staff.prune(ts)
        live = self._motion.live()
        self._motion.remove(live[ts - self._motion["last_ts"][live] > 60.0])

    def live(self) -> dict[str, Any]:
        """Current counts and occupancy (for status displays)."""
        zones: dict[str, Any] = {}
        for z in self.zones:
            entry: dict[str, Any] = {"occupancy": z.occupancy, "customers": z.customer_occupancy}
            if z.kind == "queue":
                entry |= {"queue_length": z.queue_length, "queue_wait_s": z.queue_wait_s}
            zones[z.name] = entry
        return {"camera": self.camera, "frames": self.frames,
                "lines": {ln.name: {"in": ln.in_count, "out": ln.out_count} for ln in self.lines},
                "zones": zones}

    def due(self, now: float) -> bool:
        """An aggregate interval is ready (see ``IntervalAggregator.due``)."""
        return self.aggregator.due(now)

    def flush(self, now: float, *, final: bool = False) -> list[dict[str, Any]]:
        """Aggregate bodies of the closed intervals (see ``IntervalAggregator.flush``)."""
        return self.aggregator.flush(now, final=final)

    def finish(self, ts: float) -> tuple[list[Event], list[dict[str, Any]]]:
        """End of a stream: close every open visit and alert, then flush every interval.

        Returns:
            ``(events, bodies)``.
        """
        events: list[Event] = []
        for zone in self.zones:
            events += zone.flush(ts)
        self.aggregator.add_events(events)
        events.sort(key=lambda e: e.ts)
        return events, self.aggregator.flush(ts, final=True)


def summarize_events(events: Sequence[Event], lines: Sequence[str] = (), zones: Sequence[str] = (), *,
                     include_staff: bool = True) -> dict[str, Any]:
    """Totals of a run (the ``lines``/``zones`` part of ``store-agent replay --json``).

    Args:
        events: crossings and zone events of the run.
        lines, zones: names to list even when nothing happened there.
        include_staff: count events flagged ``staff`` too (ground truth usually counts everybody).

    Returns:
        ``{"lines": {name: {"in", "out"}}, "zones": {name: {"visits", "dwell_s": {"mean", "p50", "p90"}}}}``.

    Example:
        >>> summary = summarize_events([Crossing("door", "in", 1.0, 1, (0.5, 0.5), 1.0)], zones=["phones"])
        >>> summary["lines"], summary["zones"]["phones"]["visits"]
        ({'door': {'in': 1, 'out': 0}}, 0)
    """
    line_counts = {name: {"in": 0, "out": 0} for name in lines}
    dwell: dict[str, list[float]] = {name: [] for name in zones}
    for e in events:
        if e.staff and not include_staff:
            continue
        if isinstance(e, Crossing):
            line_counts.setdefault(e.line, {"in": 0, "out": 0})[e.direction] += 1
        elif e.type == "zone_visit":
            dwell.setdefault(e.zone, []).append(float(e.dwell_s or 0.0))
    zone_out: dict[str, Any] = {}
    for name, values in dwell.items():
        if values:
            p50, p90 = np.percentile(values, [50, 90])
            stats = {"mean": round(float(np.mean(values)), 3), "p50": round(float(p50), 3),
                     "p90": round(float(p90), 3)}
        else:
            stats = {"mean": 0.0, "p50": 0.0, "p90": 0.0}
        zone_out[name] = {"visits": len(values), "dwell_s": stats}
    return {"lines": line_counts, "zones": zone_out}
