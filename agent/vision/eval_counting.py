"""``store-agent eval counting``: run a labelled video through the full pipeline (``replay``) and score its
footfall and dwell events against hand-made ground truth.

Ground truth files (``tests/data/ground_truth/<video-stem>.json``) name the video and its sha256, the counting
lines and zones in normalised coordinates (the same ``LineConfig`` / ``ZoneConfig`` fields as a camera's config),
every true crossing ``{line, direction, ts}`` and every true visit ``{zone, enter_ts, exit_ts}``. An optional
``analytics`` object overrides the camera's detection settings (e.g. ``detect_fps``) as a deployment would.

Scoring (``agent.analytics.metrics``): crossings are matched one-to-one per line and direction within ±1 s —
precision, recall and the *gross* error ``(missed + false) / true``; visits are matched per zone by temporal
IoU ≥ 0.5 — visits predicted vs true and the median / mean absolute dwell error of the matched pairs.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.analytics.metrics import CountScore, match_crossings, match_visits
from agent.config import CameraConfig
from agent.config.vision_models import CameraAnalyticsConfig, LineConfig, VisionConfig, ZoneConfig

#: Targets of the issue: counting gross error ≤ 2 %, dwell median absolute error ≤ 1 s.
TARGET_GROSS_ERROR = 0.02
TARGET_DWELL_MEDIAN_S = 1.0


@dataclass(frozen=True)
class GroundTruth:
    """A labelled video: where to count, and what truly happened there.

    Attributes:
        video: file name of the video the labels belong to.
        sha256: its sha256 (hex), checked before evaluating.
        lines, zones: the counting lines and zones (normalised coordinates).
        crossings: true crossings, mappings with ``line``, ``direction`` (``"in"``/``"out"``), ``ts`` (seconds).
        visits: true visits, mappings with ``zone``, ``enter_ts``, ``exit_ts`` (seconds).
        analytics: overrides of ``CameraAnalyticsConfig`` fields (deployment settings), may be empty.
        attribution: the licence attribution line of the video.
        frames: number of frames of the video.
    """

    video: str
    sha256: str
    lines: list[LineConfig]
    zones: list[ZoneConfig]
    crossings: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    analytics: dict[str, Any] = field(default_factory=dict)
    attribution: str = ""
    frames: int = 0


def _pick(data: Mapping[str, Any], model: type) -> dict[str, Any]:
    """The keys of ``data`` that are fields of the pydantic ``model`` (ground truth files carry extra notes)."""
    return {k: v for k, v in data.items() if k in model.model_fields}


def load_ground_truth(path: Path | str) -> GroundTruth:
    """Read and validate a ground-truth JSON file.

    Raises:
        ValueError: a crossing or visit names a line or zone the file does not define, a direction is not
            ``in``/``out``, or a visit ends before it starts (pydantic errors for bad lines/zones).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    lines = [LineConfig(**_pick(ln, LineConfig)) for ln in data.get("lines", [])]
    zones = [ZoneConfig(**_pick(z, ZoneConfig)) for z in data.get("zones", [])]
    line_names, zone_names = {ln.name for ln in lines}, {z.name for z in zones}
    crossings = [dict(c) for c in data.get("crossings", [])]
    visits = [dict(v) for v in data.get("visits", [])]
    for c in crossings:
        if c["line"] not in line_names or c["direction"] not in ("in", "out"):
            raise ValueError(f"{path}: bad crossing {c}: line must be one of {sorted(line_names)}, "
                             "direction 'in' or 'out'")
    for v in visits:
        if v["zone"] not in zone_names or float(v["exit_ts"]) < float(v["enter_ts"]):
            raise ValueError(f"{path}: bad visit {v}: zone must be one of {sorted(zone_names)}, exit ≥ enter")
    analytics = dict(data.get("analytics", {}))
    CameraAnalyticsConfig(**analytics)  # validate the overrides now, not in the middle of a run
    return GroundTruth(video=data["video"], sha256=str(data.get("sha256", "")).lower(), lines=lines, zones=zones,
                       crossings=crossings, visits=visits, analytics=analytics,
                       attribution=data.get("attribution", ""), frames=int(data.get("frames", 0)))


