"""The scale-<name> component: a scripted weighing through a real pty → listener events and events/scale rows
in the real outbox; a failing listener never stops the scale."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from agent.config.device_models import ScaleConfig
from agent.config.sync_models import SyncConfig
from agent.scale.component import EVENT_STREAM, ScaleComponent
from agent.store import connect, open_store
from devices.scale.sim import ScaleSimulator, WeightScript
from devices.scale.stability import ScaleEvent
from sync.outbox import Outbox


def outbox_bodies(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT body FROM outbox WHERE stream = ? ORDER BY id", (EVENT_STREAM,)).fetchall()
    finally:
        conn.close()
    bodies = [json.loads(r[0]) for r in rows]
    return [b.get("body", b) if isinstance(b, dict) else b for b in bodies]


def test_weighing_events_reach_listeners_and_outbox(tmp_path: Path) -> None:
    db = open_store(tmp_path)
    outbox = Outbox(db, store_id="s1", boot_id="boot-test", priority_for=SyncConfig().priority_for, connect=connect)
    script = WeightScript.weighings([0.412], start_s=0.2, settle_s=0.3, hold_s=1.2, gap_s=0.5)
    seen: list[ScaleEvent] = []

    def broken(event: ScaleEvent) -> None:
        raise RuntimeError("listener bug")

    with ScaleSimulator("mt-sics", script=script) as sim:
        cfg = ScaleConfig(name="deli", port=sim.path, protocol="mt-sics", poll_interval_s=0.05,
                          stable_window_s=0.3)
        comp = ScaleComponent(cfg, outbox, listeners=[broken, seen.append])
        stop = threading.Event()
        thread = threading.Thread(target=comp.run, args=(stop,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not any(e.kind == "removed" for e in seen):
            time.sleep(0.05)
        status = comp.status()
        stop.set()
        thread.join(3)
    kinds = [e.kind for e in seen]
    assert kinds == ["placed", "stable", "removed"], kinds
    stable = seen[1]
    assert stable.scale == "deli" and abs(stable.weight_kg - 0.412) < 1e-9 and stable.mono <= time.monotonic()
    assert status["listener_errors"] == 3 and status["connected"] and status["counters"]["frames"] > 10
    assert status["events"] == {"placed": 1, "stable": 1, "removed": 1}
    bodies = outbox_bodies(db)
    assert [b["event"] for b in bodies] == kinds
    assert bodies[1]["weight_kg"] == 0.412 and bodies[1]["scale"] == "deli"


def test_events_to_the_cloud_are_rate_limited(tmp_path: Path) -> None:
    db = open_store(tmp_path)
    outbox = Outbox(db, store_id="s1", boot_id="boot-test", priority_for=SyncConfig().priority_for, connect=connect)
    cfg = ScaleConfig(name="s1", port="/dev/null", protocol="mt-sics", max_events_per_minute=3)
    comp = ScaleComponent(cfg, outbox)
    seen: list[ScaleEvent] = []
    comp.listeners.append(seen.append)
    from devices.scale.reading import Reading

    t = 0.0
    for _ in range(4):  # flapping: on, off, on, off ...
        for kg in (0.5, 0.0):
            for _ in range(8):
                t += 0.1
                comp._on_reading(Reading(weight_kg=kg), t)
    assert len(seen) == 12 and comp.published == 3 and comp.suppressed == 9
    assert len(outbox_bodies(db)) == 3
    outbox.close()
