"""Schema of the store-and-forward MQTT sync: broker, TLS, outbox and stream priorities."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from agent.config.base import Section

#: Priority given to a stream that matches no prefix in ``stream_priorities``.
UNKNOWN_STREAM_PRIORITY = 5

#: Built-in stream priorities; entries from the config file are merged over these.
DEFAULT_STREAM_PRIORITIES: dict[str, int] = {
    "telemetry/aggregates": 0,
    "cmd-result": 0,
    "events/gap": 0,
    # Rare and acted on by people: a watchlist "possible match", a person's confirm/dismiss of it (the audit
    # trail) and a cold-chain alarm are never shed and go out before routine events.
    "events/watchlist_hit": 0,
    "events/watchlist_decision": 0,
    "events/esl_alarm": 0,
    "events": 1,
    # Bulky or derived: raw scale readings (the weighing is the record) and learned product embeddings (the
    # gallery keeps them on the box) are shed before the other events.
    "events/scale": 3,
    "events/product_learned": 3,
    "telemetry": 2,
    # Per-gateway label-state snapshots: each one supersedes the last.
    "telemetry/esl_gateway": 3,
}

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

Priority = Annotated[int, Field(ge=0, le=9)]


class BrokerAddress(NamedTuple):
    """Parsed ``mqtt://`` / ``mqtts://`` broker URL."""

    host: str
    port: int
    use_tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse and validate a broker URL such as ``mqtts://mqtt.example.com:8883``.

    Raises ``ValueError`` naming what is wrong. Credentials in the URL are refused
    (use ``username`` and ``password_file``).

    >>> parse_broker_url("mqtt://localhost")
    BrokerAddress(host='localhost', port=1883, use_tls=False)
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"invalid broker URL {url!r}: scheme must be mqtt:// or mqtts:// (mqtts = TLS)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "credentials must not be written in the broker URL; set sync.username and sync.password_file"
        )
    if not parts.hostname:
        raise ValueError(f"invalid broker URL {url!r}: a host is required, e.g. mqtts://mqtt.example.com:8883")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"invalid broker URL {url!r}: only scheme://host[:port] is allowed")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid broker URL {url!r}: port must be a number 1-65535") from exc
    if port == 0:
        raise ValueError(f"invalid broker URL {url!r}: port must be a number 1-65535")
    return BrokerAddress(parts.hostname, port or _DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts")


class TlsConfig(Section):
    """TLS settings for the broker connection (used with ``mqtts://``)."""

    ca_file: Path | None = Field(
        default=None,
        title="CA certificate file",
        description="PEM file of the CA that signed the broker certificate. Empty = system trust store.",
    )
    cert_file: Path | None = Field(
        default=None,
        title="Client certificate file",
        description="PEM client certificate for mutual TLS. Must be given together with key_file.",
    )
    key_file: Path | None = Field(
        default=None,
        title="Client private key file",
        description="PEM private key of the client certificate (mutual TLS). Must be given together "
        "with cert_file. Keep it readable only by the agent user.",
        validate_default=True,
    )
    insecure_skip_verify: bool = Field(
        default=False,
        title="Skip certificate verification",
        description="Do not verify the broker certificate or host name. For lab use only; never in a store.",
    )

    @field_validator("key_file")
    @classmethod
    def _cert_and_key_together(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "cert_file" not in info.data:  # cert_file itself is invalid; already reported
            return value
        cert = info.data["cert_file"]
        if cert is not None and value is None:
            raise ValueError("cert_file is set but key_file is not; mutual TLS needs both")
        if cert is None and value is not None:
            raise ValueError("key_file is set but cert_file is not; mutual TLS needs both")
        return value


class SyncConfig(Section):
    """Store-and-forward sync to the cloud over MQTT through the durable outbox."""

    enabled: bool = Field(
        default=True,
        title="Sync enabled",
        description="Connect to the broker and forward the outbox. When false, messages accumulate locally.",
    )
    broker: str = Field(
        default="mqtt://localhost:1883",
        title="Broker URL",
        description="mqtt://host[:port] or mqtts://host[:port] (TLS). Default ports: 1883 / 8883.",
    )
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        title="MQTT protocol version",
        description='MQTT protocol version: "5" or "3.1.1".',
    )
    client_id: str = Field(
        default="",
        title="MQTT client id",
        description="MQTT client identifier. Empty = store-agent-{store_id}.",
        max_length=128,
    )
    keepalive_s: int = Field(
        default=30,
        title="Keep-alive (s)",
        description="MQTT keep-alive interval in seconds.",
        ge=5,
        le=600,
    )
    username: str = Field(
        default="",
        title="Username",
        description="MQTT username. Empty = no username.",
        max_length=256,
    )
    password_file: Path | None = Field(
        default=None,
        title="Password file",
        description="File holding the MQTT password. A relative path is resolved against "
        "$CREDENTIALS_DIRECTORY (systemd LoadCredential=) when set.",
    )
    tls: TlsConfig = Field(
        default_factory=TlsConfig,
        title="TLS",
        description="TLS settings; only allowed with an mqtts:// broker.",
    )
    max_inflight: int = Field(
        default=20,
        title="Max in-flight messages",
        description="QoS 1 publishes awaiting PUBACK at any time.",
        ge=1,
        le=1000,
    )
    drain_rate_msgs_per_s: float = Field(
        default=2000,
        title="Outbox drain rate (msg/s)",
        description="Maximum publish rate when draining a backlog. 0 = unlimited.",
        ge=0,
    )
    reconnect_min_s: float = Field(
        default=0.5,
        title="Reconnect minimum delay (s)",
        description="First delay before reconnecting to the broker; doubles up to reconnect_max_s.",
        gt=0,
        le=3600,
    )
    reconnect_max_s: float = Field(
        default=30,
        title="Reconnect maximum delay (s)",
        description="Upper bound of the reconnect delay. Must be >= reconnect_min_s.",
        gt=0,
        le=3600,
    )
    require_cloud_ack: bool = Field(
        default=True,
        title="Require cloud acknowledgement",
        description="Keep a message in the outbox until the cloud acknowledges it (not just the broker's PUBACK).",
    )
    cloud_ack_timeout_s: float = Field(
        default=120,
        title="Cloud ack timeout (s)",
        description="Re-send a message if the cloud has not acknowledged it within this time.",
        gt=0,
    )
    historical_after_s: float = Field(
        default=60,
        title="Historical after (s)",
        description="A message published this long after its event_ts is flagged historical.",
        ge=0,
    )
    default_ttl_s: float = Field(
        default=7 * 86400,
        title="Default message TTL (s)",
        description="Messages older than this are dropped from the outbox. 0 = never expire.",
        ge=0,
    )
    outbox_max_mb: float = Field(
        default=512,
        title="Outbox size limit (MB)",
        description="Outbox disk budget; beyond it the lowest-priority streams are shed first.",
        gt=0,
    )
    outbox_max_messages: int = Field(
        default=2_000_000,
        title="Outbox message limit",
        description="Maximum messages kept in the outbox; beyond it low-priority streams are shed first.",
        gt=0,
    )
    stream_priorities: dict[str, Priority] = Field(
        default_factory=lambda: dict(DEFAULT_STREAM_PRIORITIES),
        title="Stream priorities",
        description="Stream name prefix -> priority 0-9 (0 = highest, never shed). Longest prefix wins; "
        f"unknown streams get {UNKNOWN_STREAM_PRIORITY}. Entries are merged over the built-in defaults.",
    )

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        parse_broker_url(value)
        return value.strip()

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("tls")
    @classmethod
    def _tls_needs_mqtts(cls, value: TlsConfig, info: ValidationInfo) -> TlsConfig:
        broker = info.data.get("broker")
        if broker is None or value == TlsConfig():
            return value
        if not parse_broker_url(broker).use_tls:
            raise ValueError("TLS settings are given but the broker URL is mqtt://; use mqtts:// for TLS")
        return value

    @field_validator("reconnect_max_s")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("reconnect_min_s")
        if low is not None and value < low:
            raise ValueError(f"reconnect_max_s ({value:g}) must be >= reconnect_min_s ({low:g})")
        return value

    @field_validator("stream_priorities", mode="before")
    @classmethod
    def _merge_default_priorities(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {**DEFAULT_STREAM_PRIORITIES, **value}
        return value

    @field_validator("stream_priorities")
    @classmethod
    def _check_prefixes(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k in value if not k or k != k.strip() or k.startswith("/") or k.endswith("/")]
        if bad:
            raise ValueError(f"stream prefixes must be non-empty without surrounding '/' or spaces: {bad!r}")
        return value

    @property
    def host(self) -> str:
        """Broker host name or address."""
        return parse_broker_url(self.broker).host

    @property
    def port(self) -> int:
        """Broker TCP port (1883 for mqtt://, 8883 for mqtts:// unless given)."""
        return parse_broker_url(self.broker).port

    @property
    def use_tls(self) -> bool:
        """True when the broker URL is ``mqtts://``."""
        return parse_broker_url(self.broker).use_tls

    def priority_for(self, stream: str) -> int:
        """Priority of ``stream`` by longest matching prefix (whole path segments).

        >>> SyncConfig().priority_for("events/gap/cam-1"), SyncConfig().priority_for("unknown")
        (0, 5)
        """
        best_len = -1
        best = UNKNOWN_STREAM_PRIORITY
        for prefix, priority in self.stream_priorities.items():
            if (stream == prefix or stream.startswith(prefix + "/")) and len(prefix) > best_len:
                best_len, best = len(prefix), priority
        return best
