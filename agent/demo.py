"""``store-agent demo``: the whole spine on one box, no hardware, no internet.

Starts a local broker, the reference cloud receiver and the agent with a demo config; sends signed
commands through the cloud; lets health telemetry flow for ``duration`` seconds; waits for the outbox to
drain; returns a summary of what was enqueued, acknowledged and applied. Later issues add cameras, faces,
the scale and shelf labels to it, each under its own key of the summary.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.broker import BrokerUnavailable, EmbeddedBroker, LocalBroker, start_local_broker
from agent.config import parse_broker_url
from agent.daemon.agent import Agent
from sync.cloud.commands import build_command
from sync.cloud.receiver import CloudReceiver, ReceiverSettings
from sync.cloud.sender import send_command
from sync.cloud.store import CloudStore
from sync.signing import generate_keypair

log = logging.getLogger(__name__)

DEMO_STORE = "demo-store"
DEMO_KEY_ID = "demo-cloud"


def write_demo_config(path: Path, *, data_dir: Path, broker_url: str, public_key_b64: str,
                      protocol: str = "5") -> None:
    """The demo's agent config: fast health telemetry, cloud acks on, the demo signing key trusted."""
    path.write_text(
        f'store_id = "{DEMO_STORE}"\n'
        f'data_dir = "{data_dir}"\n'
        'log_level = "INFO"\n\n'
        "[sync]\n"
        f'broker = "{broker_url}"\n'
        f'protocol = "{protocol}"\n'
        "keepalive_s = 10\nrequire_cloud_ack = true\nreconnect_min_s = 0.2\nreconnect_max_s = 2\n\n"
        "[health]\ninterval_s = 1\n\n"
        "[commands.trusted_keys]\n"
        f'"{DEMO_KEY_ID}" = "{public_key_b64}"\n'
    )


def run_demo(duration_s: float = 15.0, *, workdir: Path | None = None, broker_url: str | None = None,
             protocol: str = "5", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the demo and return the summary (see module doc). Never raises for a runtime problem: it is
    reported under ``errors``."""
    say = progress or (lambda _msg: None)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="store-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    broker: LocalBroker | EmbeddedBroker | None = None
    if broker_url is None:
        try:
            broker = start_local_broker(workdir)
        except BrokerUnavailable as exc:
            return _summary({}, {"sent": 0, "applied": 0}, {}, [str(exc)], workdir)
        broker_url, protocol = broker.url, broker.protocol
    say(f"broker     {broker_url} (MQTT {protocol}{', embedded' if isinstance(broker, EmbeddedBroker) else ''})")
    key, public_b64 = generate_keypair()
    config_path = workdir / "agent.toml"
    write_demo_config(config_path, data_dir=workdir / "agent", broker_url=broker_url, public_key_b64=public_b64,
                      protocol=protocol)
    address = parse_broker_url(broker_url)
    cloud_settings = ReceiverSettings(host=address.host, port=address.port, client_id="demo-cloud-receiver",
                                      protocol=protocol)
    cloud_db = workdir / "cloud.db"
    stop_cloud, stop_agent = threading.Event(), threading.Event()
    receiver = CloudReceiver(cloud_settings, cloud_db)
    cloud_thread = threading.Thread(target=receiver.run, args=(stop_cloud,), name="demo-cloud", daemon=True)
    cloud_thread.start()
    agent = Agent(config_path)
    agent_thread = threading.Thread(target=agent.run, args=(stop_agent,), name="demo-agent", daemon=True)
    agent_thread.start()
    commands = {"sent": 0, "applied": 0, "results": []}
    try:
        if not receiver.ready.wait(10):
            errors.append("cloud receiver did not connect to the broker")
        if not _wait(lambda: agent.status()["broker_connected"], 10):
            errors.append("agent did not connect to the broker")
        say(f"agent      store {DEMO_STORE}, data in {workdir / 'agent'}")
        plan = [("ping", {"echo": "hello from the cloud"}),
                ("config.update", {"config": {"health": {"interval_s": 0.5}}})]
        for kind, body in plan:
            cmd = build_command(kind, DEMO_STORE, body, key=key, key_id=DEMO_KEY_ID)
            commands["sent"] += 1
            result = send_command(cloud_settings, cmd, wait_s=10, db_path=cloud_db)
            status = (result or {}).get("status", "no_result")
            commands["applied"] += status == "applied"
            commands["results"].append({"kind": kind, "status": status, "reason": (result or {}).get("reason")})
            say(f"command    {kind}: {status}")
            if status != "applied":
                errors.append(f"command {kind} not applied: {status} {(result or {}).get('reason') or ''}".strip())
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            outbox = agent.status()["outbox"]
            say("telemetry  " + ", ".join(f"{name}: {s['enqueued']} enqueued / {s['acked']} acked"
                                          for name, s in outbox.items()))
        # Let the last messages be acknowledged by the cloud before stopping.
        if not _wait(lambda: all(s["depth"] == 0 for s in agent.status()["outbox"].values()), 10):
            errors.append("outbox did not drain within 10 s after the run")
    except Exception as exc:  # the demo reports, it does not crash
        log.exception("demo failed")
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop_agent.set()
        agent_thread.join(15)
        streams = {name: {"enqueued": s["enqueued"], "acked": s["acked"], "depth": s["depth"]}
                   for name, s in agent.status()["outbox"].items()}
        agent.close()
        stop_cloud.set()
        cloud_thread.join(10)
        if broker is not None:
            broker.stop()
    cloud = CloudStore(cloud_db)
    try:
        cloud_summary = cloud.summary().get(DEMO_STORE, {})
    finally:
        cloud.close()
    for stream, info in cloud_summary.items():
        if info["gaps"]:
            errors.append(f"cloud saw sequence gaps in {stream}: {info['gaps']}")
    return _summary(streams, commands, cloud_summary, errors, workdir)


def _summary(streams: dict[str, Any], commands: dict[str, Any], cloud: dict[str, Any], errors: list[str],
             workdir: Path) -> dict[str, Any]:
    return {"store_id": DEMO_STORE, "streams": streams, "commands": commands, "cloud": cloud, "errors": errors,
            "workdir": str(workdir)}


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def render_summary(summary: dict[str, Any]) -> str:
    """The text form of the summary."""
    lines = ["", "summary"]
    for name, s in summary["streams"].items():
        lines.append(f"  {name:<22} enqueued {s['enqueued']:>5}  acked {s['acked']:>5}")
    c = summary["commands"]
    lines.append(f"  commands               sent {c['sent']}  applied {c['applied']}")
    lines.append("  errors: " + ("none" if not summary["errors"] else json.dumps(summary["errors"])))
    return "\n".join(lines)
