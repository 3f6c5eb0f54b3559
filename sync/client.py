"""The one MQTT client of the agent: drains the outbox, receives commands and acks, keeps the birth state.

Design choices, each against a measured failure of the usual approach:
- paho keeps unsent messages only in memory, so we never rely on its queue: a fresh paho client per
  connection, clean start, and every unconfirmed row re-sent from the outbox (same ``msg_id``) after reconnect.
  Duplicates per outage are bounded by ``max_inflight``.
- paho detects a dead link only after two keepalives; we track the last byte *from* the broker and drop the
  connection after 1.5 × keepalive of silence (paho's pings guarantee traffic on a healthy idle link).
- Callbacks run in this thread (we call ``loop()`` ourselves), so the in-flight map needs no lock.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sync.commands import CommandProcessor
from sync.envelope import Topics, dumps
from sync.outbox import Outbox, OutboxRow
from sync.settings import SyncSettings

log = logging.getLogger(__name__)

_HOUSEKEEPING_S = 5.0
_PREFETCH = 200
_ACK_FLUSH_S = 0.05
_SHUTDOWN_FLUSH_S = 1.0


class SyncClient:
    """Store-and-forward link between one store's outbox and the broker.

    ``run(stop)`` blocks until ``stop`` is set (run it in a supervised thread); ``status()`` is safe to call
    from any thread.
    """

    def __init__(self, settings: SyncSettings, outbox: Outbox, processor: CommandProcessor | None, *,
                 store_id: str, boot_id: str, versions: Callable[[], dict[str, Any]] = dict,
                 on_desired: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.outbox = outbox
        self.processor = processor
        self.store_id = store_id
        self.boot_id = boot_id
        self.versions = versions
        self.on_desired = on_desired
        self.topics = Topics(store_id)
        self._v5 = settings.protocol == "5"
        self._inflight: dict[int, int] = {}  # paho mid → outbox row id
        self._acked: list[int] = []
        self._buffer: deque[OutboxRow] = deque()
        self._last_flush = 0.0
        self._connected = False
        self._connack_error: str | None = None
        self._last_inbound = 0.0
        self._tokens = float(settings.max_inflight)
        self._last_refill = time.monotonic()
        self._status_lock = threading.Lock()
        self._status: dict[str, Any] = {
            "connected": False, "broker": f"{settings.host}:{settings.port}", "protocol": settings.protocol,
            "connects": 0, "disconnects": 0, "half_open_detected": 0, "published": 0, "broker_acked": 0,
            "cloud_acked": 0, "rejected_by_broker": 0, "last_connected_at": None, "last_error": None,
            "last_broker_ack_at": None, "last_cloud_ack_at": None, "inflight": 0,
        }

    # -- public ------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A snapshot of the link: connection, counters, last errors and acks."""
        with self._status_lock:
            snapshot = dict(self._status)
        if self.processor is not None:
            snapshot["commands"] = dict(self.processor.counts)
        return snapshot

    def run(self, stop: threading.Event) -> None:
        """Connect, drain and receive until ``stop`` is set; reconnect with backoff and jitter."""
        delay = self.settings.reconnect_min_s
        try:
            while not stop.is_set():
                if self._session(stop):
                    delay = self.settings.reconnect_min_s
                if stop.is_set():
                    break
                # Decorrelated jitter: spreads a fleet's reconnects after a broker restart.
                delay = min(self.settings.reconnect_max_s,
                            random.uniform(self.settings.reconnect_min_s, delay * 3))
                log.info("reconnecting", extra={"in_s": round(delay, 2)})
                stop.wait(delay)
        finally:
            self.outbox.close()

    # -- one connection ----------------------------------------------------------------------------
    def _session(self, stop: threading.Event) -> bool:
        """One connection's life; returns True if it got connected at all."""
        self._inflight.clear()
        self._acked.clear()
        self._buffer.clear()
        self._connected = False
        self._connack_error = None
        client = self._new_client()
        try:
            self._connect(client)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._set(last_error=f"connect failed: {exc}")
            log.warning("broker connection failed", extra={"error": str(exc)})
            return False
        deadline = time.monotonic() + self.settings.connect_timeout_s
        while not self._connected and self._connack_error is None and time.monotonic() < deadline:
            if stop.is_set() or client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if not self._connected:
            self._set(last_error=self._connack_error or "broker closed the connection or did not answer before "
                      "CONNACK (client certificate or credentials refused?)")
            self._close(client)
            return False
        self._on_connected(client)
        next_housekeeping = 0.0
        try:
            while not stop.is_set() and self._connected:
                rc = client.loop(timeout=0.01 if self._inflight or self._tokens >= 1 else 0.05)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._connected = False
                    break
                if time.monotonic() - self._last_flush >= _ACK_FLUSH_S:
                    self._flush_acks()
                self._pump(client)
                # paho logs PINGRESP but has no callback for it; listening to its log costs a formatted
                # string per packet, so only while idle (in-flight PUBACKs prove liveness otherwise).
                client.on_log = None if self._inflight else self._on_log
                if time.monotonic() - self._last_inbound > 1.5 * self.settings.keepalive_s:
                    log.warning("broker silent for 1.5 x keepalive: dropping half-open link")
                    # One update so no reader sees the detection while still reported connected.
                    self._connected = False
                    self._set(half_open_detected=self._status["half_open_detected"] + 1, connected=False,
                              last_error="half-open link detected")
                    break
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + _HOUSEKEEPING_S
                    self._housekeeping()
            if stop.is_set() and self._connected:
                self._goodbye(client)
        finally:
            self._flush_acks()
            self._close(client)
            self._set(connected=False, disconnects=self._status["disconnects"] + 1, inflight=0)
        return True

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"store-agent-{self.store_id}",
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if self._v5 else True,
            manual_ack=True,
        )
        client.connect_timeout = s.connect_timeout_s
        client.max_inflight_messages_set(max(s.max_inflight, 1) + 2)  # + birth/goodbye
        client.max_queued_messages_set(0)
        client.will_set(self.topics.state, self._state_payload(online=False), qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls.enabled:
            client.tls_set(ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                           certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                           keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                           cert_reqs=ssl.CERT_NONE if s.tls.insecure_skip_verify else ssl.CERT_REQUIRED)
            if s.tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_log = self._on_log
        return client

    def _connect(self, client: mqtt.Client) -> None:
        s = self.settings
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=True, properties=props)
        else:
            client.connect(s.host, s.port, keepalive=s.keepalive_s)

    def _on_connected(self, client: mqtt.Client) -> None:
        self._last_inbound = time.monotonic()
        # Cloud acks addressed to an earlier connection (or process) were lost with it: whatever the broker
        # took but the cloud has not confirmed is sent again now rather than after cloud_ack_timeout_s.
        if self.settings.require_cloud_ack:
            self.outbox.requeue_unconfirmed(0.0)
        client.subscribe([(self.topics.cmd_filter, 1), (self.topics.ack, 1), (self.topics.desired, 1)])
        client.publish(self.topics.state, self._state_payload(online=True), qos=1, retain=True)
        self._set(connected=True, connects=self._status["connects"] + 1, last_connected_at=time.time(),
                  last_error=None)
        log.info("connected to broker", extra={"broker": self._status["broker"]})

    def _goodbye(self, client: mqtt.Client) -> None:
        """Clean shutdown: retained offline state (the Will is not sent on a clean disconnect)."""
        info = client.publish(self.topics.state, self._state_payload(online=False), qos=1, retain=True)
        deadline = time.monotonic() + _SHUTDOWN_FLUSH_S
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            self._flush_acks()
        self._connected = False  # a disconnect we asked for is not worth a warning
        client.disconnect()
        client.loop(timeout=0.05)

    @staticmethod
    def _close(client: mqtt.Client) -> None:
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- sending -----------------------------------------------------------------------------------
    def _pump(self, client: mqtt.Client) -> None:
        room = self.settings.max_inflight - len(self._inflight)
        if room <= 0:
            return
        rate = self.settings.drain_rate_msgs_per_s
        if rate > 0:
            now = time.monotonic()
            self._tokens = min(float(self.settings.max_inflight), self._tokens + (now - self._last_refill) * rate)
            self._last_refill = now
            room = min(room, int(self._tokens))
            if room <= 0:
                return
        if not self._buffer:
            # Refill only when empty: one query per ~_PREFETCH messages; rows acked but not yet flushed
            # must not be picked up again, so flush first.
            self._flush_acks()
            self._buffer.extend(self.outbox.next_batch(_PREFETCH, exclude=self._inflight.values()))
        now_wall = time.time()
        sent = 0
        while self._buffer and sent < room:
            row = self._buffer.popleft()
            info = client.publish(self.topics.up(row.stream), self._payload(row, now_wall), qos=1,
                                  properties=self._properties(row, now_wall))
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_QUEUE_SIZE):
                self._connected = False
                break
            self._inflight[info.mid] = row.id
            sent += 1
        if rate > 0:
            self._tokens -= sent
        if sent:
            self._set(published=self._status["published"] + sent, inflight=len(self._inflight))

    def _payload(self, row: OutboxRow, now: float) -> str:
        """The envelope as JSON, splicing the stored body text in rather than re-parsing it."""
        head = {"v": 1, "msg_id": row.msg_id, "store_id": self.store_id, "boot_id": row.boot_id,
                "stream": row.stream, "seq": row.seq, "event_ts": row.event_ts, "expires_at": row.expires_at,
                "historical": now - row.event_ts > self.settings.historical_after_s, "schema": row.schema}
        return dumps(head)[:-1] + ',"body":' + row.body + "}"

    def _properties(self, row: OutboxRow, now: float) -> Properties | None:
        if not self._v5:
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("msg_id", row.msg_id)]
        if row.expires_at is not None:
            props.MessageExpiryInterval = max(1, int(row.expires_at - now))
        if row.stream == "cmd-result":
            cmd_id = json.loads(row.body).get("cmd_id")
            if cmd_id:
                props.CorrelationData = str(cmd_id).encode()
        return props

    def _flush_acks(self) -> None:
        self._last_flush = time.monotonic()
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self.outbox.mark_sent(acked, cloud_ack=self.settings.require_cloud_ack)
        self._set(broker_acked=self._status["broker_acked"] + len(acked), last_broker_ack_at=time.time(),
                  inflight=len(self._inflight))

    def _housekeeping(self) -> None:
        if self.settings.require_cloud_ack:
            requeued = self.outbox.requeue_unconfirmed(self.settings.cloud_ack_timeout_s)
            if requeued:
                log.info("re-sending messages the cloud did not confirm", extra={"count": requeued})
        self.outbox.drop_expired()

    # -- paho callbacks (all in this thread) --------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._last_inbound = time.monotonic()
        if reason_code.is_failure:
            self._connack_error = f"broker refused connection: {reason_code}"
            log.error("broker refused connection", extra={"reason": str(reason_code)})
        else:
            self._connected = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if self._connected:
            log.warning("disconnected from broker", extra={"reason": str(reason_code)})
            self._set(last_error=f"disconnected: {reason_code}")
        self._connected = False

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._last_inbound = time.monotonic()
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return
        if getattr(reason_code, "is_failure", False):
            log.error("broker refused a message; moved to dead letters",
                      extra={"row_id": row_id, "reason": str(reason_code)})
            self.outbox.dead_letter(row_id, f"broker: {reason_code}")
            self._set(rejected_by_broker=self._status["rejected_by_broker"] + 1)
        else:
            self._acked.append(row_id)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._last_inbound = time.monotonic()
        topic = message.topic
        try:
            if topic == self.topics.ack:
                self._handle_cloud_ack(message.payload)
            elif topic == self.topics.desired:
                self._handle_desired(message.payload)
            elif topic.startswith(self.topics.root + "/down/cmd/") and self.processor is not None:
                self._flush_acks()  # the command's result must queue behind what was already sent
                self.processor.process(message.payload, topic.rsplit("/", 1)[1])
        except Exception:
            log.exception("failed to handle a message", extra={"topic": topic})
        finally:
            # Acknowledge only now: a command is applied and its result durable before the broker forgets it.
            if message.qos > 0:
                client.ack(message.mid, message.qos)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        if buf.startswith("Received"):
            self._last_inbound = time.monotonic()

    def _handle_cloud_ack(self, payload: bytes) -> None:
        try:
            data = json.loads(payload)
            ids = [str(i) for i in data.get("msg_ids", [])]
        except (ValueError, AttributeError, TypeError):
            log.warning("ignoring malformed cloud ack")
            return
        n = self.outbox.cloud_acked(ids)
        self._set(cloud_acked=self._status["cloud_acked"] + n, last_cloud_ack_at=time.time())

    def _handle_desired(self, payload: bytes) -> None:
        try:
            desired = json.loads(payload) if payload else {}
        except ValueError:
            log.warning("ignoring malformed desired-state message")
            return
        if isinstance(desired, dict) and self.on_desired is not None:
            self.on_desired(desired)

    # -- helpers -----------------------------------------------------------------------------------
    def _state_payload(self, *, online: bool) -> str:
        versions: dict[str, Any] = {}
        if online:
            try:
                versions = self.versions()
            except Exception:
                log.exception("could not read versions for the birth message")
        return dumps({"v": 1, "schema": "state/1", "store_id": self.store_id, "boot_id": self.boot_id,
                      "online": online, "ts": time.time(), "versions": versions})

    def _set(self, **fields: Any) -> None:
        with self._status_lock:
            self._status.update(fields)
