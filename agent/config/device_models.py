"""Schema of the store's devices: cameras, scales and electronic shelf label gateways."""

from __future__ import annotations

from typing import Annotated, Literal, Optional
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from agent.config.base import DEVICE_NAME_PATTERN, Section, check_device_name
from agent.config.vision_models import CameraAnalyticsConfig

_NAME_DESCRIPTION = "Unique name, used in topics and logs. Lowercase letters a-z, digits 0-9, '-' and '_'."


class CameraConfig(Section):
    """One video source (RTSP/HTTP stream, V4L2 device or video file)."""

    name: str = Field(
        title="Camera name",
        description=_NAME_DESCRIPTION,
        json_schema_extra={"pattern": DEVICE_NAME_PATTERN},
    )
    url: str = Field(
        title="Stream URL",
        description="Where frames come from: rtsp://..., http(s)://..., /dev/videoN or a video file path.",
        min_length=1,
    )
    enabled: bool = Field(
        default=True,
        title="Enabled",
        description="Set to false to keep the camera configured but not open it.",
    )
    identification: bool = Field(
        default=False,
        title="Face identification",
        description="Run face identification on this camera. Off by default; enable only where it is lawful "
        "and the store has posted the required notice.",
    )
    analytics: CameraAnalyticsConfig = Field(
        default_factory=CameraAnalyticsConfig,
        title="People analytics",
        description="Detection rate, motion gating, counting lines and zones of this camera.",
    )

    _check_name = field_validator("name")(check_device_name)


class ScaleConfig(Section):
    """One weighing scale on a serial port."""

    name: str = Field(
        title="Scale name",
        description=_NAME_DESCRIPTION,
        json_schema_extra={"pattern": DEVICE_NAME_PATTERN},
    )
    port: str = Field(
        title="Serial port",
        description="Serial device of the scale, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...",
        min_length=1,
    )
    protocol: Literal["toledo8217", "mt-sics", "scp01"] = Field(
        title="Scale protocol",
        description="Wire protocol spoken by the scale: toledo8217 (Toledo 8217), mt-sics "
        "(Mettler-Toledo MT-SICS) or scp01 (NCI / Weigh-Tronix SCP-01, also CAS ECR type 2).",
    )
    baudrate: int = Field(
        default=9600,
        title="Baud rate",
        description="Serial line speed in bits per second.",
        ge=300,
        le=921_600,
    )
    bytesize: Optional[Literal[7, 8]] = Field(
        default=None,
        title="Data bits",
        description="Data bits per character; empty = the protocol's default (7 for toledo8217 and scp01, "
        "8 for mt-sics).",
    )
    parity: Optional[Literal["N", "E", "O"]] = Field(
        default=None,
        title="Parity",
        description="N (none), E (even) or O (odd); empty = the protocol's default (E for toledo8217 and "
        "scp01, N for mt-sics).",
    )
    stopbits: Optional[Literal[1, 2]] = Field(
        default=None,
        title="Stop bits",
        description="1 or 2; empty = the protocol's default (1).",
    )
    unit: Literal["kg", "lb", "g"] = Field(
        default="kg",
        title="Weight unit",
        description="Unit the scale is set to, used only by protocols whose frames carry none (toledo8217); "
        "weights are always reported in kg.",
    )
    enabled: bool = Field(
        default=True,
        title="Enabled",
        description="Set to false to keep the scale configured but not open its port.",
    )
    poll_interval_s: float = Field(
        default=0.1,
        title="Poll interval",
        description="Seconds between weight requests (ignored when continuous output is on).",
        ge=0.02,
        le=10.0,
    )
    continuous: bool = Field(
        default=False,
        title="Continuous output",
        description="Let the scale stream weights instead of polling it (mt-sics only: SIR).",
    )
    reply_timeout_s: float = Field(
        default=0.5,
        title="Reply timeout",
        description="Seconds to wait for an answer before counting a timeout; three in a row reopen the port.",
        ge=0.05,
        le=10.0,
    )
    stable_window_s: float = Field(
        default=0.5,
        title="Stability window",
        description="The weight must stay within the tolerance (and the scale report no motion) this long "
        "before it counts as stable.",
        ge=0.0,
        le=10.0,
    )
    stable_tolerance_kg: float = Field(
        default=0.002,
        title="Stability tolerance",
        description="Allowed swing (± kg) of the weight inside the stability window.",
        ge=0.0,
        le=1.0,
    )
    min_weight_kg: float = Field(
        default=0.010,
        title="Minimum weight",
        description="Below this (kg) the platter counts as empty: 'placed' fires above it, 'removed' below.",
        ge=0.0,
        le=100.0,
    )
    max_events_per_minute: int = Field(
        default=120,
        title="Event rate limit",
        description="At most this many scale events per minute go to the cloud (a faulty load cell cannot "
        "flood the outbox); listeners still see every event.",
        ge=1,
        le=6000,
    )
    camera: str = Field(
        default="",
        title="Tray camera",
        description="Name of the [[cameras]] entry above the tray used for product recognition (an unknown name "
        "is a config error); empty = none.",
    )
    tray_roi: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: [0.0, 0.0, 1.0, 1.0],
        title="Tray region",
        description="Where the tray is in the camera image, normalised [x1, y1, x2, y2] (0..1); default the "
        "full frame.",
        min_length=4,
        max_length=4,
    )

    _check_name = field_validator("name")(check_device_name)

    @field_validator("tray_roi")
    @classmethod
    def _check_roi(cls, value: list[float]) -> list[float]:
        x1, y1, x2, y2 = value
        if not (0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0):
            raise ValueError(f"tray_roi {value} must be [x1, y1, x2, y2] with 0 <= x1 < x2 <= 1 and "
                             "0 <= y1 < y2 <= 1")
        return value

    @model_validator(mode="after")
    def _check_continuous(self) -> "ScaleConfig":
        if self.continuous and self.protocol != "mt-sics":
            raise ValueError(f"continuous output needs protocol mt-sics; {self.protocol} is polled "
                             "(set continuous = false)")
        return self


