"""``store-agent cloud send``: sign a command, publish it, wait for the store's result."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from sync.cloud.receiver import ReceiverSettings
from sync.cloud.store import CloudStore
from sync.envelope import Envelope, Topics, dumps


def send_command(settings: ReceiverSettings, cmd: dict[str, Any], *, wait_s: float = 10.0,
                 db_path: Path | None = None) -> dict[str, Any] | None:
    """Publish ``cmd`` (QoS 1) and return the store's cmd-result body, or None if none came within
    ``wait_s``. With ``db_path`` the command is recorded so ``cloud serve`` re-sends it on the store's
    next birth if it was not applied."""
    store_id = cmd["store_id"]
    topics = Topics(store_id)
    if db_path is not None:
        db = CloudStore(db_path)
        db.record_command(cmd)
        db.mark_sent(cmd["cmd_id"])
        db.close()
    result: dict[str, Any] = {}
    connected = {"ok": False, "subscribed": False}
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"store-cloud-sender-{cmd['cmd_id'][-8:]}",
                         protocol=MQTTProtocolVersion.MQTTv5 if settings.protocol == "5"
                         else MQTTProtocolVersion.MQTTv311)
    if settings.tls.enabled:
        client.tls_set(ca_certs=str(settings.tls.ca_file) if settings.tls.ca_file else None,
                       certfile=str(settings.tls.cert_file) if settings.tls.cert_file else None,
                       keyfile=str(settings.tls.key_file) if settings.tls.key_file else None,
                       cert_reqs=ssl.CERT_REQUIRED)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)

    def on_message(c: mqtt.Client, u: Any, m: mqtt.MQTTMessage) -> None:
        try:
            env = Envelope.from_json(m.payload)
        except ValueError:
            return
        if isinstance(env.body, dict) and env.body.get("cmd_id") == cmd["cmd_id"]:
            # A re-delivered command is answered "duplicate"; the first "applied" is the one that counts.
            if result.get("status") != "applied":
                result.clear()
                result.update(env.body)
            # Acknowledge it for the store in case no receiver is running.
            c.publish(topics.ack, dumps({"msg_ids": [env.msg_id]}), qos=1)

    client.on_connect = lambda c, u, f, rc, p: connected.__setitem__("ok", not rc.is_failure)
    client.on_subscribe = lambda c, u, mid, rcs, p: connected.__setitem__("subscribed", True)
    client.on_message = on_message
    client.connect(settings.host, settings.port, keepalive=30)
    deadline = time.monotonic() + max(wait_s, 5.0)
    while not connected["ok"] and time.monotonic() < deadline:
        if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError("lost the broker while connecting")
    if not connected["ok"]:
        raise ConnectionError(f"no connection to the broker at {settings.host}:{settings.port}")
    client.subscribe(topics.cmd_result, qos=1)
    while not connected["subscribed"] and time.monotonic() < deadline:
        client.loop(0.05)
    info = client.publish(topics.cmd(cmd["kind"]), json.dumps(cmd), qos=1)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (not result or not info.is_published()):
        if client.loop(0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
            break
    for _ in range(5):  # let the ack to the store go out
        client.loop(0.02)
    client.disconnect()
    if result and db_path is not None:
        db = CloudStore(db_path)
        db.conn.execute("UPDATE commands SET status = ?, reason = ?, result = ?, result_at = ? WHERE cmd_id = ?"
                        " AND (status IS NULL OR status != 'applied')",
                        (result.get("status"), result.get("reason"), dumps(result.get("result")), time.time(),
                         cmd["cmd_id"]))
        db.close()
    return result or None
