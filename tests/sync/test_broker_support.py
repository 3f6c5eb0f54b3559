"""Proves the real-broker test infrastructure (tests/support + conftest) and
pins the mosquitto behaviour the sync code relies on.

Everything talks to a real mosquitto on 127.0.0.1 through raw paho-mqtt 2.x
clients (MQTT v5); every wait is bounded.
"""

from __future__ import annotations

import re
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.support.certs import TlsFiles
from tests.support.mosquitto import MosquittoBroker, port_accepts
from tests.support.mqttclient import MqttTestClient
from tests.support.proxy import TcpProxy

pytestmark = [pytest.mark.timeout(60)]

NOT_AUTHORIZED = 0x87  # 135
NO_MATCHING_SUBSCRIBERS = 0x10  # 16, success-class PUBACK reason code


@pytest.fixture
def clients(mqtt_client_factory):
    """Short alias: clients(prefix, **MqttTestClient kwargs)."""
    return mqtt_client_factory


# --------------------------------------------------------------------------
# Plain broker
# --------------------------------------------------------------------------


def test_plain_broker_round_trip(mosquitto: MosquittoBroker, clients) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert mosquitto.host == "127.0.0.1"
    sub = clients("sub").connect(mosquitto.host, mosquitto.port)
    pub = clients("pub").connect(mosquitto.host, mosquitto.port)
    assert sub.subscribe("t/#", qos=1) == [1]
    assert pub.publish("t/1", b"hello", qos=1) == 0
    msg = sub.expect_message(timeout=5)
    assert (msg.topic, msg.payload, msg.qos) == ("t/1", b"hello", 1)
    assert "New client connected" in mosquitto.log_text()


@pytest.mark.fault
def test_kill_then_restart_on_same_port_and_client_reconnects(mosquitto: MosquittoBroker, clients) -> None:
    port = mosquitto.port
    sub = clients("sub").connect(mosquitto.host, port)
    assert sub.subscribe("r/#") == [1]

    mosquitto.kill()
    assert not mosquitto.running
    sub.wait_disconnected(timeout=5)
    assert not port_accepts(mosquitto.host, port)

    mosquitto.restart()
    assert mosquitto.running and mosquitto.port == port and mosquitto.starts == 2

    # paho's network thread reconnects on its own (reconnect delay 0.1-0.5 s).
    sub.wait_connects(2, timeout=10)
    # No persistence: the session (and the subscription) died with the broker.
    assert sub.session_present[-1] is False
    assert sub.subscribe("r/#") == [1]
    pub = clients("pub").connect(mosquitto.host, port)
    assert pub.publish("r/1", b"after-restart") == 0
    assert sub.expect_message(timeout=5).payload == b"after-restart"


def test_graceful_stop_and_context_manager(tmp_path: Path, clients) -> None:
    from tests.support.mosquitto import mosquitto_available

    if not mosquitto_available():
        pytest.skip("mosquitto not installed")
    with MosquittoBroker(tmp_path / "b") as broker:
        c = clients("c").connect(broker.host, broker.port)
        port = broker.port
    assert not broker.running
    assert not port_accepts("127.0.0.1", port)
    c.wait_disconnected(timeout=5)


# --------------------------------------------------------------------------
# TCP proxy fault injection
# --------------------------------------------------------------------------


@pytest.mark.fault
def test_proxy_forward_round_trip(mosquitto: MosquittoBroker, tcp_proxy_factory, clients) -> None:
    proxy: TcpProxy = tcp_proxy_factory(mosquitto.host, mosquitto.port)
    assert proxy.port != mosquitto.port
    via_proxy = clients("px").connect(proxy.host, proxy.port)
    direct = clients("direct").connect(mosquitto.host, mosquitto.port)
    assert direct.subscribe("p/up") == [1]
    assert via_proxy.subscribe("p/down") == [1]

    assert via_proxy.publish("p/up", b"1") == 0
    assert direct.expect_message(5).payload == b"1"
    assert direct.publish("p/down", b"2") == 0
    assert via_proxy.expect_message(5).payload == b"2"
    assert proxy.connection_count == 1
    assert proxy.bytes_forwarded > 0


