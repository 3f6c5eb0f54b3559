"""``store-agent demo``: the whole agent on one box, no hardware.

Starts a local broker, the reference cloud receiver and the agent with a demo config; installs the person
detector and a sample video (sha256-verified, from their upstream URLs or from a mirror directory when
offline) and runs a camera pipeline on the video as if it were a live camera; sends signed commands through
the cloud; lets telemetry, events and aggregates flow for ``duration`` seconds; waits for the outbox to drain;
returns a summary. Later issues add faces, the scale and shelf labels, each under its own key.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.broker import BrokerUnavailable, EmbeddedBroker, LocalBroker, start_local_broker
from agent.config import parse_broker_url
from agent.daemon.agent import Agent
from agent.demo_parts import PART_FACTORIES, DemoContext, DemoPart, wait_until
from sync.cloud.commands import build_command
from sync.cloud.receiver import CloudReceiver, ReceiverSettings
from sync.cloud.sender import send_command
from sync.cloud.store import CloudStore
from sync.signing import generate_keypair

log = logging.getLogger(__name__)

DEMO_STORE = "demo-store"
DEMO_KEY_ID = "demo-cloud"
DEMO_CAMERA = "demo-floor"
DEMO_DETECTOR = "yolox-nano"
DEMO_VIDEO = "worker-zone-video"
#: Mirror root for offline installs: models under ``<root>/models``, sample media under ``<root>/data``.
MIRROR_ENV = "STORE_AGENT_MIRROR"

# The sample clip: a worker walks up the image from the bottom edge and stops in the left-middle of the floor.
# The line is drawn left→right, so walking up the image is OUT; the zone is the floor area he walks into.
_CAMERA_TOML = """
[vision]
aggregate_interval_s = 5

[models]
dir = "{model_dir}"

[[cameras]]
name = "{camera}"
url = "{video}"

[cameras.analytics]
detector = "{detector}"
detect_fps = 5

[[cameras.analytics.lines]]
name = "aisle-entry"
start = [0.0, 0.85]
end = [1.0, 0.85]

