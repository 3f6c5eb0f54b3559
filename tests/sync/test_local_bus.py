"""The local bus against a real mosquitto: publish, subscribe, queue while the broker is down."""

from __future__ import annotations

import json
import threading
import time

from sync.local_bus import LocalBus
from tests.support.mosquitto import MosquittoBroker


def _wait(predicate, timeout_s: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_messages_reach_a_subscriber_on_the_prefixed_topic(mosquitto: MosquittoBroker, mqtt_client_factory) -> None:  # noqa: ANN001
    watcher = mqtt_client_factory("watch").connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("store/s1/local/#")
    bus = LocalBus("127.0.0.1", mosquitto.port, client_id="bus-1", topic_prefix="store/s1/local")
    bus.start()
    try:
        assert _wait(lambda: bus.connected, 5)
        bus.publish("scale/s1/candidates", {"weighing_id": "w1", "candidates": [{"plu": "4011", "score": 0.9}]})
        msg = watcher.expect_message(5, topic="store/s1/local/scale/s1/candidates")
        assert json.loads(msg.payload)["candidates"][0]["plu"] == "4011"
        assert bus.status()["published"] == 1
    finally:
        bus.close()


def test_subscriber_callback_gets_suffix_and_bad_payloads_are_counted(mosquitto: MosquittoBroker,
                                                                      mqtt_client_factory) -> None:  # noqa: ANN001
    got: list[tuple[str, dict]] = []
    done = threading.Event()
    bus = LocalBus("127.0.0.1", mosquitto.port, client_id="bus-2", topic_prefix="store/s1/local")
    bus.subscribe("scale/+/confirm", lambda suffix, payload: (got.append((suffix, payload)), done.set()))
    bus.start()
    sender = mqtt_client_factory("send").connect("127.0.0.1", mosquitto.port)
    try:
        assert _wait(lambda: bus.connected, 5)
        time.sleep(0.2)  # the subscription is sent on connect
        sender.publish("store/s1/local/scale/s1/confirm", b"not json", qos=1)
        sender.publish("store/s1/local/scale/s1/confirm", json.dumps({"plu": "4011"}).encode(), qos=1)
        assert done.wait(5)
        assert got == [("scale/s1/confirm", {"plu": "4011"})]
        assert _wait(lambda: bus.status()["bad_payload"] == 1, 2)
    finally:
        bus.close()


def test_messages_published_while_the_broker_is_down_go_out_on_reconnect(mosquitto_factory) -> None:  # noqa: ANN001
    broker = mosquitto_factory()
    bus = LocalBus("127.0.0.1", broker.port, client_id="bus-3", topic_prefix="p", max_queued=3)
    bus.start()
    try:
        assert _wait(lambda: bus.connected, 5)
        broker.stop()
        assert _wait(lambda: not bus.connected, 5)
        for i in range(5):
            bus.publish("alerts/identity", {"n": i})
        assert bus.status()["queued_now"] == 3 and bus.status()["dropped"] == 2
        broker.start()
        assert _wait(lambda: bus.connected, 15), "no reconnect"
        assert _wait(lambda: bus.status()["queued_now"] == 0, 5)
        assert bus.status()["published"] == 3
    finally:
        bus.close()