@pytest.mark.fault
def test_proxy_blackhole_is_a_half_open_link(mosquitto: MosquittoBroker, tcp_proxy_factory, clients) -> None:
    proxy: TcpProxy = tcp_proxy_factory(mosquitto.host, mosquitto.port)
    victim = clients("victim", keepalive=60).connect(proxy.host, proxy.port)
    observer = clients("observer").connect(mosquitto.host, mosquitto.port)
    assert observer.subscribe("bh/#") == [1]
    assert victim.publish("bh/before", b"ok") == 0
    assert observer.expect_message(5).topic == "bh/before"

    proxy.blackhole()
    mid = victim.publish_nowait("bh/lost", b"x", qos=1)
    assert victim.wait_puback(mid, timeout=2.0) is None  # no PUBACK ...
    # ... while the client still believes it is connected, socket open.
    assert victim.is_connected
    sock = victim.client.socket()
    assert sock is not None and sock.fileno() != -1
    observer.assert_no_message(within=0.5)  # nothing reached the broker
    assert proxy.bytes_swallowed > 0

    # New connections during the blackhole are accepted but never answered.
    late = clients("late")
    result = late.try_connect(proxy.host, proxy.port, timeout=1.0)
    assert not result.connected and result.error is None and result.reason_code is None
    late.close()

    proxy.restore()
    victim.wait_disconnected(timeout=5)  # restore() closed the dead flow
    fresh = clients("fresh").connect(proxy.host, proxy.port)
    assert fresh.publish("bh/after", b"ok") == 0
    assert observer.expect_message(5, topic="bh/after").payload == b"ok"


@pytest.mark.fault
def test_proxy_drop_all_resets_connections_and_paho_reconnects(
    mosquitto: MosquittoBroker, tcp_proxy_factory, clients
) -> None:
    proxy: TcpProxy = tcp_proxy_factory(mosquitto.host, mosquitto.port)
    c = clients("dropped").connect(proxy.host, proxy.port)
    t0 = time.monotonic()
    proxy.drop_all()
    c.wait_disconnected(timeout=5)
    assert time.monotonic() - t0 < 3
    c.wait_connects(2, timeout=10)  # auto-reconnect through the proxy
    assert c.publish("d/1", b"x") == NO_MATCHING_SUBSCRIBERS


def test_proxy_stop_does_not_hang_with_live_connections(mosquitto: MosquittoBroker, clients) -> None:
    proxy = TcpProxy(mosquitto.host, mosquitto.port).start()
    try:
        clients("a").connect(proxy.host, proxy.port)
        proxy.blackhole()
        clients("b").try_connect(proxy.host, proxy.port, timeout=0.3)
    finally:
        t0 = time.monotonic()
        proxy.stop()
        assert time.monotonic() - t0 < 3
    assert proxy.connection_count == 0


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------


@pytest.fixture
def tls_broker(mosquitto_factory, pki: TlsFiles) -> MosquittoBroker:
    return mosquitto_factory(tls=pki, require_certificate=True, allow_anonymous=True)


def test_tls_client_with_right_ca_and_certificate_connects(tls_broker: MosquittoBroker, pki: TlsFiles, clients) -> None:
    assert tls_broker.url == f"mqtts://127.0.0.1:{tls_broker.port}"
    cert, key = pki.client("store-a")
    c = clients("store-a", ca_file=pki.ca_file, certfile=cert, keyfile=key)
    c.connect(tls_broker.host, tls_broker.port)
    assert c.subscribe("tls/#") == [1]
    assert c.publish("tls/x", b"secure") == 0
    assert c.expect_message(5).payload == b"secure"


