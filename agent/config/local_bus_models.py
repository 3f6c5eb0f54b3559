"""Schema of the store's local MQTT bus (screens and staff devices on the store LAN)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from agent.config.base import Section
from agent.config.sync_models import parse_broker_url


class LocalBusConfig(Section):
    """Live, non-durable messages to devices in the store: scale candidates, staff alerts."""

    enabled: bool = Field(
        default=False,
        title="Enabled",
        description="Connect to the store's local MQTT broker. Off by default: nothing in the store listens yet.",
    )
    broker: str = Field(
        default="mqtt://127.0.0.1:1883",
        title="Local broker URL",
        description="mqtt://host[:port] of the broker on the store LAN (usually mosquitto on this box).",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        title="MQTT version",
        description="Protocol version spoken to the local broker: 5 or 3.1.1.",
    )
    topic_prefix: str = Field(
        default="",
        title="Topic prefix",
        description="Prefix of every local topic; empty means store/<store_id>/local.",
        max_length=200,
        pattern=r"^[^#+]*$",
    )
    max_queued: int = Field(
        default=1000,
        title="Queue while disconnected",
        description="Messages kept in memory while the local broker is unreachable; the oldest are dropped "
        "beyond this (local messages are live information, not records).",
        ge=0,
        le=100_000,
    )

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        if parse_broker_url(value).use_tls:
            raise ValueError("the local bus supports mqtt:// only (a broker on the store LAN or this box)")
        return value