class FridgeGroupConfig(Section):
    """A cooler monitored by the temperature sensors of the labels in it (labels join via ``esl.relink``)."""

    name: str = Field(title="Group name", description=_NAME_DESCRIPTION,
                      json_schema_extra={"pattern": DEVICE_NAME_PATTERN})
    max_c: float = Field(default=5.0, ge=-40, le=40, title="Alarm threshold",
                         description="Alarm when the group's median temperature is above this (°C).")
    alarm_after_min: float = Field(default=15.0, ge=0, le=1440, title="Alarm delay",
                                   description="...for at least this many minutes.")
    hysteresis_c: float = Field(default=1.0, ge=0, le=20, title="Hysteresis",
                                description="The alarm clears once the median is below threshold minus this.")

    _check_name = field_validator("name")(check_device_name)


class EslGatewayConfig(Section):
    """One electronic shelf label (ESL) access point / gateway."""

    name: str = Field(
        title="Gateway name",
        description=_NAME_DESCRIPTION,
        json_schema_extra={"pattern": DEVICE_NAME_PATTERN},
    )
    url: str = Field(
        title="Gateway URL",
        description="HTTP(S) base URL of the gateway, e.g. http://192.168.1.50",
    )
    backend: Literal["openepaperlink", "vendor-rest"] = Field(
        default="openepaperlink",
        title="Gateway backend",
        description="Gateway software: openepaperlink (OpenEPaperLink access point) or vendor-rest (a vendor-style "
        "ESL server with articles, links and asynchronous transactions; see docs/esl.md).",
    )
    checkin_interval_s: float = Field(
        default=40.0, gt=0, le=3600,
        title="Label check-in interval",
        description="How often labels wake and ask the gateway for data (OpenEPaperLink: about 40 s).",
    )
    retry_timeout_s: float = Field(
        default=120.0, gt=0, le=86_400,
        title="Re-push timeout",
        description="Re-push content a label has not confirmed this long after the gateway accepted it.",
    )
    confirm_by: Literal["hash", "updatecount"] = Field(
        default="hash",
        title="Delivery confirmation",
        description="hash: a label confirms content when it reports the hash of what was pushed; updatecount: "
        "when its update counter advances (for gateways whose reported hash the agent cannot predict; the "
        "status counter token_mismatch tells you).",
    )
    poll_interval_s: float = Field(
        default=30.0, gt=0, le=3600,
        title="Status poll interval",
        description="Read the gateway's whole label database this often (besides its live event stream).",
    )
    reevaluate_s: float = Field(
        default=60.0, gt=0, le=3600,
        title="Price re-evaluation interval",
        description="Re-evaluate every label's effective price this often (scheduled changes also switch at "
        "their exact time; this is the safety net).",
    )
    request_timeout_s: float = Field(
        default=5.0, gt=0, le=60,
        title="HTTP timeout",
        description="Timeout of one request to the gateway.",
    )
    push_workers: int = Field(
        default=4, ge=1, le=32,
        title="Parallel pushes",
        description="Requests to the gateway in flight at once while pushing content.",
    )
    default_label_type: str = Field(
        default="29bwr", min_length=1,
        title="Default label type",
        description="Label type of labels whose hardware type the gateway does not report or we do not know.",
    )
    battery_low_mv: int = Field(
        default=2600, ge=0, le=5000,
        title="Battery-low threshold",
        description="Raise a battery-low alert when a label reports less than this (millivolts).",
    )
    offline_after_s: float = Field(
        default=600.0, gt=0,
        title="Label offline after",
        description="Raise a label-offline alert when a label has not checked in for this long.",
    )
    fridge_groups: list[FridgeGroupConfig] = Field(
        default_factory=list,
        title="Fridge groups",
        description="Coolers whose labels report temperature: alarm thresholds per group.",
    )

    _check_name = field_validator("name")(check_device_name)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid gateway URL {value!r}: expected http://host[:port] or https://host[:port]")
        return value
