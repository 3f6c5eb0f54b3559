"""``store-agent esl pick`` / ``find`` / ``labels``: through the running daemon's control socket (one place
allocates colours), and directly against the gateway when no daemon runs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agent.cli.main import app
from tests.esl.conftest import macs, wait_until
from tests.support.agent_stack import start_agent


def write_config(path: Path, data_dir: Path, ap_url: str) -> Path:
    path.write_text(f"""store_id = "s1"
data_dir = "{data_dir}"

[sync]
enabled = false
broker = "mqtt://127.0.0.1:1"

[[esl_gateways]]
name = "gw"
url = "{ap_url}"
checkin_interval_s = 0.1
poll_interval_s = 0.5
""")
    return path


def cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.stdout.strip(), result.output
    return {"exit": result.exit_code, **json.loads(result.stdout.strip().splitlines()[-1])}


def test_pick_and_find_through_the_daemon_then_directly(tmp_path: Path, ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(3), hw_type=1)
    config = write_config(tmp_path / "agent.toml", tmp_path / "data", ap.url)
    agent, running = start_agent(config)
    try:
        assert wait_until(lambda: agent.esl.components.get("gw") is not None
                          and agent.esl.components["gw"].status().get("labels") == 3, 10)
        with agent._read_lock:
            agent._read_conn.execute("UPDATE esl_labels SET plu = CAST(1000 + CAST(substr(mac, 11) AS INTEGER)"
                                     " AS TEXT), aisle = '7', shelf = 1, slot = 2")
        a = cli("esl", "pick", "A1", "--plus", "1000,1001", "-c", str(config))
        b = cli("esl", "pick", "B2", "--plus", "1002", "-c", str(config))
        assert a["via"] == b["via"] == "daemon"
        assert a["colour"] != b["colour"] and [o["status"] for o in a["labels"]] == ["sent", "sent"]
        assert wait_until(lambda: ap.field.tags[macs(3)[2]].led is not None, 3)
        assert ap.field.tags[macs(3)[2]].led["colour"] == b["colour"]
        taken = cli("esl", "pick", "C3", "--plus", "1002", "--color", a["colour"], "-c", str(config))
        assert taken["exit"] == 1 and taken["reason"] == "colour_in_use"
        found = cli("esl", "find", "1001", "-c", str(config))
        assert found["labels"][0]["position"] == "aisle 7, shelf 1, slot 2"
        unknown = cli("esl", "find", "999", "-c", str(config))
        assert unknown["exit"] == 1 and unknown["reason"] == "unknown_plu"
    finally:
        running.stop()
        agent.close()
    direct = cli("esl", "pick", "D4", "--plus", "1000", "-c", str(config))
    assert direct["via"] == "direct" and direct["colour"] not in (a["colour"], b["colour"])
    assert direct["labels"][0]["status"] == "sent"
    done = cli("esl", "pick", "A1", "--done", "-c", str(config))
    assert done["done"] is True


def test_gateway_config_changes_apply_without_a_restart(tmp_path: Path, ap_factory) -> None:
    from agent.config import load_config

    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(1), hw_type=1)
    config = write_config(tmp_path / "agent.toml", tmp_path / "data", ap.url)
    agent, running = start_agent(config)
    try:
        assert wait_until(lambda: agent.esl.components.get("gw") is not None, 10)
        first = agent.esl.components["gw"]
        gateway = {"name": "gw", "url": ap.url, "checkin_interval_s": 0.1,
                   "fridge_groups": [{"name": "dairy", "max_c": 7.5}]}
        agent._queue_reload(load_config(config, overlay={"esl_gateways": [gateway]}))
        assert wait_until(lambda: agent.esl.components["gw"] is not first
                          and agent.esl.components["gw"].cfg.fridge_groups[0].max_c == 7.5, 10)
        assert wait_until(lambda: agent.esl.components["gw"].status().get("labels") == 1, 10)
        agent._queue_reload(load_config(config, overlay={"esl_gateways": []}))
        assert wait_until(lambda: "gw" not in agent.esl.components and "gw" not in agent.esl.backends, 10)
    finally:
        running.stop()
        agent.close()
