"""The store's local MQTT bus: live messages for screens and staff devices on the store LAN.

Unlike the cloud link (``sync.client``), nothing here is durable: a scale screen wants the candidates of the
weighing in front of it now, and a staff alert is useful within seconds or not at all. While disconnected,
messages wait in a bounded in-memory queue (oldest dropped first, counted) and go out on reconnect.

Topics are ``{topic_prefix}/{suffix}``, e.g. ``store/demo-store/local/scale/s1/candidates``. Payloads are JSON.

>>> bus = LocalBus("127.0.0.1", 1883, client_id="store-agent-local-demo", topic_prefix="store/demo/local")
>>> bus.start()                                       # doctest: +SKIP
>>> bus.publish("alerts/identity", {"kind": "possible_match", "score": 0.71})  # doctest: +SKIP
>>> bus.subscribe("scale/+/confirm", lambda suffix, payload: ...)             # doctest: +SKIP
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.matcher import MQTTMatcher

log = logging.getLogger(__name__)

Callback = Callable[[str, dict[str, Any]], None]


class LocalBus:
    """One paho client to the store's LAN broker, with its own network thread (``loop_start``)."""

    def __init__(self, host: str, port: int, *, client_id: str, topic_prefix: str, protocol: str = "5",
                 max_queued: int = 1000, keepalive_s: int = 30) -> None:
        self.host, self.port = host, port
        self.prefix = topic_prefix.rstrip("/")
        self.max_queued = max_queued
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[str, bytes, int, bool]] = collections.deque()
        self._subs: dict[str, Callback] = {}
        self._matcher = MQTTMatcher()
        self._keepalive_s = keepalive_s
        self.connected = False
        self.counts = {"published": 0, "queued": 0, "dropped": 0, "received": 0, "bad_payload": 0,
                       "callback_errors": 0}
        version = mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; a broker that is down now is retried until :meth:`close`."""
        if self._started:
            return
        self._started = True
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive_s)
        self._client.loop_start()

    def close(self) -> None:
        """Disconnect and stop the network thread (queued messages are dropped: nothing here is durable)."""
        if not self._started:
            return
        self._started = False
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self.connected = False

    # -- publishing --------------------------------------------------------------------------------
    def topic(self, suffix: str) -> str:
        """Full topic of ``suffix``."""
        return f"{self.prefix}/{suffix.lstrip('/')}"

    def publish(self, suffix: str, payload: dict[str, Any], qos: int = 1, retain: bool = False) -> None:
        """Send ``payload`` as JSON now, or queue it while disconnected. Thread-safe; never raises."""
        try:
            data = json.dumps(payload, separators=(",", ":"), default=str).encode()
        except (TypeError, ValueError) as exc:
            log.warning("local bus: payload is not JSON-serialisable", extra={"suffix": suffix, "error": str(exc)})
            self.counts["bad_payload"] += 1
            return
        item = (self.topic(suffix), data, qos, retain)
        with self._lock:
            if not self.connected:
                self._enqueue(item)
                return
        self._send(item)

    def _enqueue(self, item: tuple[str, bytes, int, bool]) -> None:
        if len(self._queue) >= self.max_queued:
            self._queue.popleft()
            self.counts["dropped"] += 1
        self._queue.append(item)
        self.counts["queued"] += 1

    def _send(self, item: tuple[str, bytes, int, bool]) -> None:
        topic, data, qos, retain = item
        try:
            info = self._client.publish(topic, data, qos=qos, retain=retain)
        except (ValueError, OSError) as exc:  # e.g. a topic with wildcards
            log.warning("local bus publish failed", extra={"topic": topic, "error": str(exc)})
            return
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.counts["published"] += 1
        else:  # the link dropped between the check and the publish: keep it for the reconnect
            with self._lock:
                self._enqueue(item)

    # -- subscribing -------------------------------------------------------------------------------
    def subscribe(self, suffix_filter: str, callback: Callback) -> None:
        """Call ``callback(suffix, payload)`` for JSON-object messages on ``{prefix}/{suffix_filter}``
        (MQTT wildcards allowed). Survives reconnects. The callback runs on the bus thread: keep it short."""
        topic = self.topic(suffix_filter)
        with self._lock:
            self._subs[topic] = callback
            self._matcher[topic] = callback
            connected = self.connected
        if connected:
            self._client.subscribe(topic, qos=1)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("local bus: connection refused", extra={"reason": str(reason_code)})
            return
        with self._lock:
            self.connected = True
            topics = list(self._subs)
            pending = list(self._queue)
            self._queue.clear()
        for topic in topics:
            client.subscribe(topic, qos=1)
        for item in pending:
            self._send(item)
        log.info("local bus connected", extra={"broker": f"{self.host}:{self.port}", "flushed": len(pending)})

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        with self._lock:
            self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.counts["received"] += 1
        try:
            payload = json.loads(message.payload)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            self.counts["bad_payload"] += 1
            log.warning("local bus: ignoring a message that is not a JSON object", extra={"topic": message.topic})
            return
        suffix = message.topic[len(self.prefix) + 1:] if message.topic.startswith(self.prefix + "/") else message.topic
        for callback in list(self._matcher.iter_match(message.topic)):
            try:
                callback(suffix, payload)
            except Exception:  # a consumer's bug must not kill the bus thread
                self.counts["callback_errors"] += 1
                log.exception("local bus callback failed", extra={"topic": message.topic})

    def status(self) -> dict[str, Any]:
        """Connection state and counters."""
        with self._lock:
            queued_now = len(self._queue)
        return {"connected": self.connected, "broker": f"{self.host}:{self.port}", "prefix": self.prefix,
                "queued_now": queued_now, **self.counts}
