"""TLS and per-store isolation with the agent's own sync client and the reference cloud, on a mosquitto
configured like production: mutual TLS, ``use_identity_as_username``, the ACL in configs/mosquitto/."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sync.cloud.receiver import CloudReceiver, ReceiverSettings
from sync.outbox import OutboxItem
from sync.settings import TlsSettings
from tests.support.agent_stack import RunningThread, cloud_msg_ids, start_agent, wait_until, write_config

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def tls_broker(mosquitto_factory, pki, acl_stores_file):
    return mosquitto_factory(tls=pki, require_certificate=True, use_identity_as_username=True,
                             acl_file=acl_stores_file, allow_anonymous=False)


def _agent_config(tmp_path: Path, broker, *, store_id: str, ca: Path, cert: Path | None, key: Path | None,
                  name: str) -> Path:
    tls = {"ca_file": ca}
    if cert is not None:
        tls |= {"cert_file": cert, "key_file": key}
    return write_config(tmp_path / f"{name}.toml", store_id=store_id, data_dir=tmp_path / name,
                        broker_url=f"mqtts://127.0.0.1:{broker.port}",
                        sync={"tls": tls, "require_cloud_ack": True})


def _tls_cloud(broker, pki, db: Path) -> tuple[CloudReceiver, RunningThread]:
    cert, key = pki.client("cloud")
    receiver = CloudReceiver(ReceiverSettings(host="127.0.0.1", port=broker.port, client_id="cloud",
                                              tls=TlsSettings(enabled=True, ca_file=pki.ca_file, cert_file=cert,
                                                              key_file=key)), db)
    running = RunningThread(receiver).start()
    assert receiver.ready.wait(10), "TLS cloud receiver did not connect"
    return receiver, running


def test_store_with_its_certificate_delivers_end_to_end_over_mutual_tls(tmp_path, tls_broker, pki):
    _, cloud = _tls_cloud(tls_broker, pki, tmp_path / "cloud.db")
    cert, key = pki.client("store-a")
    agent, running = start_agent(_agent_config(tmp_path, tls_broker, store_id="store-a", ca=pki.ca_file, cert=cert,
                                               key=key, name="a"))
    try:
        ids = set(agent.outbox.enqueue_many([OutboxItem("events/test", {"i": i}) for i in range(50)]))
        assert wait_until(lambda: agent.outbox.depth() == 0, 20), agent.status()
        assert ids <= cloud_msg_ids(tmp_path / "cloud.db", "store-a")
        assert agent.status()["broker_connected"]
    finally:
        running.stop()
        agent.close()
        cloud.stop()


def test_client_trusting_the_wrong_ca_is_refused(tmp_path, tls_broker, pki):
    cert, key = pki.client("store-a")
    agent, running = start_agent(_agent_config(tmp_path, tls_broker, store_id="store-a", ca=pki.wrong_ca_file,
                                               cert=cert, key=key, name="wrongca"))
    try:
        sync = lambda: agent.supervisor.component("sync")  # noqa: E731
        assert wait_until(lambda: sync() is not None and "certificate verify failed" in str(sync().status()["last_error"]), 10)
        assert sync().status()["connects"] == 0
    finally:
        running.stop()
        agent.close()


def test_client_without_certificate_is_refused(tmp_path, tls_broker, pki):
    agent, running = start_agent(_agent_config(tmp_path, tls_broker, store_id="store-a", ca=pki.ca_file, cert=None,
                                               key=None, name="anon"))
    try:
        sync = lambda: agent.supervisor.component("sync")  # noqa: E731
        assert wait_until(lambda: sync() is not None and sync().status()["last_error"] is not None, 10)
        threading.Event().wait(1.0)
        assert sync().status()["connects"] == 0
        assert not agent.status()["broker_connected"]
    finally:
        running.stop()
        agent.close()


def test_store_a_cannot_publish_or_receive_under_store_b(tmp_path, tls_broker, pki, mqtt_client_factory):
    """An agent configured as store-b but holding store-a's certificate: the broker refuses every publish
    (PUBACK 0x87), the agent moves them to dead letters instead of retrying forever or losing them silently,
    and it never receives store-b's commands."""
    cloud_cert, cloud_key = pki.client("cloud")
    spy = mqtt_client_factory("spy", ca_file=pki.ca_file, certfile=cloud_cert, keyfile=cloud_key)
    spy.connect("127.0.0.1", tls_broker.port)
    spy.subscribe("stores/store-b/up/#", qos=1)
    cert, key = pki.client("store-a")
    agent, running = start_agent(_agent_config(tmp_path, tls_broker, store_id="store-b", ca=pki.ca_file, cert=cert,
                                               key=key, name="impostor"))
    try:
        agent.outbox.enqueue_many([OutboxItem("events/test", {"i": i}) for i in range(5)])
        assert wait_until(lambda: agent.status()["outbox"].get("events/test", {}).get("depth", 1) == 0, 15)
        with agent._read_lock:
            dead = agent._read_conn.execute("SELECT COUNT(*), MIN(reason) FROM outbox_dead").fetchone()
        assert dead[0] == 5 and "Not authorized" in dead[1]
        spy.assert_no_message(within=1.0)
        # The cloud publishes a command for store-b: the impostor holding store-a's identity must not get it.
        before = dict(agent.processor.counts)
        spy.publish("stores/store-b/down/cmd/ping", b"{}", qos=1)
        threading.Event().wait(1.0)
        assert agent.processor.counts == before
    finally:
        running.stop()
        agent.close()