def test_tls_client_trusting_wrong_ca_fails_handshake(tls_broker: MosquittoBroker, pki: TlsFiles, clients) -> None:
    cert, key = pki.client("store-a")
    c = clients("store-a", ca_file=pki.wrong_ca_file, certfile=cert, keyfile=key, reconnect=False)
    result = c.try_connect(tls_broker.host, tls_broker.port, timeout=5)
    assert not result.connected
    assert isinstance(result.error, ssl.SSLCertVerificationError), result


def _assert_refused(result) -> None:  # noqa: ANN001
    # With TLS 1.3 the client finishes its side of the handshake before the
    # server checks the client certificate, so the refusal shows up either as
    # an SSL error from connect() or as a disconnect before any CONNACK.
    assert not result.connected, result
    assert result.reason_code is None, result
    assert result.error is not None or result.disconnected_before_connack, result


def test_tls_client_without_certificate_is_refused(tls_broker: MosquittoBroker, pki: TlsFiles, clients) -> None:
    c = clients("nocert", ca_file=pki.ca_file, reconnect=False)
    _assert_refused(c.try_connect(tls_broker.host, tls_broker.port, timeout=5))
    tls_broker.wait_for_log("peer did not return a certificate")


def test_tls_client_certificate_from_unknown_ca_is_refused(
    tls_broker: MosquittoBroker, pki: TlsFiles, clients
) -> None:
    assert pki.untrusted_client is not None
    cert, key = pki.untrusted_client  # claims CN=store-a, signed by the wrong CA
    c = clients("impostor", ca_file=pki.ca_file, certfile=cert, keyfile=key, reconnect=False)
    _assert_refused(c.try_connect(tls_broker.host, tls_broker.port, timeout=5))
    tls_broker.wait_for_log("certificate verify failed")


def test_tls_plain_tcp_client_gets_nothing(tls_broker: MosquittoBroker, clients) -> None:
    c = clients("plain", reconnect=False)
    result = c.try_connect(tls_broker.host, tls_broker.port, timeout=3)
    assert not result.connected and result.reason_code is None, result


# --------------------------------------------------------------------------
# Per-store ACL: use_identity_as_username + configs/mosquitto/acl-stores.conf
# --------------------------------------------------------------------------


@pytest.fixture
def acl_broker(mosquitto_factory, pki: TlsFiles, acl_stores_file: Path) -> MosquittoBroker:
    return mosquitto_factory(
        tls=pki,
        require_certificate=True,
        use_identity_as_username=True,
        allow_anonymous=False,
        acl_file=acl_stores_file,
    )


@pytest.fixture
def identity(acl_broker: MosquittoBroker, pki: TlsFiles, clients):
    """identity(name) -> MqttTestClient connected with that certificate."""

    def connect(name: str, **kwargs) -> MqttTestClient:  # noqa: ANN003
        cert, key = pki.client(name)
        c = clients(name, ca_file=pki.ca_file, certfile=cert, keyfile=key, **kwargs)
        return c.connect(acl_broker.host, acl_broker.port)

    return connect


def test_acl_certificate_cn_becomes_username(acl_broker: MosquittoBroker, identity) -> None:
    c = identity("store-a")
    acl_broker.wait_for_log(rf"New client connected .* as {re.escape(c.client_id)} .*u'store-a'")


def test_acl_store_publishes_own_up_and_cloud_receives(identity) -> None:
    cloud = identity("cloud")
    store_a = identity("store-a")
    assert cloud.subscribe("stores/+/up/#") == [1]
    assert store_a.publish("stores/store-a/up/x", b"evt") == 0
    msg = cloud.expect_message(5)
    assert (msg.topic, msg.payload) == ("stores/store-a/up/x", b"evt")