def ground_truth_camera(truth: GroundTruth, video: Path, *, detector: str | None = None,
                        analytics: Mapping[str, Any] | None = None) -> CameraConfig:
    """A camera config for ``replay``: default analytics settings, then the truth file's ``analytics``, then
    ``analytics`` (caller overrides), then ``detector``; lines and zones from the truth file."""
    settings = {**truth.analytics, **(analytics or {})}
    if detector:
        settings["detector"] = detector
    config = CameraAnalyticsConfig(**settings, lines=truth.lines, zones=truth.zones)
    return CameraConfig(name="eval", url=str(video), analytics=config)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Events of a ``replay --events`` JSON-lines file."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _finite(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def score_events(events: Sequence[Mapping[str, Any]], truth: GroundTruth, *, tol_s: float = 1.0,
                 min_overlap: float = 0.5) -> dict[str, Any]:
    """Score predicted events (``line_crossing`` and ``zone_visit`` dicts) against ``truth``.

    Returns:
        ``{"counting": {"overall", "by_direction", "by_line": {"LINE:in"|"LINE:out": score}},
        "dwell": {"overall", "by_zone": {ZONE: score}}, "visits": {ZONE: {"true", "pred"}},
        "targets": {...}}`` — every line and zone of the truth file is listed, even without events.

    Example:
        >>> gt = GroundTruth("v.gif", "", [LineConfig(name="door", start=(0, 0.5), end=(1, 0.5))],
        ...                  [ZoneConfig(name="till", polygon=[(0, 0), (1, 0), (1, 1)])],
        ...                  [{"line": "door", "direction": "in", "ts": 2.0}],
        ...                  [{"zone": "till", "enter_ts": 1.0, "exit_ts": 5.0}])
        >>> s = score_events([{"type": "line_crossing", "line": "door", "direction": "in", "ts": 2.4},
        ...                   {"type": "zone_visit", "zone": "till", "enter_ts": 1.2, "exit_ts": 5.0}], gt)
        >>> s["counting"]["overall"]["gross_error"], s["dwell"]["overall"]["median_abs_error_s"]
        (0.0, 0.2)
    """
    crossings = [e for e in events if e.get("type") == "line_crossing"]
    visits = [e for e in events if e.get("type") == "zone_visit"]
    match = match_crossings(crossings, truth.crossings, tol_s=tol_s)
    counting = match.as_dict()
    empty = CountScore(0, 0, 0)
    counting["by_line"] = {f"{ln.name}:{d}": match.by_line.get((ln.name, d), empty).as_dict()
                           for ln in truth.lines for d in ("in", "out")}
    by_zone = {}
    counts = {}
    for z in truth.zones:
        pred_z = [v for v in visits if v.get("zone") == z.name]
        true_z = [v for v in truth.visits if v["zone"] == z.name]
        by_zone[z.name] = match_visits(pred_z, true_z, min_overlap=min_overlap).as_dict()
        counts[z.name] = {"true": len(true_z), "pred": len(pred_z)}
    overall_visits = match_visits(visits, truth.visits, min_overlap=min_overlap)
    gross = match.overall.gross_error
    median = overall_visits.median_abs_error_s
    visits_equal = all(c["true"] == c["pred"] for c in counts.values())
    targets = {
        "counting_gross_error": _finite(gross), "counting_gross_error_max": TARGET_GROSS_ERROR,
        "dwell_median_abs_error_s": _finite(median), "dwell_median_abs_error_max_s": TARGET_DWELL_MEDIAN_S,
        "visit_counts_equal": visits_equal,
        "met": bool(gross <= TARGET_GROSS_ERROR and (math.isnan(median) or median <= TARGET_DWELL_MEDIAN_S)
                    and visits_equal and overall_visits.matched == overall_visits.true),
    }
    return {"counting": counting, "dwell": {"overall": overall_visits.as_dict(), "by_zone": by_zone},
            "visits": counts, "targets": targets}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def evaluate_counting(video: Path | str, ground_truth_json: Path | str, *, model_dir: Path | str,
                      detector: str | None = None, threads: int = 2, vision: VisionConfig | None = None,
                      analytics: Mapping[str, Any] | None = None, tol_s: float = 1.0, min_overlap: float = 0.5,
                      check_sha256: bool = True) -> dict[str, Any]:
    """Replay ``video`` through the full pipeline with the truth file's lines and zones and score the events.

    Args:
        video: the labelled video (or frame directory) the truth file describes.
        ground_truth_json: the truth file.
        model_dir: installed models (install from a mirror first: ``models.registry.install``).
        detector: detector name or ``.onnx`` path (default: the camera default, ``yolox-nano``).
        threads: inference threads.
        vision: shared ``[vision]`` settings (default: defaults).
        analytics: extra ``CameraAnalyticsConfig`` overrides (applied after the truth file's own).
        tol_s: crossing time tolerance; min_overlap: visit temporal IoU for a match.
        check_sha256: refuse a video file whose sha256 is not the one the labels were made on.

    Returns:
        ``{"video", "truth", "detector", "frames", "fps", "tracks", "inferences", "summary" (the ``replay --json``
        lines/zones), "counting", "dwell", "visits", "targets", "events": {"crossings": [...], "visits": [...]}}``.

    Raises:
        ValueError: the video's sha256 differs from the truth file's.
    """
    from agent.vision.replay import replay

    video, truth_path = Path(video), Path(ground_truth_json)
    truth = load_ground_truth(truth_path)
    if check_sha256 and video.is_file() and truth.sha256:
        actual = sha256_of(video)
        if actual != truth.sha256:
            raise ValueError(f"{video} has sha256 {actual}, but {truth_path.name} labels {truth.video} with "
                             f"sha256 {truth.sha256}")
    camera = ground_truth_camera(truth, video, detector=detector, analytics=analytics)
    with tempfile.TemporaryDirectory(prefix="eval-counting-") as tmp:
        events_path = Path(tmp) / "events.jsonl"
        summary = replay(video, camera, vision or VisionConfig(), Path(model_dir), threads=threads,
                         events_out=events_path)
        events = read_events(events_path)
    scores = score_events(events, truth, tol_s=tol_s, min_overlap=min_overlap)
    keep_c = ("line", "direction", "ts", "track_id")
    keep_v = ("zone", "enter_ts", "exit_ts", "dwell_s", "track_id")
    return {
        "video": video.name, "truth": truth_path.name, "detector": camera.analytics.detector,
        "frames": summary["frames"], "fps": summary["fps"], "tracks": summary["tracks"],
        "inferences": summary.get("inferences"),
        "summary": {"lines": summary["lines"], "zones": summary["zones"]},
        **scores,
        "events": {
            "crossings": [{k: e[k] for k in keep_c if k in e} for e in events if e.get("type") == "line_crossing"],
            "visits": [{k: e[k] for k in keep_v if k in e} for e in events if e.get("type") == "zone_visit"],
        },
    }
