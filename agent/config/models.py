"""The agent's configuration schema (``AgentConfig`` and its sections).

Every field carries a title, a description, bounds and a safe default: the
schema is the documentation (``store-agent config schema`` prints it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agent.config.base import Section, check_unique_names
from agent.config.commands_models import CommandsConfig
from agent.config.device_models import CameraConfig, EslGatewayConfig, ScaleConfig
from agent.config.products_models import ProductsConfig
from agent.config.vision_models import ModelsConfig, VisionConfig
from agent.config.env_source import env_source_for
from agent.config.identity_models import IdentityConfig
from agent.config.local_bus_models import LocalBusConfig
from agent.config.sync_models import SyncConfig, TlsConfig

__all__ = [
    "AgentConfig",
    "CameraConfig",
    "CommandsConfig",
    "EslGatewayConfig",
    "HealthConfig",
    "ScaleConfig",
    "SupervisorConfig",
    "SyncConfig",
    "TlsConfig",
]

STORE_ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62})$"
_STORE_ID_RE = re.compile(STORE_ID_PATTERN)

#: File name of the SQLite database inside ``data_dir``.
DB_FILENAME = "agent.db"


class SupervisorConfig(Section):
    """How the daemon restarts failing components."""

    backoff_initial_s: float = Field(
        default=1.0,
        title="Initial restart delay (s)",
        description="Delay before the first restart of a crashed component; doubles on each failure.",
        gt=0,
    )
    backoff_max_s: float = Field(
        default=60,
        title="Maximum restart delay (s)",
        description="Upper bound of the restart delay. Must be >= backoff_initial_s.",
        gt=0,
    )
    max_failures: int = Field(
        default=5,
        title="Max failures",
        description="Failures within failure_window_s before a component is marked failed and not restarted.",
        ge=1,
    )
    failure_window_s: float = Field(
        default=300,
        title="Failure window (s)",
        description="Sliding window in which failures are counted against max_failures.",
        gt=0,
    )
    stop_timeout_s: float = Field(
        default=8,
        title="Stop timeout (s)",
        description="Time a component gets to stop cleanly on shutdown (kept under systemd's 10 s budget).",
        gt=0,
        le=10,
    )

    @field_validator("backoff_max_s")
    @classmethod
    def _max_not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("backoff_initial_s")
        if low is not None and value < low:
            raise ValueError(f"backoff_max_s ({value:g}) must be >= backoff_initial_s ({low:g})")
        return value


class HealthConfig(Section):
    """Health telemetry published by the agent."""

    interval_s: float = Field(
        default=10,
        title="Health interval (s)",
        description="How often health telemetry is published.",
        gt=0,
    )
    disk_min_free_mb: float = Field(
        default=500,
        title="Minimum free disk (MB)",
        description="Report the agent unhealthy when data_dir's file system has less free space than this.",
        ge=0,
    )


class AgentConfig(BaseSettings):
    """Complete configuration of one store's edge agent.

    Sources, lowest to highest precedence: defaults, the TOML file, a cloud
    ``config.update`` overlay, ``STORE_AGENT__*`` environment variables.
    """

    model_config = SettingsConfigDict(env_prefix="STORE_AGENT__", env_nested_delimiter="__", extra="forbid")

    store_id: str = Field(
        default="demo-store",
        title="Store id",
        description="Identifier of this store in topics and the cloud: 1-63 characters from lowercase "
        "letters a-z, digits 0-9 and '-', starting with a letter or digit.",
        json_schema_extra={"pattern": STORE_ID_PATTERN},
    )
    data_dir: Path = Field(
        default=Path("/var/lib/store-agent"),
        title="Data directory",
        description=f"Directory of the SQLite database ({DB_FILENAME}) and the control socket.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        title="Log level",
        description="Minimum level of log records: DEBUG, INFO, WARNING or ERROR.",
    )
    sync: SyncConfig = Field(
        default_factory=SyncConfig,
        title="Cloud sync",
        description="MQTT connection to the cloud and the durable outbox.",
    )
    commands: CommandsConfig = Field(
        default_factory=CommandsConfig,
        title="Cloud commands",
        description="Keys and limits for signed commands from the cloud.",
    )
    supervisor: SupervisorConfig = Field(
        default_factory=SupervisorConfig,
        title="Supervisor",
        description="Restart policy of the agent's components.",
    )
    health: HealthConfig = Field(
        default_factory=HealthConfig,
        title="Health",
        description="Health telemetry settings.",
    )
    cameras: list[CameraConfig] = Field(
        default_factory=list,
        title="Cameras",
        description="Video sources, one [[cameras]] table each.",
    )
    scales: list[ScaleConfig] = Field(
        default_factory=list,
        title="Scales",
        description="Serial weighing scales, one [[scales]] table each.",
    )
    esl_gateways: list[EslGatewayConfig] = Field(
        default_factory=list,
        title="ESL gateways",
        description="Electronic shelf label gateways, one [[esl_gateways]] table each.",
    )
    vision: VisionConfig = Field(
        default_factory=VisionConfig,
        title="People analytics",
        description="Settings shared by every camera pipeline: aggregation interval, heatmap grid, threads.",
    )
    models: ModelsConfig = Field(
        default_factory=ModelsConfig,
        title="Models",
        description="Model directory and offline mirror.",
    )
    products: ProductsConfig = Field(
        default_factory=ProductsConfig,
        title="Product recognition",
        description="Top-k product candidates at self-service scales from a camera above the tray; learning "
        "from confirmations.",
    )
    identity: IdentityConfig = Field(
        default_factory=IdentityConfig,
        title="Face identification",
        description="Face pipeline, galleries, visits, retention and alerts; runs only on cameras with "
        "identification = true.",
    )
    local_bus: LocalBusConfig = Field(
        default_factory=LocalBusConfig,
        title="Local bus",
        description="The store's local MQTT broker for live messages to screens and staff devices.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first (highest precedence), then init kwargs; no .env or secrets dir."""
        return env_source_for(settings_cls, env_settings), init_settings

    @field_validator("store_id")
    @classmethod
    def _check_store_id(cls, value: str) -> str:
        if not _STORE_ID_RE.fullmatch(value):
            raise ValueError(
                f"invalid store_id {value!r}: only lowercase letters a-z, digits 0-9 and '-' are allowed "
                "(1-63 characters, not starting with '-')"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cameras", "scales", "esl_gateways")
    @classmethod
    def _unique_device_names(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        check_unique_names(value, str(info.field_name))
        return value

    @field_validator("scales")
    @classmethod
    def _scale_cameras_exist(cls, value: list[ScaleConfig], info: ValidationInfo) -> list[ScaleConfig]:
        if "cameras" not in info.data:  # the cameras failed validation: that error is reported already
            return value
        names = {c.name for c in info.data["cameras"]}
        for i, scale in enumerate(value):
            if scale.camera and scale.camera not in names:
                known = ", ".join(sorted(names)) or "none configured"
                raise ValueError(f"scales[{i}] ({scale.name}): camera {scale.camera!r} is not a [[cameras]] "
                                 f"name (known: {known})")
        return value

    @property
    def db_path(self) -> Path:
        """Path of the SQLite database (``data_dir / "agent.db"``)."""
        return self.data_dir / DB_FILENAME

    @property
    def local_topic_prefix(self) -> str:
        """Effective local bus prefix: ``local_bus.topic_prefix`` or ``store/{store_id}/local``."""
        return self.local_bus.topic_prefix.rstrip("/") or f"store/{self.store_id}/local"

    @property
    def mqtt_client_id(self) -> str:
        """Effective MQTT client id: ``sync.client_id`` or ``store-agent-{store_id}``."""
        return self.sync.client_id or f"store-agent-{self.store_id}"