def test_acl_store_cannot_publish_into_another_store(identity) -> None:
    cloud = identity("cloud")
    store_a = identity("store-a")
    store_b = identity("store-b")
    assert cloud.subscribe("stores/store-b/up/#") == [1]

    # MQTT v5: mosquitto answers the denied QoS 1 PUBLISH with PUBACK 0x87.
    assert store_a.publish("stores/store-b/up/x", b"forged") == NOT_AUTHORIZED
    # The connection survives a denial.
    assert store_a.is_connected
    # Positive control published after the denial was acknowledged: it must be
    # the FIRST thing the cloud sees, so the forged message was never routed.
    assert store_b.publish("stores/store-b/up/x", b"genuine") == 0
    assert cloud.expect_message(5).payload == b"genuine"
    cloud.assert_no_message(within=0.3)


def test_acl_store_cannot_publish_downstream(identity) -> None:
    store_a = identity("store-a")
    assert store_a.publish("stores/store-a/down/x", b"self-command") == NOT_AUTHORIZED
    assert store_a.publish("elsewhere/x", b"nope") == NOT_AUTHORIZED


def test_acl_store_cannot_read_another_stores_downstream(identity) -> None:
    cloud = identity("cloud")
    store_a = identity("store-a")
    store_b = identity("store-b")
    assert store_b.subscribe("stores/store-b/down/#") == [1]
    assert store_a.subscribe("stores/store-a/down/#") == [1]

    codes = store_a.subscribe("stores/store-b/down/#")
    if codes[0] >= 0x80:
        # Broker that checks SUBSCRIBE against the ACL (e.g. dynamic-security).
        assert codes == [NOT_AUTHORIZED]
    else:
        # mosquitto 2.0 acl_file: SUBACK grants, enforcement is per message.
        assert codes == [1]
    assert cloud.publish("stores/store-b/down/cmd", b"for-b") == 0
    assert store_b.expect_message(5).payload == b"for-b"
    # Marker to store-a sent after the store-b command: store-a must see the
    # marker first and nothing else.
    assert cloud.publish("stores/store-a/down/marker", b"for-a") == 0
    msg = store_a.expect_message(5)
    assert (msg.topic, msg.payload) == ("stores/store-a/down/marker", b"for-a")
    store_a.assert_no_message(within=0.3)


def test_acl_store_receives_its_own_downstream(identity) -> None:
    cloud = identity("cloud")
    store_a = identity("store-a")
    assert store_a.subscribe("stores/store-a/down/#") == [1]
    assert cloud.publish("stores/store-a/down/config", b"cfg") == 0
    msg = store_a.expect_message(5)
    assert (msg.topic, msg.payload) == ("stores/store-a/down/config", b"cfg")


def test_acl_cloud_shared_subscription_receives(identity) -> None:
    cloud_1 = identity("cloud")
    cloud_2 = identity("cloud")  # second receiver instance, same CN
    store_a = identity("store-a")
    store_b = identity("store-b")
    assert cloud_1.subscribe("$share/cloud/stores/+/up/#") == [1]
    assert cloud_2.subscribe("$share/cloud/stores/+/up/#") == [1]

    sent = []
    for i in range(10):
        for store, name in ((store_a, "store-a"), (store_b, "store-b")):
            topic = f"stores/{name}/up/e{i}"
            assert store.publish(topic, f"{name}-{i}".encode()) == 0
            sent.append(topic)

    received: list[str] = []
    deadline = time.monotonic() + 10
    while len(received) < len(sent) and time.monotonic() < deadline:
        for c in (cloud_1, cloud_2):
            while not c.messages.empty():
                received.append(c.messages.get_nowait().topic)
        time.sleep(0.02)
    # Each message delivered exactly once across the share group.
    assert sorted(received) == sorted(sent)
    cloud_1.assert_no_message(within=0.2)
    cloud_2.assert_no_message(within=0.2)


