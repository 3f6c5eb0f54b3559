"""Broker crashes under load: a real agent keeps producing while mosquitto is SIGKILLed and restarted.

Proves the store-and-forward contract end to end (real Agent, real SQLite outbox, real mosquitto, the
reference cloud receiver): nothing enqueued is lost across broker crashes, the cloud sees every seq of the
stream exactly once after deduplication, duplicates stay bounded per outage, and the client reconnects
after each crash. The broker runs without persistence, so a crash also loses whatever it held; the cloud
receiver is disconnected during the outage too, as it would be in production.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sync.cloud.store import CloudStore
from tests.support.agent_stack import cloud_msg_ids, start_agent, start_cloud, wait_until, write_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.sync_faults import Producer, cloud_duplicates, sync_restarts, sync_status

STORE = "store-outage"
STREAM = "events/test"
RATE = 200  # msg/s: batches of 10 every 50 ms
OUTAGE_S = 8.0
DRAIN_TIMEOUT_S = 60.0
MAX_DUPLICATES_PER_OUTAGE = 20


def _config(tmp_path: Path, broker_url: str, **sync: object) -> Path:
    # cloud_ack_timeout_s: rows the broker PUBACKed but that never reached the cloud (lost in the crash, or no
    # subscriber while the receiver was still reconnecting) are re-sent after this long, doubling per attempt.
    # The default (120 s) would make the test wait minutes.
    # drain_rate_msgs_per_s: the in-process reference receiver stores ~800-1000 msg/s on this box; an
    # unlimited catch-up burst let it lag seconds behind, so rows it was about to store reached
    # cloud_ack_timeout_s and were sent again (tens of duplicates with no crash involved). The rate limit
    # is the contract's tool for protecting the cloud during backlog drains.
    keys = {"require_cloud_ack": True, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0, "cloud_ack_timeout_s": 3.0,
            "drain_rate_msgs_per_s": 600, **sync}
    return write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=tmp_path / "data", broker_url=broker_url,
                        sync=keys, health={"interval_s": 3600.0})


def _wait_steady(agent, receiver, max_rate: float, timeout_s: float = 30.0) -> float:  # noqa: ANN001
    """Wait until the cloud is connected and the agent publishes no faster than ``max_rate`` over the last
    0.6 s, i.e. no backlog burst (reconnect re-send or re-send timer) is in progress; returns the wait.

    The crash should hit the 200 msg/s stream, not a catch-up burst: what the cloud stored just before the
    crash but could not acknowledge is sent again, so duplicates scale with the rate at the moment of the
    crash (one receiver batch), not only with max_inflight."""
    t0 = time.monotonic()
    samples: list[tuple[float, int]] = []
    while time.monotonic() - t0 < timeout_s:
        now, published = time.monotonic(), sync_status(agent).get("published", 0)
        samples = [x for x in samples if now - x[0] <= 0.6] + [(now, published)]
        span = now - samples[0][0]
        if receiver.ready.is_set() and span >= 0.5 and (published - samples[0][1]) / span <= max_rate:
            return now - t0
        time.sleep(0.1)
    pytest.fail(f"link never steady within {timeout_s} s: {_backlog(agent)}")


def _outage(broker: MosquittoBroker, receiver, agent, down_s: float) -> dict[str, float]:  # noqa: ANN001
    """SIGKILL the broker, keep it down ``down_s``, restart it on the same port, wait for both clients."""
    connects_before = sync_status(agent).get("connects", 0)
    t0 = time.monotonic()
    broker.kill()
    assert wait_until(lambda: not sync_status(agent).get("connected"), 5), "agent did not notice the crash"
    time.sleep(max(0.0, down_s - (time.monotonic() - t0)))
    broker.restart()
    t_up = time.monotonic()
    assert wait_until(lambda: sync_status(agent).get("connects", 0) > connects_before, 10), \
        "agent did not reconnect after the broker came back"
    t_agent = time.monotonic()
    # The reference receiver backs off up to 10 s between attempts; wait for it like production would.
    assert wait_until(receiver.ready.is_set, 15), "cloud receiver did not reconnect"
    return {"down_s": round(t_up - t0, 2), "agent_reconnect_s": round(t_agent - t_up, 2),
            "cloud_reconnect_s": round(time.monotonic() - t_up, 2)}


def _backlog(agent) -> list[tuple]:  # noqa: ANN001
    """What is left in the outbox: (state, attempts, rows, first seq, last seq, seconds since last send)."""
    conn = sqlite3.connect(f"file:{agent.db_path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT state, attempts, COUNT(*), MIN(seq), MAX(seq), ROUND(? - MAX(sent_at), 1)"
                            " FROM outbox GROUP BY state, attempts", (time.time(),)).fetchall()
    finally:
        conn.close()


def _assert_all_delivered(cloud_db: Path, produced: list[str]) -> dict[str, object]:
    assert len(set(produced)) == len(produced)
    missing = set(produced) - cloud_msg_ids(cloud_db, STORE, STREAM)
    assert not missing, f"{len(missing)} of {len(produced)} enqueued messages never reached the cloud"
    store = CloudStore(cloud_db)
    try:
        gaps = store.gaps(STORE, STREAM)
        count, lo, hi = store.conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM messages WHERE store_id = ?"
                                           " AND stream = ?", (STORE, STREAM)).fetchone()
    finally:
        store.close()
    assert gaps == [], f"sequence gaps in the cloud: {gaps}"
    assert (count, lo, hi) == (len(produced), 1, len(produced)), "cloud seqs are not exactly 1..N"
    return {"messages": count, "duplicates": cloud_duplicates(cloud_db, STORE, STREAM)}


@pytest.mark.fault
@pytest.mark.timeout(170)
def test_three_broker_crashes_during_200_msgs_per_s_lose_nothing(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """3 × (SIGKILL, 8 s down, restart) while producing 200 msg/s: every msg_id reaches the cloud, seqs are
    contiguous 1..N, at most 20 duplicates per outage, and the client reconnected after every crash.

    Each crash waits for a steady link first (see ``_wait_steady``); the receiver comes back ~7.5 s after the
    broker (its own backoff), so the agent also publishes into a broker with no subscriber for a while and
    has to re-send those rows once the cloud has not confirmed them."""
    receiver, cloud = start_cloud(mosquitto.url, tmp_path / "cloud.db")
    agent, running = start_agent(_config(tmp_path, mosquitto.url))
    producer = Producer(agent.outbox, STREAM, batch=10, period_s=0.05)
    try:
        assert wait_until(lambda: sync_status(agent).get("connected"), 10), "agent never connected"
        producer.start()
        t_start = time.monotonic()
        time.sleep(1.0)
        outages = []
        dup_marks = []
        for _ in range(3):
            steady_s = _wait_steady(agent, receiver, max_rate=1.5 * RATE)
            dup_marks.append(cloud_duplicates(tmp_path / "cloud.db", STORE, STREAM))
            outages.append({**_outage(mosquitto, receiver, agent, OUTAGE_S), "waited_steady_s": round(steady_s, 1)})
        produced = list(producer.stop())
        rate = len(produced) / (time.monotonic() - t_start)
        t_drain = time.monotonic()
        assert wait_until(lambda: agent.outbox.depth() == 0, DRAIN_TIMEOUT_S, interval_s=0.2), \
            f"outbox not drained within {DRAIN_TIMEOUT_S} s: {_backlog(agent)}"
        drain_s = time.monotonic() - t_drain
        result = _assert_all_delivered(tmp_path / "cloud.db", produced)
        dup_marks.append(result["duplicates"])
        # Duplicates counted from each crash until the next one (the last one: until drained).
        per_outage = [b - a for a, b in zip(dup_marks, dup_marks[1:])]
        status = sync_status(agent)
        print(f"\n[broker outage x3] produced={len(produced)} at {rate:.0f} msg/s; outages={outages}; "
              f"drain after production={drain_s:.1f} s; cloud duplicates={result['duplicates']} "
              f"(per outage {per_outage}; receiver counted {receiver.counts['duplicates']}); connects={status['connects']}; "
              f"max enqueue latency={producer.max_enqueue_s * 1000:.0f} ms")
        assert rate > 150, f"producer only reached {rate:.0f} msg/s"
        assert dup_marks[0] == 0, f"{dup_marks[0]} duplicates before any fault"
        assert all(d <= MAX_DUPLICATES_PER_OUTAGE for d in per_outage), f"duplicates per outage: {per_outage}"
        assert result["duplicates"] <= 3 * MAX_DUPLICATES_PER_OUTAGE
        assert sync_restarts(agent) == 0, "the sync component crashed instead of reconnecting"
        assert status["connects"] >= 4
        assert status["connected"]
    finally:
        producer.halt()
        running.stop()
        cloud.stop()
        agent.close()


@pytest.mark.fault
@pytest.mark.timeout(90)
def test_broker_crash_with_mqtt_311_loses_nothing(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """Same guarantee over MQTT 3.1.1 (no v5 properties, no reason codes): one 3 s crash, nothing lost."""
    receiver, cloud = start_cloud(mosquitto.url, tmp_path / "cloud.db")
    agent, running = start_agent(_config(tmp_path, mosquitto.url, protocol="3.1.1"))
    producer = Producer(agent.outbox, STREAM, batch=10, period_s=0.05)
    try:
        assert wait_until(lambda: sync_status(agent).get("connected"), 10), "agent never connected"
        assert sync_status(agent)["protocol"] == "3.1.1"
        producer.start()
        time.sleep(1.5)
        _wait_steady(agent, receiver, max_rate=1.5 * RATE)
        outage = _outage(mosquitto, receiver, agent, 3.0)
        time.sleep(1.0)
        produced = list(producer.stop())
        assert wait_until(lambda: agent.outbox.depth() == 0, DRAIN_TIMEOUT_S, interval_s=0.2), \
            f"outbox not drained within {DRAIN_TIMEOUT_S} s: {_backlog(agent)}"
        result = _assert_all_delivered(tmp_path / "cloud.db", produced)
        status = sync_status(agent)
        print(f"\n[broker outage, 3.1.1] produced={len(produced)}; outage={outage}; "
              f"cloud duplicates={result['duplicates']}; connects={status['connects']}")
        assert result["duplicates"] <= MAX_DUPLICATES_PER_OUTAGE
        assert status["connects"] >= 2
    finally:
        producer.halt()
        running.stop()
        cloud.stop()
        agent.close()