[[cameras.analytics.zones]]
name = "floor"
polygon = [[0.05, 0.55], [0.55, 0.55], [0.55, 0.83], [0.05, 0.83]]
exit_grace_s = 1.0
"""


def write_demo_config(path: Path, *, data_dir: Path, broker_url: str, public_key_b64: str,
                      protocol: str = "5", camera: dict[str, Path] | None = None) -> None:
    """The demo's agent config: fast health telemetry, cloud acks on, the demo signing key trusted, and the
    sample camera when ``camera`` (``{"video": …, "model_dir": …}``) is given."""
    text = (
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
    if camera is not None:
        text += _CAMERA_TOML.format(model_dir=camera["model_dir"], camera=DEMO_CAMERA, video=camera["video"],
                                    detector=DEMO_DETECTOR)
    path.write_text(text)


def install_demo_media(workdir: Path, mirror: Path | None) -> dict[str, Path]:
    """Install the detector and the sample video into ``workdir`` (verified by sha256); raises ModelError."""
    from models.registry import install
    from models.samples import SAMPLES

    model_dir = workdir / "models"
    install(DEMO_DETECTOR, model_dir, mirror=mirror / "models" if mirror else None)
    video = install(SAMPLES[DEMO_VIDEO], workdir / "media", mirror=mirror / "data" if mirror else None)
    return {"model_dir": model_dir, "video": video}


def run_demo(duration_s: float = 15.0, *, workdir: Path | None = None, broker_url: str | None = None,
             protocol: str = "5", mirror: Path | None = None, camera: bool = True,
             progress: Callable[[str], None] | None = None, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Run the demo and return the summary (see module doc). Never raises for a runtime problem: it is
    reported under ``errors``. ``skip`` names demo parts (``agent.demo_parts``) not to run."""
    say = progress or (lambda _msg: None)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="store-agent-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    mirror = mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    errors: list[str] = []
    media: dict[str, Path] | None = None
    if camera:
        from models.spec import ModelError

        try:
            media = install_demo_media(workdir, mirror)
            say(f"media      {DEMO_DETECTOR} and the sample video verified ({'mirror ' + str(mirror) if mirror else 'downloaded'})")
        except ModelError as exc:
            errors.append(f"camera demo skipped: {exc} (offline? pass --mirror DIR with models/ and data/videos/)")
    broker: LocalBroker | EmbeddedBroker | None = None
    if broker_url is None:
        try:
            broker = start_local_broker(workdir)
        except BrokerUnavailable as exc:
            return _summary({}, {"sent": 0, "applied": 0}, {}, None, errors + [str(exc)], workdir)
        broker_url, protocol = broker.url, broker.protocol
    say(f"broker     {broker_url} (MQTT {protocol}{', embedded' if isinstance(broker, EmbeddedBroker) else ''})")
    key, public_b64 = generate_keypair()
    config_path = workdir / "agent.toml"
    write_demo_config(config_path, data_dir=workdir / "agent", broker_url=broker_url, public_key_b64=public_b64,
                      protocol=protocol, camera=media)
    address = parse_broker_url(broker_url)
    cloud_settings = ReceiverSettings(host=address.host, port=address.port, client_id="demo-cloud-receiver",
                                      protocol=protocol)
    cloud_db = workdir / "cloud.db"
    commands: dict[str, Any] = {"sent": 0, "applied": 0, "results": []}
    ctx = DemoContext(workdir=workdir, mirror=mirror, broker_url=broker_url, cloud_db=cloud_db, say=say,
                      camera=camera, errors=errors, send_command=lambda kind, body: _send_command(
                          cloud_settings, cloud_db, key, kind, body, commands, say))
    parts = _prepare_parts(ctx, config_path, skip)
    stop_cloud, stop_agent = threading.Event(), threading.Event()
    receiver = CloudReceiver(cloud_settings, cloud_db)
    cloud_thread = threading.Thread(target=receiver.run, args=(stop_cloud,), name="demo-cloud", daemon=True)
    cloud_thread.start()
    agent = Agent(config_path)
    agent_thread = threading.Thread(target=agent.run, args=(stop_agent,), name="demo-agent", daemon=True)
    agent_thread.start()
    camera_summary: dict[str, Any] | None = None
    part_summaries: dict[str, Any] = {}
    ctx.agent = agent
    try:
        if not receiver.ready.wait(10):
            errors.append("cloud receiver did not connect to the broker")
        if not wait_until(lambda: agent.status()["broker_connected"], 10, step_s=0.1):
            errors.append("agent did not connect to the broker")
        say(f"agent      store {DEMO_STORE}, data in {workdir / 'agent'}")
        _send_demo_commands(ctx)
        for part in parts:
            _guarded(part.name, lambda p=part: p.exercise(ctx), errors)
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            status = agent.status()
            say("telemetry  " + ", ".join(f"{name}: {s['enqueued']}/{s['acked']}"
                                          for name, s in status["outbox"].items()) + "  (enqueued/acked)")
            live = _camera_live(agent)
            if live:
                say("camera     " + _render_live(live))
        if media is not None:
            # Stop the camera first: it flushes its open visits and last aggregates into the outbox.
            agent.supervisor.stop_one(f"camera-{DEMO_CAMERA}")
            camera_summary = _camera_summary(agent)
        drained = wait_until(lambda: all(s["depth"] == 0 for s in agent.status()["outbox"].values()), 15, step_s=0.1)
        if not drained:
            errors.append("outbox did not drain within 15 s after the run")
        for part in parts:
            _guarded(part.name, lambda p=part: part_summaries.__setitem__(p.name, p.summary(ctx)), errors)
    except Exception as exc:  # the demo reports, it does not crash
        log.exception("demo failed")
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for part in parts:
            _guarded(part.name, part.close, errors)
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
        latest = cloud.conn.execute("SELECT body FROM messages WHERE store_id = ? AND stream = 'telemetry/aggregates'"
                                    " AND json_extract(body, '$.camera') = ? ORDER BY event_ts DESC LIMIT 1",
                                    (DEMO_STORE, DEMO_CAMERA)).fetchone()
        # Distinct messages: the cloud may hold a redelivered duplicate.
        at_cloud = cloud.conn.execute("SELECT COUNT(DISTINCT msg_id) FROM messages WHERE store_id = ? AND stream ="
                                      " 'telemetry/aggregates' AND json_extract(body, '$.camera') = ?",
                                      (DEMO_STORE, DEMO_CAMERA)).fetchone()[0]
    finally:
        cloud.close()
    for stream, info in cloud_summary.items():
        if info["gaps"]:
            errors.append(f"cloud saw sequence gaps in {stream}: {info['gaps']}")
    if camera_summary is not None:
        camera_summary["aggregates_at_cloud"] = at_cloud
        camera_summary["latest_aggregate"] = _brief_aggregate(json.loads(latest[0])) if latest else None
        if not camera_summary["aggregates_at_cloud"]:
            errors.append("no people-analytics aggregate reached the cloud")
    summary = _summary(streams, commands, cloud_summary, camera_summary, errors, workdir)
    summary.update(part_summaries)
    return summary


def _prepare_parts(ctx: DemoContext, config_path: Path, skip: frozenset[str]) -> list[DemoPart]:
    """Build the demo parts not skipped, let each prepare itself and append its TOML to the agent config."""
    parts: list[DemoPart] = []
    for factory in PART_FACTORIES:
        part = factory()
        if part.name in skip:
            continue
        toml: list[str] = []
        if _guarded(part.name, lambda p=part: toml.append(p.prepare(ctx)), ctx.errors):
            parts.append(part)
            if toml[0]:
                with config_path.open("a") as f:
                    f.write("\n" + toml[0] + "\n")
        else:
            _guarded(part.name, part.close, ctx.errors)
    return parts


