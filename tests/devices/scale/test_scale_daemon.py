"""The scale inside the real daemon: a ``[[scales]]`` table starts ``scale-<name>``, which survives an
unplugged adapter without a restart, feeds the listener hook and ``events/scale``, and follows config reloads."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from agent.config import load_config
from agent.daemon.agent import Agent
from devices.scale.sim import ScaleSimulator


def wait_until(cond, timeout: float = 8.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def scale_detail(agent: Agent, name: str = "scale-deli") -> dict:
    entry = next((c for c in agent.status()["components"] if c["name"] == name), None)
    return (entry or {}).get("detail") or {}


def test_scale_component_in_the_daemon(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB-deli"
    config = tmp_path / "agent.toml"
    scale_table = (f'[[scales]]\nname = "deli"\nport = "{link}"\nprotocol = "scp01"\npoll_interval_s = 0.05\n'
                   "reply_timeout_s = 0.2\nstable_window_s = 0.3\n")
    config.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n\n[sync]\nenabled = false\n\n'
                      + scale_table, encoding="utf-8")
    with ScaleSimulator("scp01", link=link, unit="kg") as sim:
        agent = Agent(config)
        events = []
        agent.scale_listeners["deli"].append(events.append)
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        try:
            assert wait_until(lambda: scale_detail(agent).get("connected"))
            sim.set_weight(0.25)
            assert wait_until(lambda: any(e.kind == "stable" for e in events))
            sim.unplug(replug_after_s=0.5)
            assert wait_until(lambda: scale_detail(agent).get("counters", {}).get("reconnects", 0) >= 1)
            sim.set_weight(0.0)
            assert wait_until(lambda: any(e.kind == "removed" for e in events))
            detail = scale_detail(agent)
            entry = next(c for c in agent.status()["components"] if c["name"] == "scale-deli")
            assert entry["state"] == "running" and entry["restarts"] == 0
            assert detail["counters"]["disconnects"] >= 1 and detail["weight_kg"] == 0.0
            assert detail["listener_errors"] == 0  # the products hook is attached and quiet without a camera
            assert agent.scale_listeners["deli"][0] == agent.products.on_scale_event

            # a config reload that changes the scale restarts its component with the new settings
            config.write_text(config.read_text().replace("stable_window_s = 0.3", "stable_window_s = 0.2"))
            agent._queue_reload(load_config(config))
            assert wait_until(lambda: scale_detail(agent).get("connected")
                              and scale_detail(agent).get("counters", {}).get("reconnects") == 0)
        finally:
            stop.set()
            thread.join(15)
            agent.close()
    assert [e.kind for e in events][:2] == ["placed", "stable"] and "removed" in [e.kind for e in events]
    conn = sqlite3.connect(agent.db_path)
    try:
        bodies = [json.loads(r[0]) for r in conn.execute(
            "SELECT body FROM outbox WHERE stream = 'events/scale' ORDER BY id").fetchall()]
    finally:
        conn.close()
    bodies = [b.get("body", b) for b in bodies]
    assert [b["event"] for b in bodies][:2] == ["placed", "stable"] and bodies[1]["weight_kg"] == 0.25
