"""``store-agent cloud serve``: the reference receiver behind the broker.

Single-threaded like the agent's client: paho callbacks queue work, and every ~50 ms one transaction stores
the batch, then ``down/ack`` goes out per store and the MQTT messages are acknowledged — only after commit,
so a receiver crash can cause re-delivery but never loss.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from sync.cloud.store import CloudStore
from sync.envelope import Envelope, Topics, dumps, parse_up_topic
from sync.settings import TlsSettings

log = logging.getLogger(__name__)

_BATCH_S = 0.05
_BATCH_MAX = 500


@dataclass(slots=True)
class ReceiverSettings:
    """Where the receiver connects and how it identifies itself."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "store-cloud-receiver"
    share_group: str | None = "cloud"  # MQTT 5 shared subscription group; None subscribes directly
    protocol: str = "5"  # "5" or "3.1.1" (no shared subscriptions then)
    keepalive_s: int = 30
    tls: TlsSettings = field(default_factory=TlsSettings)
    username: str | None = None
    password: str | None = None


class CloudReceiver:
    """Stores, deduplicates and acknowledges what stores send; re-sends commands on birth."""

    def __init__(self, settings: ReceiverSettings, db_path: Path | str) -> None:
        self.settings = settings
        self.db_path = db_path
        self.store: CloudStore | None = None
        self._pending: list[mqtt.MQTTMessage] = []
        self._connected = False
        self._seen_births: set[tuple[str, str, float]] = set()
        self.counts: dict[str, int] = defaultdict(int)
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, reconnecting with backoff."""
        self.store = CloudStore(self.db_path)
        delay = 0.5
        try:
            while not stop.is_set():
                if self._session(stop):
                    delay = 0.5
                else:
                    delay = min(delay * 2, 10.0)
                stop.wait(delay)
        finally:
            self.store.close()

    def _session(self, stop: threading.Event) -> bool:
        s = self.settings
        v5 = s.protocol == "5"
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=s.client_id,
                             protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
                             clean_session=None if v5 else True, manual_ack=True)
        if s.tls.enabled:
            client.tls_set(ca_certs=str(s.tls.ca_file) if s.tls.ca_file else None,
                           certfile=str(s.tls.cert_file) if s.tls.cert_file else None,
                           keyfile=str(s.tls.key_file) if s.tls.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED)
        if s.username:
            client.username_pw_set(s.username, s.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda c, u, m: self._pending.append(m)
        # Messages left from a lost connection were never acknowledged: the broker (or, after a broker crash,
        # the store) sends them again. Storing them now would ack their stale mids on this new connection.
        self._pending = []
        self._connected = False
        try:
            if v5:
                client.connect(s.host, s.port, keepalive=s.keepalive_s, clean_start=True)
            else:
                client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            log.warning("cloud receiver cannot reach the broker", extra={"error": str(exc)})
            return False
        deadline = time.monotonic() + 10
        while not self._connected and time.monotonic() < deadline and not stop.is_set():
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return False
        if not self._connected:
            return False
        up = "stores/+/up/#"
        share = s.share_group if v5 else None
        subs = [(f"$share/{share}/{up}" if share else up, 1)]
        if share:
            subs.append(("stores/+/up/state", 1))  # shared subscriptions never get retained births
        client.subscribe(subs)
        self.ready.set()
        last_flush = time.monotonic()
        while not stop.is_set() and self._connected:
            if client.loop(timeout=0.02) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if self._pending and (len(self._pending) >= _BATCH_MAX or time.monotonic() - last_flush >= _BATCH_S):
                self._flush(client)
                last_flush = time.monotonic()
        if self._pending and self._connected:
            self._flush(client)
        client.disconnect()
        self.ready.clear()
        return True

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("broker refused the cloud receiver", extra={"reason": str(reason_code)})
        else:
            self._connected = True

    def _on_disconnect(self, client: mqtt.Client, *args: Any) -> None:
        self._connected = False

    def _flush(self, client: mqtt.Client) -> None:
        """Store the batch, then ack to the stores, then ack the MQTT messages."""
        assert self.store is not None
        batch, self._pending = self._pending, []
        envelopes: list[Envelope] = []
        states: list[dict[str, Any]] = []
        for message in batch:
            parsed = parse_up_topic(message.topic)
            if parsed is None:
                continue
            store_id, stream = parsed
            if stream == "state":
                try:
                    state = json.loads(message.payload)
                    if isinstance(state, dict) and state.get("store_id") == store_id:
                        states.append(state)
                except (ValueError, TypeError):
                    self.counts["malformed"] += 1
                continue
            try:
                env = Envelope.from_json(message.payload)
            except ValueError:
                self.counts["malformed"] += 1
                continue
            if env.store_id != store_id or env.stream != stream:
                self.counts["mismatched_topic"] += 1  # never trust the payload over the ACL'd topic
                continue
            envelopes.append(env)
        new, dup = self.store.store_messages(envelopes) if envelopes else (0, 0)
        self.counts["received"] += new
        self.counts["duplicates"] += dup
        acks: dict[str, list[str]] = defaultdict(list)
        for env in envelopes:
            acks[env.store_id].append(env.msg_id)
        for store_id, ids in acks.items():
            client.publish(Topics(store_id).ack, dumps({"msg_ids": ids}), qos=1)
        for state in states:
            try:
                self._on_state(client, state)
            except (ValueError, TypeError, KeyError):  # a store's bad birth must not stop the receiver
                log.warning("ignoring malformed state message", extra={"store_id": state.get("store_id")})
                self.counts["malformed"] += 1
        for message in batch:
            if message.qos > 0:
                client.ack(message.mid, message.qos)

    def _on_state(self, client: mqtt.Client, state: dict[str, Any]) -> None:
        assert self.store is not None
        key = (state["store_id"], str(state.get("boot_id")), float(state.get("ts") or 0))
        if key in self._seen_births:  # the same birth via the shared and the direct subscription
            return
        self._seen_births.add(key)
        self.store.record_state(state)
        if not state.get("online"):
            return
        self.counts["births"] += 1
        store_id = state["store_id"]
        versions = state.get("versions") or {}
        for cmd in self.store.commands_to_resend(store_id, versions if isinstance(versions, dict) else {}):
            log.info("re-sending command the store has not applied",
                     extra={"store_id": store_id, "cmd_id": cmd["cmd_id"], "kind": cmd["kind"]})
            client.publish(Topics(store_id).cmd(cmd["kind"]), dumps(cmd), qos=1)
            self.store.mark_sent(cmd["cmd_id"])
            self.counts["commands_resent"] += 1
        desired = self.store.desired_versions(store_id)
        if desired:
            client.publish(Topics(store_id).desired, dumps(desired), qos=1, retain=True)
