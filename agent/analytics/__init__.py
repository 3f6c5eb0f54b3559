"""People analytics on tracked floor anchors: footfall lines, zone dwell and occupancy, alerts, queues, staff
exclusion, heatmaps, interval aggregates and evaluation metrics. Pure logic: no threads, no I/O (except writing
a heatmap PNG when asked). Coordinates are normalised to the image: (0, 0) top-left, (1, 1) bottom-right."""

from agent.analytics.aggregates import PRIORITY as AGGREGATES_PRIORITY
from agent.analytics.aggregates import STREAM as AGGREGATES_STREAM
from agent.analytics.aggregates import IntervalAggregator
from agent.analytics.camera import CameraAnalytics, summarize_events
from agent.analytics.geometry import LineFrame, PolygonTest, bottom_centers, points_in_polygon
from agent.analytics.heatmap import Heatmap, render_overlay, render_png
from agent.analytics.lines import Crossing, LineCounter
from agent.analytics.metrics import CountScore, CrossingMatch, VisitMatch, match_crossings, match_visits
from agent.analytics.staff import StaffRegistry
from agent.analytics.zones import ZoneEvent, ZoneTracker

__all__ = [
    "AGGREGATES_PRIORITY",
    "AGGREGATES_STREAM",
    "CameraAnalytics",
    "CountScore",
    "Crossing",
    "CrossingMatch",
    "Heatmap",
    "IntervalAggregator",
    "LineCounter",
    "LineFrame",
    "PolygonTest",
    "StaffRegistry",
    "VisitMatch",
    "ZoneEvent",
    "ZoneTracker",
    "bottom_centers",
    "match_crossings",
    "match_visits",
    "points_in_polygon",
    "render_overlay",
    "render_png",
    "summarize_events",
]
