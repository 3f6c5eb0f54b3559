"""The CLI contracts a deployment is validated with: command names, `demo --json`, `bench sync --json`,
`keys generate`, `config validate`, `cloud send`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agent_stack import make_signing_key, start_agent, start_cloud, write_config

pytestmark = pytest.mark.timeout(180)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_spine_commands():
    out = cli("--help").stdout
    for name in ("run", "demo", "status", "doctor", "config", "sync", "cloud", "keys", "bench", "models", "replay",
                 "eval", "report"):
        assert f" {name} " in out, name


SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_demo_json_shows_telemetry_acknowledged_and_commands_applied(mosquitto, tmp_path):
    result = cli("demo", "--duration", "3", "--json", "--workdir", str(tmp_path / "demo"), "--mirror", str(SHARED))
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["errors"] == []
    health = summary["streams"]["telemetry/health"]
    assert health["enqueued"] >= 2 and health["acked"] == health["enqueued"]
    # the core sends 2 commands; demo parts (faces: watchlist.upsert, config.update) send their own
    assert summary["commands"]["sent"] == summary["commands"]["applied"] >= 2
    assert summary["cloud"]["telemetry/health"]["received"] == health["enqueued"]
    assert summary["cloud"]["telemetry/health"]["gaps"] == []
    camera = summary["camera"]  # the sample video ran through the people-analytics pipeline
    assert camera["frames"] > 20 and camera["inferences"] > 5
    assert camera["aggregates_at_cloud"] == camera["aggregates"] >= 1
    assert set(camera["latest_aggregate"]["lines"]) == {"aisle-entry"}


def test_demo_uses_a_given_broker(mosquitto, tmp_path):
    # The spine alone: no camera, no demo parts (they have their own tests).
    result = cli("demo", "--duration", "1", "--json", "--broker", mosquitto.url, "--workdir", str(tmp_path / "d"),
                 "--no-camera", "--skip", "scale", "--skip", "labels", "--skip", "faces")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["commands"]["applied"] == 2


def test_bench_sync_prints_the_contract_keys(tmp_path):
    result = cli("bench", "sync", "--rate", "200", "--backlog", "2000", "--seconds", "1", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    for key in ("enqueue_p50_ms", "enqueue_p99_ms", "cpu_cores", "drain_msgs_per_s", "rss_growth_mb"):
        assert isinstance(figures[key], (int, float)), key
    assert figures["drain_msgs_per_s"] > 0 and figures["enqueue_p50_ms"] > 0


def test_keys_generate_writes_a_private_key_only_the_owner_can_read(tmp_path):
    result = cli("keys", "generate", "--key-id", "k1", "--out-dir", str(tmp_path))
    assert result.returncode == 0
    assert (tmp_path / "k1.key").stat().st_mode & 0o077 == 0
    assert len((tmp_path / "k1.pub").read_text().strip()) == 44  # base64 of 32 bytes
    assert cli("keys", "generate", "--key-id", "k1", "--out-dir", str(tmp_path)).returncode == 1  # no clobber


def test_config_validate_reports_field_path_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('store_id = "Store_1"\n\n[sync]\nkeepalive_s = 1\n')
    result = cli("config", "validate", str(bad))
    assert result.returncode == 1
    assert "bad.toml:1: store_id" in result.stderr
    assert "bad.toml:4: sync.keepalive_s" in result.stderr
    good = tmp_path / "good.toml"
    good.write_text('store_id = "store-1"\n')
    assert cli("config", "validate", str(good)).returncode == 0


def test_config_show_masks_secrets(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('store_id = "s1"\n[sync]\npassword_file = "/etc/store-agent/mqtt-password"\n')
    shown = json.loads(cli("config", "show", "--config", str(path)).stdout)
    assert "/etc/store-agent/mqtt-password" not in json.dumps(shown)
    assert shown["store_id"] == "s1"


def test_config_schema_is_json_schema():
    schema = json.loads(cli("config", "schema").stdout)
    assert schema["properties"]["store_id"]["title"]


def test_cloud_send_applies_with_a_trusted_key_and_is_refused_with_another(mosquitto, tmp_path):
    key = make_signing_key(tmp_path)
    config = write_config(tmp_path / "a.toml", store_id="s1", data_dir=tmp_path / "data", broker_url=mosquitto.url,
                          public_key_b64=key.public_b64)
    _, cloud = start_cloud(mosquitto.url, tmp_path / "cloud.db")
    agent, running = start_agent(config)
    try:
        ok = cli("cloud", "send", "ping", "--store", "s1", "--body", '{"echo": 7}', "--key", str(key.path),
                 "--broker", mosquitto.url, "--db", str(tmp_path / "cloud.db"))
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["result"]["echo"] == 7
        other = make_signing_key(tmp_path / "other") if (tmp_path / "other").mkdir() is None else None
        refused = cli("cloud", "send", "ping", "--store", "s1", "--key", str(other.path), "--key-id", "intruder",
                      "--broker", mosquitto.url)
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["reason"] == "untrusted_key"
    finally:
        running.stop()
        agent.close()
        cloud.stop()


def test_demo_runs_on_the_embedded_broker_over_mqtt_311(tmp_path):
    """Where mosquitto is missing the demo falls back to the embedded amqtt broker (MQTT 3.1.1 only): the
    agent and the reference cloud must work over 3.1.1 too (no shared subscriptions, no properties)."""
    from agent.broker import EmbeddedBroker
    from agent.demo import run_demo

    broker = EmbeddedBroker().start()
    try:
        summary = run_demo(2, workdir=tmp_path / "demo", broker_url=broker.url, protocol="3.1.1", camera=False,
                           skip=frozenset({"scale", "labels", "faces"}))
    finally:
        broker.stop()
    assert summary["errors"] == []
    assert summary["commands"]["applied"] == 2
    health = summary["streams"]["telemetry/health"]
    assert health["acked"] == health["enqueued"] >= 2
