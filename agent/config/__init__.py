"""Agent configuration: schema (pydantic), TOML loading, validation and secrets.

Typical use::

    from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

    cfg = load_config(DEFAULT_CONFIG_PATH)          # file < overlay < environment
    cfg.sync.host, cfg.sync.port, cfg.sync.use_tls
"""

from agent.config.errors import ConfigError, ConfigProblem
from agent.config.loader import (
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    config_schema,
    format_path,
    load_config,
    masked_dump,
    read_secret,
    validate_file,
)
from agent.config.models import (
    AgentConfig,
    CameraConfig,
    CommandsConfig,
    EslGatewayConfig,
    HealthConfig,
    ScaleConfig,
    SupervisorConfig,
    SyncConfig,
    TlsConfig,
)
from agent.config.sync_models import DEFAULT_STREAM_PRIORITIES, UNKNOWN_STREAM_PRIORITY, parse_broker_url

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_STREAM_PRIORITIES",
    "ENV_PREFIX",
    "UNKNOWN_STREAM_PRIORITY",
    "AgentConfig",
    "CameraConfig",
    "CommandsConfig",
    "ConfigError",
    "ConfigProblem",
    "EslGatewayConfig",
    "HealthConfig",
    "ScaleConfig",
    "SupervisorConfig",
    "SyncConfig",
    "TlsConfig",
    "config_schema",
    "format_path",
    "load_config",
    "masked_dump",
    "parse_broker_url",
    "read_secret",
    "validate_file",
]
