"""The daemon as systemd runs it: a real ``store-agent run`` process against a real mosquitto.

- SIGTERM and SIGINT stop it cleanly within 10 s (exit 0) and leave a retained ``online:false`` state with the
  boot_id of the birth;
- ``store-agent status --json`` (a second real process, over the control socket) reports running components,
  the broker connection and the outbox per stream; once the daemon is gone it falls back to the store;
- SIGKILL: the broker publishes the Will (``online:false``, same boot_id) as soon as the kernel closes the socket;
- ``config.update`` end to end through the reference cloud: applied (and actually reconfigures the health
  component), invalid values rejected ``invalid_config``, local-only keys rejected ``forbidden_key``, the
  applied config version unchanged by either rejection.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sync.cloud.sender import send_command
from sync.envelope import Topics
from tests.support.agent_stack import (
    agent_subprocess,
    cloud_msg_ids,
    cloud_settings,
    make_signing_key,
    start_cloud,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.timeout(90)]

STORE = "life-1"
KEEPALIVE_S = 5
REPO_ROOT = Path(__file__).resolve().parents[2]


def status_json(config: Path) -> tuple[int, dict[str, Any]]:
    """``store-agent status --json --config …`` as a real process: (exit code, parsed output)."""
    proc = subprocess.run([sys.executable, "-m", "agent.cli.main", "status", "--json", "--config", str(config)],
                          capture_output=True, timeout=20, cwd=REPO_ROOT)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"status printed no JSON (rc {proc.returncode}): {proc.stdout!r} {proc.stderr!r}")


def next_state(watcher: Any, timeout: float) -> dict[str, Any]:
    msg = watcher.expect_message(timeout=timeout, topic=Topics(STORE).state)
    return json.loads(msg.payload)


def retained_state(mqtt_client_factory: Any, broker: Any) -> dict[str, Any]:
    """What a client subscribing now gets: the retained state."""
    fresh = mqtt_client_factory("retained").connect(broker.host, broker.port)
    fresh.subscribe(Topics(STORE).state)
    return json.loads(fresh.expect_message(timeout=5, topic=Topics(STORE).state).payload)


@pytest.fixture
def daemon_config(tmp_path: Path, mosquitto: Any) -> tuple[Path, Any]:
    key = make_signing_key(tmp_path)
    config = write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=tmp_path / "data",
                          broker_url=mosquitto.url, public_key_b64=key.public_b64,
                          sync={"keepalive_s": KEEPALIVE_S}, health={"interval_s": 0.5})
    return config, key


@pytest.fixture
def daemon(daemon_config: tuple[Path, Any], tmp_path: Path):  # noqa: ANN201
    """Start the daemon lazily; always reaped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = agent_subprocess(daemon_config[0], log_path=tmp_path / "agent.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _born(watcher: Any) -> dict[str, Any]:
    state = next_state(watcher, timeout=15)
    assert state["online"] is True and state["store_id"] == STORE, state
    return state


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_daemon_cleanly_and_status_reports_it(sig: signal.Signals, daemon_config, daemon,
                                                           mosquitto, mqtt_client_factory, tmp_path) -> None:
    config, _ = daemon_config
    watcher = mqtt_client_factory("watch").connect(mosquitto.host, mosquitto.port)
    watcher.subscribe(Topics(STORE).state)
    proc = daemon()
    birth = _born(watcher)

    # status over the control socket while it runs
    seen: dict[str, Any] = {}

    def running_and_connected() -> bool:
        rc, info = status_json(config)
        seen.update(info, rc=rc)
        states = {c["name"]: c["state"] for c in info.get("components", [])}
        return (rc == 0 and info.get("running") is True and states.get("sync") == "running"
                and states.get("health") == "running" and info.get("broker_connected") is True
                and "telemetry/health" in info.get("outbox", {}))

    assert wait_until(running_and_connected, timeout_s=20, interval_s=0.2), f"status never showed it up: {seen}"
    assert seen["boot_id"] == birth["boot_id"] and seen["store_id"] == STORE and seen["pid"] == proc.pid
    assert {"depth", "enqueued", "acked", "shed", "priority"} <= set(seen["outbox"]["telemetry/health"])
    assert seen["outbox"]["telemetry/health"]["enqueued"] >= 1

    t0 = time.monotonic()
    proc.send_signal(sig)
    rc = proc.wait(10)
    stop_s = time.monotonic() - t0
    assert rc == 0, f"{sig.name}: exit code {rc}; log:\n{(tmp_path / 'agent.log').read_text()[-2000:]}"
    assert stop_s < 10

    goodbye = next_state(watcher, timeout=5)
    assert goodbye["online"] is False and goodbye["boot_id"] == birth["boot_id"], goodbye
    retained = retained_state(mqtt_client_factory, mosquitto)
    assert retained["online"] is False and retained["boot_id"] == birth["boot_id"], retained
    assert "clean=True" in (tmp_path / "agent.log").read_text()

    # no daemon: status falls back to the store and still exits 0
    rc, offline = status_json(config)
    assert rc == 0 and offline["running"] is False, offline
    assert offline["last_boot"]["boot_id"] == birth["boot_id"]
    assert offline["outbox"]["telemetry/health"]["enqueued"] >= seen["outbox"]["telemetry/health"]["enqueued"]
    assert not (config.parent / "data" / "control.sock").exists(), "control socket left behind"
    print(f"{sig.name}: stopped in {stop_s:.2f} s")


def test_sigkill_makes_the_broker_publish_the_will_with_the_birth_boot_id(daemon, mosquitto,
                                                                          mqtt_client_factory) -> None:
    watcher = mqtt_client_factory("watch").connect(mosquitto.host, mosquitto.port)
    watcher.subscribe(Topics(STORE).state)
    proc = daemon()
    birth = _born(watcher)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    will = next_state(watcher, timeout=1.5 * KEEPALIVE_S)
    will_s = time.monotonic() - t0
    assert will["online"] is False and will["boot_id"] == birth["boot_id"], will
    assert proc.wait(5) == -signal.SIGKILL
    retained = retained_state(mqtt_client_factory, mosquitto)
    assert retained["online"] is False and retained["boot_id"] == birth["boot_id"]
    print(f"Will after SIGKILL: {will_s:.3f} s")


def test_config_update_end_to_end_applied_invalid_and_forbidden(daemon_config, daemon, mosquitto,
                                                                mqtt_client_factory, tmp_path) -> None:
    config, key = daemon_config
    # Slow health at first, so the effect of the update is visible.
    config.write_text(config.read_text().replace("interval_s = 0.5", "interval_s = 60.0"))
    cloud_db = tmp_path / "cloud.db"
    receiver, cloud = start_cloud(mosquitto.url, cloud_db)
    watcher = mqtt_client_factory("watch").connect(mosquitto.host, mosquitto.port)
    watcher.subscribe(Topics(STORE).state)
    proc = daemon()
    try:
        birth = _born(watcher)
        assert birth["versions"]["config"] == 0
        # Let the cloud handle the birth first: had it recorded the command before, it would re-send it on that
        # birth (the store lacks its version) and the store would answer twice (applied, then duplicate).
        assert wait_until(lambda: receiver.counts["births"] >= 1, timeout_s=10)
        settings = cloud_settings(mosquitto.url)

        # 1. a valid update: applied, recorded, and the health component now runs at the new interval
        cmd = key.command("config.update", STORE, {"config": {"health": {"interval_s": 0.25}}}, version=7)
        result = send_command(settings, cmd, wait_s=15, db_path=cloud_db)
        assert result is not None, "no cmd-result for a valid config.update"
        assert result["status"] == "applied" and result["result"]["config_version"] == 7, result
        assert result["result"]["changed"] == ["health.interval_s"]
        rc, info = status_json(config)
        assert rc == 0 and info["config_version"] == 7
        assert wait_until(lambda: len(cloud_msg_ids(cloud_db, STORE, "telemetry/health")) >= 5, timeout_s=10), \
            "health telemetry did not speed up after the config.update"

        def health_interval() -> float | None:
            _, info = status_json(config)
            health = next((c for c in info.get("components", []) if c["name"] == "health"), {})
            return health.get("detail", {}).get("interval_s")

        assert health_interval() == 0.25

        # 2. an invalid value: rejected invalid_config, version unchanged
        bad = key.command("config.update", STORE, {"config": {"health": {"interval_s": -1}}}, version=8)
        result = send_command(settings, bad, wait_s=15, db_path=cloud_db)
        assert result is not None and result["status"] == "rejected", result
        assert result["reason"] == "invalid_config", result
        assert "interval_s" in result["detail"]

        # 3. a local-only key: rejected forbidden_key, version unchanged
        forbidden = key.command("config.update", STORE, {"config": {"sync": {"broker": "mqtt://evil:1883"}}},
                                version=9)
        result = send_command(settings, forbidden, wait_s=15, db_path=cloud_db)
        assert result is not None and result["status"] == "rejected", result
        assert result["reason"] == "forbidden_key" and "sync.broker" in result["detail"], result

        rc, info = status_json(config)
        assert rc == 0 and info["config_version"] == 7, info["config_version"]
        assert health_interval() == 0.25
        assert info["commands"].get("applied") == 1 and info["commands"].get("rejected") == 2, info["commands"]

        # 4. the overlay survives a restart of the process: the birth reports version 7 and the file's 60 s
        #    is still overridden.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert next_state(watcher, timeout=5)["online"] is False
        proc = daemon()
        reborn = _born(watcher)
        assert reborn["boot_id"] != birth["boot_id"] and reborn["versions"]["config"] == 7, reborn
        assert wait_until(lambda: health_interval() == 0.25, timeout_s=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        cloud.stop()