def _guarded(name: str, step: Callable[[], Any], errors: list[str]) -> bool:
    """Run one step of a demo part; a failure is reported, never raised."""
    try:
        step()
        return True
    except Exception as exc:
        log.exception("demo part failed", extra={"part": name})
        errors.append(f"{name}: {type(exc).__name__}: {exc}")
        return False


def _send_command(settings: ReceiverSettings, cloud_db: Path, key: Any, kind: str, body: dict[str, Any],
                  commands: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """Sign ``kind``/``body`` as the demo cloud, send it, count it and return its result."""
    cmd = build_command(kind, DEMO_STORE, body, key=key, key_id=DEMO_KEY_ID)
    commands["sent"] += 1
    result = send_command(settings, cmd, wait_s=10, db_path=cloud_db) or {"status": "no_result"}
    status = result.get("status", "no_result")
    commands["applied"] += status == "applied"
    commands["results"].append({"kind": kind, "status": status, "reason": result.get("reason")})
    say(f"command    {kind}: {status}")
    return result


def _send_demo_commands(ctx: DemoContext) -> None:
    plan = [("ping", {"echo": "hello from the cloud"}),
            ("config.update", {"config": {"health": {"interval_s": 0.5}}})]
    for kind, body in plan:
        result = ctx.send_command(kind, body)
        if result.get("status") != "applied":
            ctx.errors.append(f"command {kind} not applied: {result.get('status')} {result.get('reason') or ''}".strip())


def _camera_live(agent: Agent) -> dict[str, Any] | None:
    component = agent.supervisor.component(f"camera-{DEMO_CAMERA}")
    status = component.status() if component is not None else {}
    return status.get("processor")


def _render_live(processor: dict[str, Any]) -> str:
    live = processor["live"]
    lines = ", ".join(f"{n} in {c['in']} out {c['out']}" for n, c in live["lines"].items())
    zones = ", ".join(f"{n} occupancy {z['occupancy']}" for n, z in live["zones"].items())
    return f"frames {processor['frames']}, inferences {processor['inferences']}; {lines}; {zones}"


def _camera_summary(agent: Agent) -> dict[str, Any]:
    component = agent.supervisor.component(f"camera-{DEMO_CAMERA}")
    status = component.status() if component is not None else {}
    processor = status.get("processor") or {}
    live = processor.get("live") or {}
    return {"name": DEMO_CAMERA, "frames": processor.get("frames", 0), "inferences": processor.get("inferences", 0),
            "lines": live.get("lines", {}), "events": status.get("published", {}).get("events", 0),
            "aggregates": status.get("published", {}).get("aggregates", 0)}


def _brief_aggregate(body: dict[str, Any]) -> dict[str, Any]:
    return {"interval_start": body.get("interval_start"), "interval_s": body.get("interval_s"),
            "lines": body.get("lines"),
            "zones": {n: {"visits": z.get("visits"), "dwell_s": z.get("dwell_s"), "occupancy_max": z.get("occupancy_max")}
                      for n, z in (body.get("zones") or {}).items()}}


def _summary(streams: dict[str, Any], commands: dict[str, Any], cloud: dict[str, Any],
             camera: dict[str, Any] | None, errors: list[str], workdir: Path) -> dict[str, Any]:
    return {"store_id": DEMO_STORE, "streams": streams, "commands": commands, "camera": camera, "cloud": cloud,
            "errors": errors, "workdir": str(workdir)}




#: Summary keys of the demo parts, in the order the text summary shows them.
PART_NAMES = ("faces", "scale", "labels")


def _brief(part: dict[str, Any]) -> str:
    """One line of a part's summary: scalars as they are, lists and tables by their size."""
    items = []
    for key, value in part.items():
        if isinstance(value, (list, dict)):
            items.append(f"{key} [{len(value)}]")
        else:
            items.append(f"{key} {value}")
    return ", ".join(items)


def render_summary(summary: dict[str, Any]) -> str:
    """The text form of the summary."""
    lines = ["", "summary"]
    for name, s in summary["streams"].items():
        lines.append(f"  {name:<22} enqueued {s['enqueued']:>5}  acked {s['acked']:>5}")
    c = summary["commands"]
    lines.append(f"  commands               sent {c['sent']}  applied {c['applied']}")
    cam = summary.get("camera")
    if cam:
        lines.append(f"  camera {cam['name']}: {cam['frames']} frames, {cam['inferences']} inferences, "
                     f"{cam['events']} events, {cam['aggregates']} aggregates ({cam['aggregates_at_cloud']} at the cloud)")
        if cam.get("latest_aggregate"):
            lines.append(f"  latest aggregate at the cloud: {json.dumps(cam['latest_aggregate'])}")
    for part in PART_NAMES:
        if isinstance(summary.get(part), dict):
            lines.append(f"  {part}: " + _brief(summary[part]))
    lines.append("  errors: " + ("none" if not summary["errors"] else json.dumps(summary["errors"])))
    return "\n".join(lines)
