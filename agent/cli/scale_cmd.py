"""``store-agent scale``: probe a serial port, read a scale live, run a simulated scale on a pseudo-terminal."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import JsonOption, print_json

app = typer.Typer(help="Serial scales: find the protocol, read live weights, simulate one.", no_args_is_help=True)

PROTOCOL_HELP = "Protocol: toledo8217, mt-sics or scp01."


def _check_protocol(protocol: str) -> str:
    from devices.scale import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"unknown protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    return protocol


@app.command()
def probe(
    port: Annotated[str, typer.Argument(help="Serial port, e.g. /dev/ttyUSB0 (or a simulator's pty).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each protocol's answer.")] = 0.5,
    baudrate: Annotated[Optional[int], typer.Option(help="Override the protocols' baud rate (9600).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Try each protocol with its serial settings; report which one answers (exit 1 when none does)."""
    from devices.scale.probe import probe as run_probe

    result = run_probe(port, timeout_s=timeout, baudrate=baudrate)
    if as_json:
        print_json(result)
    else:
        for name, r in result["protocols"].items():
            state = "answers" if r["answered"] else ("error: " + r["error"] if r["error"] else "no answer")
            weight = f"  weight {r['reading']['weight_kg']} kg" if r.get("reading") else ""
            typer.echo(f"{name:<11} {state}{weight}  ({r['frames']} frames, {r['garbage_bytes']} garbage bytes, "
                       f"{r['ms']} ms)")
        typer.echo(f"detected: {result['detected'] or 'none'}")
    raise typer.Exit(0 if result["detected"] else 1)


@app.command()
def read(
    port: Annotated[str, typer.Argument(help="Serial port of the scale.")],
    protocol: Annotated[str, typer.Option("--protocol", "-p", help=PROTOCOL_HELP, callback=_check_protocol)],
    count: Annotated[int, typer.Option(help="Stop after this many readings (0 = until Ctrl-C).", min=0)] = 0,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.02)] = 0.2,
    continuous: Annotated[bool, typer.Option(help="Use the scale's continuous output (mt-sics).")] = False,
    unit: Annotated[str, typer.Option(help="Unit of scales whose frames carry none (toledo8217).")] = "kg",
    baudrate: Annotated[Optional[int], typer.Option(help="Baud rate (default: the protocol's).")] = None,
    timeout: Annotated[float, typer.Option(help="Give up when no reading came for this many seconds.")] = 5.0,
    as_json: JsonOption = False,
) -> None:
    """Print live weight and status, one line per reading (``--json``: one JSON object per line)."""
    from devices.scale.driver import DriverSettings, ScaleDriver

    stop = threading.Event()
    got = {"n": 0, "last": time.monotonic()}

    def show(reading, t) -> None:  # noqa: ANN001 - driver callback
        got["n"] += 1
        got["last"] = t
        if as_json:
            sys.stdout.write(json.dumps(reading.to_dict()) + "\n")
        else:
            flags = [f for f in ("net", "motion", "zero", "overload", "underload") if getattr(reading, f)]
            weight = "------" if reading.weight_kg is None else f"{reading.weight_kg:.4f} kg"
            faults = f"  faults: {','.join(reading.faults)}" if reading.faults else ""
            typer.echo(f"{weight:>12}  {' '.join(flags)}{faults}")
        sys.stdout.flush()
        if count and got["n"] >= count:
            stop.set()

    try:
        driver = ScaleDriver(DriverSettings(port=port, protocol=protocol, baudrate=baudrate, unit=unit,
                                            poll_interval_s=interval, continuous=continuous), show)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    thread.start()
    try:
        while not stop.wait(0.1):
            if time.monotonic() - got["last"] > timeout:
                typer.echo(f"no reading from {port} for {timeout} s ({driver.last_error or 'no answer'})", err=True)
                stop.set()
                thread.join(2)
                raise typer.Exit(1)
    except KeyboardInterrupt:
        stop.set()
    thread.join(2)
    if not as_json:
        typer.echo(f"counters: {json.dumps(driver.counters.to_dict())}", err=True)


@app.command()
def simulate(
    protocol: Annotated[str, typer.Option("--protocol", "-p", help=PROTOCOL_HELP, callback=_check_protocol)],
    script: Annotated[Optional[Path], typer.Option(help="Weight script (lines 't weight_kg [motion]' or JSON); "
                                                        "default: a weighing of 0.412 kg every 4 s, looped.")] = None,
    weight: Annotated[Optional[float], typer.Option(help="Hold this weight (kg) instead of a script.")] = None,
    unit: Annotated[Optional[str], typer.Option(help="Scale unit: kg, lb or g (default kg; lb for scp01).")] = None,
    garbage_rate: Annotated[float, typer.Option(help="Chance (0-1) of random bytes before a reply.", min=0,
                                                max=1)] = 0.0,
    partial_rate: Annotated[float, typer.Option(help="Chance (0-1) that a reply is cut short.", min=0, max=1)] = 0.0,
    drop_rate: Annotated[float, typer.Option(help="Chance (0-1) that a request is not answered.", min=0,
                                             max=1)] = 0.0,
    delay: Annotated[float, typer.Option(help="Seconds before each reply.", min=0)] = 0.0,
    disconnect_every: Annotated[float, typer.Option(help="Unplug every N seconds (0 = never).", min=0)] = 0.0,
    disconnect_for: Annotated[float, typer.Option(help="Seconds unplugged each time.", min=0)] = 1.0,
    link: Annotated[Optional[Path], typer.Option(help="Also make this symlink to the pty (it follows replugs, "
                                                      "like /dev/serial/by-id).")] = None,
    duration: Annotated[float, typer.Option(help="Stop after N seconds (0 = until Ctrl-C).", min=0)] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Create a pseudo-terminal that speaks the protocol byte for byte; print its path and run until Ctrl-C."""
    from devices.scale.sim import Faults, ScaleSimulator, WeightScript

    try:
        weights = WeightScript.load(script) if script else (
            None if weight is not None else WeightScript.weighings([0.412], loop=True))
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot read the script: {exc}", err=True)
        raise typer.Exit(2) from exc
    faults = Faults(garbage_rate=garbage_rate, partial_rate=partial_rate, drop_rate=drop_rate, delay_s=delay,
                    disconnect_every_s=disconnect_every, disconnect_for_s=disconnect_for)
    try:
        sim = ScaleSimulator(protocol, script=weights, faults=faults, unit=unit, link=link)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if weight is not None:
        sim.set_weight(weight)
    path = sim.start()
    if as_json:
        print_json({"port": path, "protocol": protocol, "pty": sim._pts})
    else:
        typer.echo(path)
    sys.stdout.flush()
    t0 = time.monotonic()
    try:
        while not duration or time.monotonic() - t0 < duration:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    if as_json:
        print_json({"stats": sim.stats})
    else:
        typer.echo(f"stats: {json.dumps(sim.stats)}", err=True)
