"""``store-agent``: the one command of Store Edge Agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent import __version__
from agent.cli import (bench_cmd, cloud_cmd, config_cmd, esl_cmd, eval_cmd, keys_cmd, models_cmd, prices_cmd,
                       sync_cmd, vision_cmd)
from agent.cli import products_cmd
from agent.cli import identities_cmd
from agent.cli import scale_cmd
from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json

app = typer.Typer(help="Store Edge Agent: the per-store edge daemon and its tools.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.add_typer(config_cmd.app, name="config")
app.add_typer(sync_cmd.app, name="sync")
app.add_typer(cloud_cmd.app, name="cloud")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(models_cmd.app, name="models")
app.add_typer(vision_cmd.report_app, name="report")
app.add_typer(prices_cmd.app, name="prices")
app.add_typer(esl_cmd.app, name="esl")
app.add_typer(products_cmd.app, name="products")
app.add_typer(identities_cmd.app, name="identities")
app.add_typer(scale_cmd.app, name="scale")
app.command("replay")(vision_cmd.replay)


def _version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                        help="Print the version and exit.")] = None) -> None:
    """Store Edge Agent."""


@app.command()
def run(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run the daemon in the foreground (what the systemd unit starts). SIGTERM/SIGINT stop it cleanly."""
    from agent.daemon.agent import Agent
    from agent.logs import setup_logging
    from agent.store import StoreError

    cfg = load_or_exit(config)
    setup_logging(cfg.log_level)
    try:
        agent = Agent(config)
    except StoreError as exc:
        typer.echo(f"cannot open the local store: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        agent.run()
    finally:
        agent.close()


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Components, restarts, last errors, outbox depth per stream, last sync and broker connection."""
    from agent.daemon.agent import read_status_offline
    from agent.daemon.control import SOCKET_NAME, ask

    cfg = load_or_exit(config)
    try:
        info = ask(cfg.data_dir / SOCKET_NAME)
        info["running"] = True
    except OSError:
        if not cfg.db_path.exists():
            typer.echo(f"the agent is not running and has no store at {cfg.db_path}", err=True)
            raise typer.Exit(1) from None
        info = read_status_offline(cfg.db_path)
    if as_json:
        print_json(info)
        return
    typer.echo(_render_status(info))


def _render_status(info: dict) -> str:
    lines = []
    if info.get("running"):
        lines.append(f"store {info['store_id']}  running  pid {info['pid']}  up {info['uptime_s']} s  "
                     f"boot {info['boot_id']}  config v{info['config_version']}")
        lines.append(f"broker {info.get('broker')}: {'connected' if info['broker_connected'] else 'NOT connected'}")
        for c in info["components"]:
            err = f"  last error: {c['last_error']}" if c["last_error"] else ""
            lines.append(f"  {c['name']:<12} {c['state']:<9} restarts {c['restarts']}{err}")
    else:
        lines.append("agent NOT running (figures from the local store)")
    lines.append("outbox:")
    for name, s in info["outbox"].items():
        lines.append(f"  {name:<24} depth {s['depth']:>7}  enqueued {s['enqueued']:>8}  acked {s['acked']:>8}"
                     f"  shed {s['shed']}")
    lines.append(f"last successful sync: {info.get('last_successful_sync') or 'never'}")
    return "\n".join(lines)


@app.command()
def doctor(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Check config, disk, clock, broker/TLS, serial ports, keys, models, face key, label gateways and fonts,
    local bus; say how to fix each failure."""
    from agent.doctor import exit_code, render_text, run_doctor

    results = run_doctor(config)
    if as_json:
        print_json({"ok": exit_code(results) == 0, "checks": [r.to_dict() for r in results]})
    else:
        typer.echo(render_text(results))
    raise typer.Exit(exit_code(results))


@app.command()
def demo(
    duration: Annotated[float, typer.Option("--duration", help="Seconds of telemetry after the commands.")] = 15.0,
    as_json: JsonOption = False,
    workdir: Annotated[Optional[Path], typer.Option(help="Keep the demo's files here (default: a temp dir).")] = None,
    broker: Annotated[Optional[str], typer.Option(help="Use this broker instead of starting mosquitto.")] = None,
    protocol: Annotated[str, typer.Option(help="MQTT version of --broker: 5 or 3.1.1.")] = "5",
    mirror: Annotated[Optional[Path], typer.Option(help="Offline mirror: models under DIR/models, sample media under "
                                                        "DIR/data (env STORE_AGENT_MIRROR).")] = None,
    camera: Annotated[bool, typer.Option("--camera/--no-camera", help="Run the sample camera pipeline.")] = True,
    skip: Annotated[Optional[list[str]], typer.Option("--skip", help="Leave out a demo part (scale, labels, faces); "
                                                      "repeatable.")] = None,
) -> None:
    """Run broker, reference cloud and agent together on a built-in default; print a summary."""
    from agent.demo import render_summary, run_demo
    from agent.logs import setup_logging

    setup_logging("WARNING")
    summary = run_demo(duration, workdir=workdir, broker_url=broker, protocol=protocol, mirror=mirror, camera=camera,
                       progress=None if as_json else typer.echo, skip=frozenset(skip or ()))
    if as_json:
        print_json(summary)
    else:
        typer.echo(render_summary(summary))
    if summary["errors"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
