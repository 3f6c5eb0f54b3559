"""Schema of the store's devices: cameras, scales and electronic shelf label gateways."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

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
    backend: Literal["openepaperlink"] = Field(
        default="openepaperlink",
        title="Gateway backend",
        description="Gateway software; only OpenEPaperLink access points are supported.",
    )

    _check_name = field_validator("name")(check_device_name)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid gateway URL {value!r}: expected http://host[:port] or https://host[:port]")
        return value
