"""Thin, bounded, synchronous wrapper around a raw paho-mqtt 2.x client.

For infrastructure tests and fault-injection tests that need to look at the
wire-level behaviour (CONNACK / SUBACK / PUBACK reason codes) without the
agent's own sync code. Every wait has a timeout and raises ``AssertionError``
with a useful message instead of hanging.

    c = MqttTestClient("sub-1").connect(broker.host, broker.port)
    assert c.subscribe("a/#") == [0]          # granted QoS / reason codes
    rc = c.publish("a/b", b"x", qos=1)        # PUBACK reason code (int)
    msg = c.expect_message(timeout=5)
    c.close()
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["MqttTestClient", "ConnectResult", "rc_value"]


def rc_value(rc: Any) -> int:
    """Numeric value of a paho ReasonCode / int / MQTTErrorCode."""
    if isinstance(rc, ReasonCode):
        return rc.value
    return int(rc)


@dataclass
class ConnectResult:
    """Outcome of one connection attempt."""

    connected: bool
    reason_code: int | None = None  # CONNACK reason code, if one arrived
    error: BaseException | None = None  # exception from connect() (TCP/TLS)
    disconnected_before_connack: bool = False

    def __str__(self) -> str:
        return (
            f"ConnectResult(connected={self.connected}, reason_code={self.reason_code}, "
            f"error={self.error!r}, disconnected_before_connack={self.disconnected_before_connack})"
        )


class MqttTestClient:
    """paho ``Client(VERSION2)`` with its network loop in a thread and
    blocking, time-bounded helpers. MQTT v5 by default."""

    def __init__(
        self,
        client_id: str = "",
        *,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
        ca_file: Path | str | None = None,
        certfile: Path | str | None = None,
        keyfile: Path | str | None = None,
        keepalive: int = 60,
        reconnect: bool = True,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=reconnect,
        )
        self.client_id = client_id
        self.protocol = protocol
        self.keepalive = keepalive
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)  # type: ignore[arg-type]
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None or certfile is not None:
            self.client.tls_set(
                ca_certs=str(ca_file) if ca_file else None,
                certfile=str(certfile) if certfile else None,
                keyfile=str(keyfile) if keyfile else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._cond = threading.Condition()
        self.connacks: list[int] = []  # reason codes of every CONNACK received
        self.connects = 0  # successful CONNACKs
        self.disconnects: list[int] = []  # reason codes of on_disconnect
        self._subacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self.session_present: list[bool] = []  # CONNACK session-present flags
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self._loop_started = False

    # -------------------------------------------------------- callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        rc = rc_value(reason_code)
        with self._cond:
            self.connacks.append(rc)
            self.session_present.append(bool(flags.session_present))
            if rc == 0:
                self.connects += 1
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        with self._cond:
            self.disconnects.append(rc_value(reason_code))
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._subacks[mid] = [rc_value(r) for r in reason_codes]
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._pubacks[mid] = rc_value(reason_code)
            self._cond.notify_all()

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        self.messages.put(message)

    def _wait(self, predicate, timeout: float) -> bool:  # noqa: ANN001
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # ------------------------------------------------------- connection
    def try_connect(
        self, host: str, port: int, timeout: float = 5.0, *, clean_start: bool = True
    ) -> ConnectResult:
        """Attempt a connection; never raises for network/TLS/auth failures."""
        kwargs: dict[str, Any] = {}
        if self.protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = clean_start
        before_acks = len(self.connacks)
        before_disc = len(self.disconnects)
        try:
            self.client.connect(host, port, keepalive=self.keepalive, **kwargs)
        except (OSError, ssl.SSLError) as exc:
            return ConnectResult(False, error=exc)
        if not self._loop_started:
            self.client.loop_start()
            self._loop_started = True
        self._wait(
            lambda: len(self.connacks) > before_acks or len(self.disconnects) > before_disc,
            timeout,
        )
        with self._cond:
            if len(self.connacks) > before_acks:
                rc = self.connacks[before_acks]
                return ConnectResult(rc == 0, reason_code=rc)
            return ConnectResult(False, disconnected_before_connack=len(self.disconnects) > before_disc)

    def connect(self, host: str, port: int, timeout: float = 5.0, **kw: Any) -> "MqttTestClient":
        result = self.try_connect(host, port, timeout, **kw)
        if not result.connected:
            self.close()
            raise AssertionError(f"{self.client_id or 'client'}: connect to {host}:{port} failed: {result}")
        return self

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected()

    def wait_connects(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` successful CONNACKs in total (e.g. after a reconnect)."""
        if not self._wait(lambda: self.connects >= n, timeout):
            raise AssertionError(
                f"{self.client_id}: expected {n} connects within {timeout}s, got {self.connects} "
                f"(connacks={self.connacks}, disconnects={self.disconnects})"
            )

    def wait_disconnected(self, timeout: float = 5.0) -> int:
        """Wait for an on_disconnect callback; returns its reason code."""
        n = len(self.disconnects)
        if not self._wait(lambda: len(self.disconnects) > n or not self.client.is_connected(), timeout):
            raise AssertionError(f"{self.client_id}: still connected after {timeout}s")
        with self._cond:
            return self.disconnects[-1] if self.disconnects else -1

    def close(self, timeout: float = 2.0) -> None:
        """Disconnect (best effort) and stop the network thread (bounded)."""
        try:
            self.client.disconnect()
        except Exception:
            pass
        if self._loop_started:
            self.client._thread_terminate = True  # make loop_forever exit even while reconnecting
            thread = self.client._thread
            if thread is not None:
                thread.join(timeout)
            self.client._thread = None
            self._loop_started = False
        try:
            sock = self.client.socket()
            if sock is not None:
                sock.close()
        except Exception:
            pass

    def __enter__(self) -> "MqttTestClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------ operations
    def subscribe(self, topic: str, qos: int = 1, timeout: float = 5.0) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its reason codes
        (granted QoS 0-2 or a failure code >= 0x80)."""
        res, mid = self.client.subscribe(topic, qos)
        if res != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise AssertionError(f"subscribe({topic!r}) could not be sent: {res}")
        if not self._wait(lambda: mid in self._subacks, timeout):
            raise AssertionError(f"{self.client_id}: no SUBACK for {topic!r} within {timeout}s")
        with self._cond:
            return self._subacks.pop(mid)

    def publish_nowait(self, topic: str, payload: bytes | str = b"", qos: int = 1, retain: bool = False) -> int:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise AssertionError(f"publish({topic!r}) failed locally: {info.rc}")
        return info.mid

    def wait_puback(self, mid: int, timeout: float) -> int | None:
        """PUBACK/PUBCOMP reason code for ``mid``, or None if none within timeout."""
        if not self._wait(lambda: mid in self._pubacks, timeout):
            return None
        with self._cond:
            return self._pubacks.pop(mid)

    def publish(
        self, topic: str, payload: bytes | str = b"", qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> int:
        """Publish and wait for the acknowledgement (QoS 0: until written).
        Returns the PUBACK reason code (0 = success; v5 failures >= 0x80)."""
        mid = self.publish_nowait(topic, payload, qos, retain)
        rc = self.wait_puback(mid, timeout)
        if rc is None:
            raise AssertionError(f"{self.client_id}: no ack for publish to {topic!r} within {timeout}s")
        return rc

    def expect_message(self, timeout: float = 5.0, topic: str | None = None) -> mqtt.MQTTMessage:
        """Next received message (optionally: next one on ``topic``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.messages.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise AssertionError(
                    f"{self.client_id}: no message{f' on {topic!r}' if topic else ''} within {timeout}s"
                ) from None
            if topic is None or msg.topic == topic:
                return msg

    def assert_no_message(self, within: float = 1.0) -> None:
        try:
            msg = self.messages.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message on {msg.topic!r}: {msg.payload!r}")
