"""Options and helpers shared by the CLI's commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, ConfigError, load_config

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Agent config file (TOML).",
                                            envvar="STORE_AGENT_CONFIG")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
DEFAULT_CONFIG = DEFAULT_CONFIG_PATH


def load_or_exit(path: Path) -> AgentConfig:
    """Load the config or print every problem and exit 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"invalid configuration:\n{exc}", err=True)
        raise typer.Exit(2) from exc


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, default=str) + "\n")
