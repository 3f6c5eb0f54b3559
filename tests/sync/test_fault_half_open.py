"""Half-open links: the TCP connection stays up but nothing gets through (NAT/firewall drops the flow).

The agent reaches mosquitto through a fault-injecting TCP proxy; ``blackhole()`` swallows every byte both
ways without closing anything, so the kernel never reports an error. paho alone notices only after two
keepalives; the sync client must drop the link after 1.5 × keepalive of silence from the broker, then
reconnect when the path is back and drain its backlog in per-stream order. The cloud receiver is connected
directly to the broker and stays healthy throughout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.agent_stack import cloud_msg_ids, start_agent, start_cloud, wait_until, write_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.sync_faults import (Producer, cloud_duplicates, cloud_seqs_in_received_order,
                                       first_occurrences_increasing, sync_status)

STORE = "store-halfopen"
STREAM = "events/test"
KEEPALIVE_S = 5  # the minimum the config allows
DETECT_LIMIT_S = 1.5 * KEEPALIVE_S + 1.0  # 8.5 s


def _config(tmp_path: Path, proxy_port: int) -> Path:
    return write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=tmp_path / "data",
                        broker_url=f"mqtt://127.0.0.1:{proxy_port}",
                        sync={"keepalive_s": KEEPALIVE_S, "require_cloud_ack": True, "reconnect_min_s": 0.1,
                              "reconnect_max_s": 1.0, "cloud_ack_timeout_s": 3.0},
                        health={"interval_s": 3600.0})


def _time_to_detect(agent, t_blackhole: float, half_open_before: int, timeout_s: float = 20.0) -> tuple[float, dict]:  # noqa: ANN001
    """Seconds from the blackhole until the client counts a half-open link or reports itself disconnected."""
    deadline = t_blackhole + timeout_s
    while time.monotonic() < deadline:
        status = sync_status(agent)
        if status.get("half_open_detected", 0) > half_open_before or not status.get("connected", True):
            return time.monotonic() - t_blackhole, status
        time.sleep(0.02)
    pytest.fail(f"half-open link not detected within {timeout_s} s: {sync_status(agent)}")


@pytest.mark.fault
@pytest.mark.timeout(120)
def test_half_open_link_under_load_detected_within_1_5_keepalive_and_backlog_drains_in_order(
        tmp_path: Path, mosquitto: MosquittoBroker, tcp_proxy_factory) -> None:  # noqa: ANN001
    proxy = tcp_proxy_factory("127.0.0.1", mosquitto.port)
    receiver, cloud = start_cloud(mosquitto.url, tmp_path / "cloud.db")
    agent, running = start_agent(_config(tmp_path, proxy.port))
    producer = Producer(agent.outbox, STREAM, batch=5, period_s=0.1)  # 50 msg/s
    try:
        assert wait_until(lambda: sync_status(agent).get("connected"), 10), "agent never connected via the proxy"
        producer.start()
        assert wait_until(lambda: len(cloud_msg_ids(tmp_path / "cloud.db", STORE, STREAM)) >= 50, 10), \
            "nothing flowed before the fault"
        before = sync_status(agent)
        assert before["connected"] and before["half_open_detected"] == 0

        proxy.blackhole()
        t_blackhole = time.monotonic()
        detect_s, at_detect = _time_to_detect(agent, t_blackhole, before["half_open_detected"])
        # Detected by the client's own silence check, not by paho or a socket error (the proxy closes nothing).
        assert wait_until(lambda: sync_status(agent).get("half_open_detected", 0) == 1, 2), sync_status(agent)
        assert not sync_status(agent)["connected"]
        assert detect_s <= DETECT_LIMIT_S, f"half-open link detected after {detect_s:.2f} s (limit {DETECT_LIMIT_S})"

        time.sleep(2.0)  # keep producing while the link is still dead (reconnects are swallowed too)
        depth_offline = agent.outbox.depth()
        proxy.restore()
        t_restore = time.monotonic()
        assert wait_until(lambda: sync_status(agent).get("connected"), 15), "no reconnect after restore"
        reconnect_s = time.monotonic() - t_restore
        time.sleep(1.0)
        produced = list(producer.stop())

        assert wait_until(lambda: agent.outbox.depth() == 0, 40, interval_s=0.2), \
            f"backlog not drained: depth {agent.outbox.depth()}"
        missing = set(produced) - cloud_msg_ids(tmp_path / "cloud.db", STORE, STREAM)
        assert not missing, f"{len(missing)} of {len(produced)} messages never reached the cloud"
        seqs = cloud_seqs_in_received_order(tmp_path / "cloud.db", STORE, STREAM)
        ok, why = first_occurrences_increasing(seqs)
        assert ok, f"backlog drained out of order: {why}"
        assert sorted(seqs) == list(range(1, len(produced) + 1))
        duplicates = cloud_duplicates(tmp_path / "cloud.db", STORE, STREAM)
        print(f"\n[half-open under load] detected after {detect_s:.2f} s (limit {DETECT_LIMIT_S} s; "
              f"last_error={at_detect.get('last_error')!r}); backlog at restore={depth_offline}; "
              f"reconnect after restore={reconnect_s:.2f} s; produced={len(produced)}; duplicates={duplicates}")
    finally:
        producer.halt()
        running.stop()
        cloud.stop()
        agent.close()


@pytest.mark.fault
@pytest.mark.timeout(60)
def test_half_open_link_when_idle_detected_without_traffic(tmp_path: Path, mosquitto: MosquittoBroker,
                                                           tcp_proxy_factory) -> None:  # noqa: ANN001
    """No messages to send: only PINGREQ goes out and no PINGRESP comes back; still detected in time."""
    proxy = tcp_proxy_factory("127.0.0.1", mosquitto.port)
    agent, running = start_agent(_config(tmp_path, proxy.port))
    try:
        assert wait_until(lambda: sync_status(agent).get("connected"), 10), "agent never connected via the proxy"
        time.sleep(KEEPALIVE_S + 1.0)  # at least one PINGREQ/PINGRESP round on the healthy link
        before = sync_status(agent)
        assert before["connected"] and before["half_open_detected"] == 0, before
        published = before["published"]

        proxy.blackhole()
        t_blackhole = time.monotonic()
        detect_s, _ = _time_to_detect(agent, t_blackhole, 0)
        assert wait_until(lambda: sync_status(agent).get("half_open_detected", 0) == 1, 2), sync_status(agent)
        assert detect_s <= DETECT_LIMIT_S, f"idle half-open link detected after {detect_s:.2f} s"
        assert sync_status(agent)["published"] == published, "the idle test was not idle"

        proxy.restore()
        assert wait_until(lambda: sync_status(agent).get("connected"), 15), "no reconnect after restore"
        assert sync_status(agent)["connects"] == 2
        print(f"\n[half-open idle] detected after {detect_s:.2f} s (limit {DETECT_LIMIT_S} s)")
    finally:
        running.stop()
        agent.close()
