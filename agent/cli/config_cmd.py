"""``store-agent config validate|show|schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, load_or_exit
from agent.config import config_schema, masked_dump, validate_file

app = typer.Typer(help="Validate, show and describe the agent's configuration.", no_args_is_help=True)


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Config file to check.")]) -> None:
    """Report every error with its field path and line; exit 1 if any."""
    problems = validate_file(file)
    if not problems:
        typer.echo(f"{file}: ok")
        return
    for problem in problems:
        typer.echo(problem.format(str(file)), err=True)
    raise typer.Exit(1)


@app.command()
def show(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Print the effective config (file + environment) as JSON, secrets masked."""
    typer.echo(json.dumps(masked_dump(load_or_exit(config)), indent=2, default=str))


@app.command()
def schema() -> None:
    """Print the config's JSON schema (titles, descriptions, bounds, defaults)."""
    typer.echo(json.dumps(config_schema(), indent=2))