@pytest.mark.fault
def test_acl_last_will_only_on_own_topics(
    acl_broker: MosquittoBroker, pki: TlsFiles, identity, clients, tcp_proxy_factory
) -> None:
    """A will on a forbidden topic is accepted at CONNECT (CONNACK 0) but
    silently dropped when it fires; a will on the store's own up topic is
    delivered to the cloud."""
    cloud = identity("cloud")
    assert cloud.subscribe("stores/+/up/#") == [1]
    proxy: TcpProxy = tcp_proxy_factory(acl_broker.host, acl_broker.port)
    cert, key = pki.client("store-a")
    for will_topic in ("stores/store-b/up/status", "stores/store-a/up/status"):
        c = clients("will", ca_file=pki.ca_file, certfile=cert, keyfile=key, reconnect=False)
        c.client.will_set(will_topic, b"offline", qos=1)
        c.connect(proxy.host, proxy.port)
        proxy.drop_all()  # abrupt loss of the link -> broker publishes the will
        c.wait_disconnected(timeout=5)
    # The forged will (first) was dropped: the first message is the genuine one.
    msg = cloud.expect_message(5)
    assert (msg.topic, msg.payload) == ("stores/store-a/up/status", b"offline")
    cloud.assert_no_message(within=0.3)


def test_acl_denial_is_invisible_to_mqtt311_clients(acl_broker: MosquittoBroker, pki: TlsFiles, clients) -> None:
    """Documents why the agent must use MQTT v5: with 3.1.1 a denied publish
    is acknowledged like a successful one."""
    cert, key = pki.client("store-a")
    c = clients("v311", protocol=mqtt.MQTTv311, ca_file=pki.ca_file, certfile=cert, keyfile=key)
    c.connect(acl_broker.host, acl_broker.port)
    assert c.publish("stores/store-b/up/x", b"forged") == 0


def test_puback_reports_no_matching_subscribers(identity) -> None:
    """mosquitto (v5) acks a QoS 1 publish nobody receives with 0x10 -- a
    success code: clients must treat every reason code < 0x80 as success."""
    store_a = identity("store-a")
    assert store_a.publish("stores/store-a/up/nobody-listens", b"x") == NO_MATCHING_SUBSCRIBERS


# --------------------------------------------------------------------------
# The shipped production example config really loads and enforces isolation
# --------------------------------------------------------------------------


def test_store_broker_example_config_is_valid(
    mosquitto_factory, pki: TlsFiles, repo_root: Path, acl_stores_file: Path, clients
) -> None:
    text = (repo_root / "configs" / "mosquitto" / "store-broker.conf").read_text()
    replacements = {
        r"^listener 8883$": "listener {port} {host}",
        r"^acl_file .*$": f"acl_file {acl_stores_file}",
        r"^cafile .*$": f"cafile {pki.ca_file}",
        r"^certfile .*$": f"certfile {pki.server_cert}",
        r"^keyfile .*$": f"keyfile {pki.server_key}",
        r"^persistence_location .*$": "persistence_location {workdir}/",
        r"^log_dest syslog$": "log_dest file {log_file}",
    }
    for pattern, repl in replacements.items():
        text, n = re.subn(pattern, lambda _m, r=repl: r, text, flags=re.M)
        assert n == 1, f"store-broker.conf no longer has a line matching {pattern!r}"
    broker = mosquitto_factory(tls=pki, config_template=text)

    cert, key = pki.client("store-a")
    store_a = clients("store-a", ca_file=pki.ca_file, certfile=cert, keyfile=key)
    store_a.connect(broker.host, broker.port)
    assert store_a.publish("stores/store-a/up/x", b"ok") == NO_MATCHING_SUBSCRIBERS
    assert store_a.publish("stores/store-b/up/x", b"forged") == NOT_AUTHORIZED

    anonymous = clients("anon", ca_file=pki.ca_file, reconnect=False)
    _assert_refused(anonymous.try_connect(broker.host, broker.port, timeout=5))
