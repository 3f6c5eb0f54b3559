"""``store-agent bench …``: benchmarks that print figures as JSON (see docs/benchmarks.md)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from agent.cli.common import JsonOption, print_json

app = typer.Typer(help="Benchmarks: figures and ratios, printed as JSON with --json.", no_args_is_help=True)


@app.command("sync")
def bench_sync(
    rate: Annotated[float, typer.Option(help="Messages per second offered to the outbox.")] = 500.0,
    backlog: Annotated[int, typer.Option(help="Offline backlog size drained to the broker.")] = 100_000,
    seconds: Annotated[float, typer.Option(help="Duration of the enqueue-latency phase.")] = 10.0,
    broker: Annotated[Optional[str], typer.Option(help="Broker URL; default: start a local mosquitto.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Outbox enqueue latency at RATE msg/s, CPU used, backlog drain rate, RSS growth over the backlog."""
    from agent.bench.sync_bench import run_sync_bench

    result = run_sync_bench(rate=rate, backlog=backlog, seconds=seconds, broker_url=broker)
    if as_json:
        print_json(result)
    else:
        for key, value in result.items():
            typer.echo(f"{key:<22} {value}")
