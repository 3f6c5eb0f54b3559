"""Settings of the sync client, independent of the agent's config classes (sync never imports agent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class TlsSettings:
    """TLS to the broker; ``cert_file``/``key_file`` enable mutual TLS (per-store certificate)."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False


@dataclass(slots=True)
class SyncSettings:
    """Everything the sync client needs; the agent builds it from its config."""

    host: str = "127.0.0.1"
    port: int = 1883
    protocol: str = "5"  # "5" or "3.1.1"
    client_id: str = ""
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = None
    tls: TlsSettings = field(default_factory=TlsSettings)
    max_inflight: int = 20
    drain_rate_msgs_per_s: float = 2000.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    require_cloud_ack: bool = True
    cloud_ack_timeout_s: float = 120.0
    historical_after_s: float = 60.0
    connect_timeout_s: float = 10.0
