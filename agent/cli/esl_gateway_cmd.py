"""Gateway-side ``store-agent esl ...`` commands: ``pick``, ``find``, ``labels``, ``simulate-ap``.

``pick``/``find`` ask the running daemon over its control socket (``esl.pick {json}``), so colours of
concurrent orders are allocated in one place; with no daemon running they open the store and talk to the
configured gateways directly (same code, same ``esl_pick_orders`` table).
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated, Any, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json


def _local(cfg: Any, route: str, args: dict[str, Any]) -> dict[str, Any]:
    """Ask the daemon; fall back to doing it here when none answers."""
    from agent.daemon.control import SOCKET_NAME, ask

    try:
        reply = ask(cfg.data_dir / SOCKET_NAME, f"{route} {json.dumps(args)}", timeout_s=60.0)
        reply.setdefault("via", "daemon")
        return reply
    except OSError:
        pass
    from agent.esl.runtime import EslRuntime
    from agent.store import StoreError, open_store

    try:
        db_path = open_store(cfg.data_dir)
    except StoreError as exc:
        return {"error": f"cannot open the local store: {exc}", "reason": "store"}
    runtime = EslRuntime(cfg.esl_gateways, db_path, outbox=None)  # type: ignore[arg-type]
    reply = runtime.routes()[route](args)
    reply.setdefault("via", "direct")
    return reply


def _show(reply: dict[str, Any], as_json: bool, head: str) -> None:
    if as_json:
        print_json(reply)
    elif "error" not in reply:
        typer.echo(head)
        for out in reply.get("labels", []):
            where = out.get("position") or "position unknown"
            extra = f" ({out['error']})" if out.get("error") else ""
            typer.echo(f"  {out['label']}  PLU {out.get('plu')}  {where}  {out['status']}{extra}")
    if "error" in reply:
        if not as_json:
            typer.echo(f"error: {reply['error']}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the gateway-side commands to the ``esl`` app."""

    @app.command("pick")
    def pick(order_id: Annotated[str, typer.Argument(help="The online order being picked.")],
             plus: Annotated[Optional[list[str]], typer.Option("--plus", help="PLUs of the order (repeat the "
                                                               "option or separate with commas).")] = None,
             color: Annotated[Optional[str], typer.Option("--color", "--colour", help="LED colour (default: "
                                                          "the first colour no active order uses).")] = None,
             pattern: Annotated[str, typer.Option(help="blink, fast or double.")] = "blink",
             duration: Annotated[float, typer.Option(help="Seconds the LEDs flash (the order's lifetime).")] = 300.0,
             done: Annotated[bool, typer.Option("--done", help="Order picked: stop its LEDs, free its colour.")]
             = False,
             config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
        """Flash the labels of an order's items in the order's colour (one colour per concurrent order)."""
        cfg = load_or_exit(config)
        items = [p.strip() for arg in plus or [] for p in arg.split(",") if p.strip()]
        if done:
            reply = _local(cfg, "esl.pick_done", {"order_id": order_id})
            _show(reply, as_json, f"order {order_id} done")
            return
        if not items:
            typer.echo("give the order's PLUs with --plus", err=True)
            raise typer.Exit(2)
        reply = _local(cfg, "esl.pick", {"order_id": order_id, "plus": items, "colour": color, "pattern": pattern,
                                         "duration_s": duration})
        _show(reply, as_json, f"order {order_id}: {reply.get('colour')} ({reply.get('pattern')}, "
                              f"{reply.get('duration_s')} s)")

    @app.command("find")
    def find(plu: Annotated[str, typer.Argument(help="The product's PLU.")],
             color: Annotated[str, typer.Option("--color", "--colour", help="LED colour.")] = "white",
             duration: Annotated[float, typer.Option(help="Seconds the LED flashes.")] = 60.0,
             config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
        """Flash the labels of a product and print where they hang."""
        cfg = load_or_exit(config)
        reply = _local(cfg, "esl.find", {"plu": plu, "colour": color, "duration_s": duration})
        _show(reply, as_json, f"PLU {plu}:")

    @app.command("labels")
    def labels(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
        """Every known label: PLU, delivery state, position, last check-in, temperature, battery."""
        cfg = load_or_exit(config)
        reply = _local(cfg, "esl.status", {})
        if as_json:
            print_json(reply)
            return
        for row in reply.get("labels", []):
            typer.echo(f"{row['label']}  {row['state']:<12} PLU {row['plu']}  {row['position'] or '-'}  "
                       f"{row['temperature_c']} °C  {row['battery_mv']} mV  {row['error'] or ''}")

    @app.command("simulate-ap")
    def simulate_ap(
        port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0 = any free port).")] = 8080,
        host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
        labels_n: Annotated[int, typer.Option("--labels", min=1, max=100_000, help="Simulated labels.")] = 10,
        interval: Annotated[float, typer.Option(min=0.01, help="Label check-in interval, s (real: ~40).")] = 40.0,
        failure_rate: Annotated[float, typer.Option(min=0.0, max=0.99, help="Transfer failure probability.")]
        = 0.0,
        fridge: Annotated[int, typer.Option(min=0, help="The first N labels hang in a fridge (4 °C).")] = 0,
        hw_type: Annotated[int, typer.Option(help="OpenEPaperLink hwType of the labels (1 = 2.9\" BWR).")] = 1,
        vendor: Annotated[bool, typer.Option("--vendor", help="Simulate the vendor-style REST server "
                                             "instead.")] = False,
        seed: Annotated[Optional[int], typer.Option(help="Random seed (failures, check-in phases).")] = None,
        quiet_checkins: Annotated[bool, typer.Option("--quiet-checkins", help="Send websocket tag updates only "
                                                     "when something changed (not on idle check-ins).")] = False,
        failure_mode: Annotated[str, typer.Option(help="After a failed transfer: drop (the AP drops the queue, "
                                                  "the tag retries after a quarter interval) or hardware (as "
                                                  "OpenEPaperLink firmware: queue kept, retry at the next "
                                                  "check-in, dropped after --pending-ttl).")] = "drop",
        pending_ttl: Annotated[float, typer.Option(min=0.01, help="hardware mode: the AP drops an undelivered "
                                                   "image this long after it was queued, s (real: ~1 day).")]
        = 86_400.0,
        as_json: JsonOption = False,
    ) -> None:
        """Run a protocol-faithful OpenEPaperLink AP simulator (or the vendor REST one) until Ctrl-C."""
        from devices.esl.sim.oepl_ap import OeplApSimulator
        from devices.esl.sim.vendor_ap import VendorApSimulator

        if failure_mode not in ("drop", "hardware"):
            raise typer.BadParameter("use drop or hardware", param_hint="--failure-mode")
        macs = [f"0000AABBCC{i:06X}" for i in range(labels_n)]
        sim: Any
        if vendor:
            sim = VendorApSimulator(host=host, port=port, interval_s=interval, failure_rate=failure_rate, seed=seed)
            sim.add_labels(macs[fridge:])
            sim.add_labels(macs[:fridge], temperature=4.0)
        else:
            sim = OeplApSimulator(host=host, port=port, interval_s=interval, failure_rate=failure_rate, seed=seed,
                                  broadcast_idle=not quiet_checkins, failure_mode=failure_mode,
                                  pending_ttl_s=pending_ttl)
            sim.add_tags(macs[fridge:], hw_type=hw_type)
            sim.add_tags(macs[:fridge], hw_type=hw_type, temperature=4.0)
        try:
            sim.start()
        except OSError as exc:
            typer.echo(f"cannot listen on {host}:{port}: {exc}", err=True)
            raise typer.Exit(1) from exc
        info = {"url": sim.url, "backend": "vendor-rest" if vendor else "openepaperlink", "labels": macs,
                "interval_s": interval, "failure_rate": failure_rate, "failure_mode": failure_mode}
        if as_json:
            print_json(info)
        else:
            typer.echo(f"{info['backend']} simulator at {sim.url}: {labels_n} labels, check-in every {interval} s, "
                       f"transfer failure rate {failure_rate}. Ctrl-C stops.")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            sim.stop()
