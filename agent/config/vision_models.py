"""Schema of the people-analytics pipeline: per-camera lines, zones and detection settings; the ``[vision]``
and ``[models]`` sections. Coordinates are normalised to the image: (0, 0) top-left, (1, 1) bottom-right."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agent.config.base import DEVICE_NAME_PATTERN, Section, check_device_name, check_unique_names

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


class LineConfig(Section):
    """A counting line. IN is the direction of the start→end vector turned 90° clockwise as seen on the image
    (y grows downwards): a line drawn left→right counts people moving DOWN the image as IN."""

    name: str = Field(title="Line name", description="Unique per camera; used in events and aggregates.",
                      json_schema_extra={"pattern": DEVICE_NAME_PATTERN})
    start: Point = Field(title="Start point", description="Normalised (x, y) of the line's start.")
    end: Point = Field(title="End point", description="Normalised (x, y) of the line's end.")
    hysteresis: float = Field(default=0.03, ge=0.0, le=0.5, title="Hysteresis band",
                              description="Normalised distance a person's floor point must travel beyond the line, "
                              "on each side, before a side change counts; suppresses jitter on the line.")

    _check_name = field_validator("name")(check_device_name)

    @model_validator(mode="after")
    def _not_degenerate(self) -> LineConfig:
        if abs(self.start[0] - self.end[0]) + abs(self.start[1] - self.end[1]) < 1e-3:
            raise ValueError("line start and end must differ")
        return self


class ZoneConfig(Section):
    """A polygon whose visits are timed (dwell), counted (occupancy) and optionally alerted on."""

    name: str = Field(title="Zone name", description="Unique per camera; used in events and aggregates.",
                      json_schema_extra={"pattern": DEVICE_NAME_PATTERN})
    polygon: list[Point] = Field(title="Polygon", min_length=3,
                                 description="Normalised (x, y) vertices; a person is inside when the bottom-centre "
                                 "of their box (their floor position) is inside.")
    kind: Literal["dwell", "queue", "staff"] = Field(
        default="dwell", title="Zone kind",
        description="dwell: visits and dwell times; queue: also queue length and estimated wait; staff: people "
        "seen here are marked as staff and excluded from customer aggregates.")
    enter_frames: int = Field(default=3, ge=1, le=100, title="Frames to enter",
                              description="Consecutive detections inside before a visit starts.")
    exit_grace_s: float = Field(default=2.0, ge=0.0, le=600.0, title="Exit grace",
                                description="Seconds a person may be unseen or outside before the visit ends "
                                "(tolerates occlusion and detector misses).")
    loiter_after_s: float | None = Field(default=None, gt=0.0, title="Loitering alert",
                                         description="Alert when one visit lasts longer than this (seconds).")
    crowd_max: int | None = Field(default=None, ge=1, title="Crowding threshold",
                                  description="Alert when occupancy stays above this many people...")
    crowd_for_s: float = Field(default=30.0, ge=0.0, title="Crowding duration",
                               description="...for at least this many seconds.")
    service_s_per_person: float = Field(default=60.0, gt=0.0, title="Service time per person",
                                        description="Queue zones: mean seconds to serve one person, for the "
                                        "estimated wait (queue length × this).")

    _check_name = field_validator("name")(check_device_name)


class CameraAnalyticsConfig(Section):
    """Detection and analytics settings of one camera (the ``[cameras.analytics]`` table)."""

    detector: str = Field(default="yolox-nano", title="Detector model",
                          description="Person detector: a registry name (`store-agent models list`), or the path or "
                          "file name (in models.dir) of your own Ultralytics YOLO / YOLOX ONNX export.")
    detect_fps: float = Field(default=5.0, gt=0.0, le=60.0, title="Detection rate",
                              description="Frames per second sent to the detector; other frames are skipped.")
    score_threshold: float = Field(default=0.35, ge=0.0, le=1.0, title="Detection score threshold",
                                   description="Minimum person score.")
    min_box_height: float = Field(default=0.04, ge=0.0, le=1.0, title="Minimum box height",
                                  description="Normalised height below which detections are ignored.")
    motion_gate: bool = Field(default=True, title="Motion gating",
                              description="Skip inference on frames without motion (saves CPU on quiet cameras).")
    motion_threshold: float = Field(default=0.002, ge=0.0, le=1.0, title="Motion threshold",
                                    description="Fraction of changed pixels that counts as motion.")
    forced_detect_s: float = Field(default=2.0, gt=0.0, le=3600.0, title="Forced detection interval",
                                   description="Run the detector at least this often even without motion, so "
                                   "people standing still are not lost.")
    roi: list[list[Point]] = Field(default_factory=list, title="Regions of interest",
                                   description="Polygons where detections count; empty = whole image.")
    lines: list[LineConfig] = Field(default_factory=list, title="Counting lines", description="Footfall lines.")
    zones: list[ZoneConfig] = Field(default_factory=list, title="Zones", description="Dwell, queue and staff zones.")
    reconnect_max_s: float = Field(default=30.0, gt=0.0, title="Reconnect backoff cap",
                                   description="Longest wait between attempts to reopen a dropped stream.")
    debug_snapshots: bool = Field(default=False, title="Debug snapshots",
                                  description="Write annotated frames to disk, faces blurred. Off by default: "
                                  "no frame is written otherwise.")

    @field_validator("lines", "zones")
    @classmethod
    def _unique(cls, value: list, info) -> list:  # noqa: ANN001
        check_unique_names(value, info.field_name.rstrip("s"))
        return value


class VisionConfig(Section):
    """Settings shared by every camera pipeline (the ``[vision]`` table)."""

    aggregate_interval_s: float = Field(default=60.0, ge=1.0, le=3600.0, title="Aggregation interval",
                                        description="Length of the intervals aggregates are computed over.")
    heatmap_grid: tuple[Annotated[int, Field(ge=2, le=256)], Annotated[int, Field(ge=2, le=256)]] = Field(
        default=(32, 18), title="Heatmap grid", description="Columns × rows of the occupancy heatmap.")
    inference_threads: int = Field(default=2, ge=1, le=64, title="Inference threads",
                                   description="onnxruntime intra-op threads per model session.")


class ModelsConfig(Section):
    """Where models live and where offline installs come from (the ``[models]`` table)."""

    dir: Path = Field(default=Path("/var/lib/store-agent/models"), title="Model directory",
                      description="Installed, sha256-verified model files.")
    mirror: Path | None = Field(default=None, title="Mirror directory",
                                description="Local directory to install models from instead of their upstream "
                                "URLs (offline boxes); laid out like the registry's relative paths.")
