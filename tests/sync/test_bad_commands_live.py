"""Bad commands through the real stack: mosquitto, the real Agent (threads), a paho publisher.

Each bad command is published on ``stores/{sid}/down/cmd/{kind}``; the ``cmd-result`` coming back on
``stores/{sid}/up/cmd-result`` must name the right reason, and the agent must stay healthy afterwards: same
MQTT connection, no component restart, a valid ``ping`` still applied, even after a burst of random bytes.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sync.envelope import Envelope, Topics
from sync.signing import generate_keypair, sign
from tests.support.agent_stack import SigningKey, make_signing_key, start_agent, wait_until, write_config
from tests.support.mqttclient import MqttTestClient

pytestmark = pytest.mark.timeout(120)

SID = "store-bad-cmd"


@dataclass
class Live:
    agent: Any
    key: SigningKey
    topics: Topics
    cloud: MqttTestClient
    observer: MqttTestClient

    def send(self, topic_kind: str, payload: bytes) -> None:
        assert self.cloud.publish(self.topics.cmd(topic_kind), payload, qos=1, timeout=10) == 0

    def result(self, cmd_id: str | None, timeout: float = 10.0) -> dict[str, Any]:
        """The next cmd-result for ``cmd_id`` (None: for a payload the agent could not read an id from)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.observer.expect_message(timeout=max(0.01, deadline - time.monotonic()),
                                               topic=self.topics.cmd_result)
            env = Envelope.from_json(msg.payload)
            assert (env.store_id, env.stream, env.schema) == (SID, "cmd-result", "cmd-result/1")
            if env.body.get("cmd_id") == cmd_id:
                return env.body
            # a late answer to a warm-up ping: skip it

    def roundtrip(self, topic_kind: str, payload: bytes, cmd_id: str | None) -> dict[str, Any]:
        self.send(topic_kind, payload)
        return self.result(cmd_id)

    def ping(self) -> dict[str, Any]:
        cmd = self.key.command("ping", SID, {"echo": "still alive"})
        return self.roundtrip("ping", _json(cmd), cmd["cmd_id"])

    def sync_detail(self) -> dict[str, Any]:
        return next(c for c in self.agent.status()["components"] if c["name"] == "sync")


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode("utf-8")


@pytest.fixture
def live(mosquitto, tmp_path: Path, mqtt_client_factory: Callable[..., MqttTestClient]) -> Iterator[Live]:  # noqa: ANN001
    key = make_signing_key(tmp_path)
    config = write_config(tmp_path / "agent.toml", store_id=SID, data_dir=tmp_path / "data",
                          broker_url=mosquitto.url, public_key_b64=key.public_b64,
                          sync={"require_cloud_ack": False})
    topics = Topics(SID)
    observer = mqtt_client_factory("observer").connect(mosquitto.host, mosquitto.port)
    assert observer.subscribe(topics.cmd_result, qos=1) == [1]
    cloud = mqtt_client_factory("cloud").connect(mosquitto.host, mosquitto.port)
    agent, running = start_agent(config)
    try:
        assert wait_until(lambda: agent.status()["broker_connected"], 15), agent.status()
        ctx = Live(agent, key, topics, cloud, observer)
        # the agent's SUBSCRIBE may still be in flight: ping until one is answered
        deadline = time.monotonic() + 15
        while True:
            cmd = key.command("ping", SID, {})
            ctx.send("ping", _json(cmd))
            try:
                assert ctx.result(cmd["cmd_id"], timeout=2)["status"] == "applied"
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        yield ctx
    finally:
        running.stop()
        agent.close()


def _bad_commands(key: SigningKey) -> list[tuple[str, str, bytes, str | None, str, str]]:
    """(name, topic kind, payload, cmd_id expected in the result, status, reason)."""
    now = time.time()
    cases: list[tuple[str, str, bytes, str | None, str, str]] = []

    def add(name: str, topic_kind: str, cmd: dict[str, Any] | bytes, reason: str, status: str = "rejected",
            cmd_id: str | None = None) -> None:
        if isinstance(cmd, dict):
            cmd_id = cmd.get("cmd_id") if isinstance(cmd.get("cmd_id"), str) else None
            cmd = _json(cmd)
        cases.append((name, topic_kind, cmd, cmd_id, status, reason))

    unsigned = key.command("ping", SID, {})
    del unsigned["sig"]
    add("unsigned", "ping", unsigned, "unsigned")
    tampered = key.command("ping", SID, {"echo": "a"})
    tampered["body"]["echo"] = "b"
    add("tampered", "ping", tampered, "bad_signature")
    added = key.command("ping", SID, {})
    added["extra"] = 1
    add("field added after signing", "ping", added, "bad_signature")
    add("untrusted key id", "ping", sign(key.command("ping", SID, {}), key.key, "who-is-this"), "untrusted_key")
    add("signed by another key", "ping", sign(key.command("ping", SID, {}), generate_keypair()[0], key.key_id),
        "bad_signature")
    add("wrong store", "ping", key.command("ping", "another-store", {}), "wrong_store")
    add("expired", "ping", key.command("ping", SID, {}, now=now - 7200, ttl_s=3600), "expired")
    add("issued in the future", "ping", key.command("ping", SID, {}, now=now + 3600), "issued_in_future")
    add("unknown kind", "no.such.kind", key.command("no.such.kind", SID, {}), "unknown_kind")
    add("kind not matching topic", "sync.resend", key.command("ping", SID, {}), "malformed")
    missing = key.command("ping", SID, {})
    del missing["expires_at"]
    add("missing field", "ping", sign(missing, key.key, key.key_id), "malformed")
    mistyped = key.command("config.update", SID, {"config": {}}, version=5)
    mistyped["version"] = "6"
    add("version as string", "config.update", sign(mistyped, key.key, key.key_id), "malformed")
    add("invalid JSON", "ping", b'{"cmd_id": "x", ', "malformed")
    add("JSON array", "ping", b'[{"kind": "ping"}]', "malformed")
    add("invalid UTF-8", "ping", b'{"cmd_id": "\xff\xfe"}', "malformed")
    add("NaN", "ping", _json(key.command("ping", SID, {})).replace(b'"body": {}', b'"body": {"x": NaN}'),
        "malformed", cmd_id=None)
    add("1 MB", "ping", _json(key.command("ping", SID, {"pad": "x" * 2**20})), "too_large", cmd_id=None)
    add("config.update invalid body", "config.update", key.command("config.update", SID, {"nope": 1}),
        "invalid_body")
    add("config.update forbidden key", "config.update",
        key.command("config.update", SID, {"config": {"sync": {"broker": "mqtt://evil:1883"}}}), "forbidden_key")
    return cases


def test_every_bad_command_gets_its_reason_and_the_agent_stays_healthy(live: Live) -> None:
    started = time.monotonic()
    cases = _bad_commands(live.key)
    # the NaN case still carries a readable cmd_id: it is malformed, but answered with the id
    seen: dict[str, str] = {}
    for name, topic_kind, payload, cmd_id, status, reason in cases:
        if name == "NaN":
            cmd_id = json.loads(payload.replace(b"NaN", b"0"))["cmd_id"]
        body = live.roundtrip(topic_kind, payload, cmd_id)
        assert (body["status"], body["reason"]) == (status, reason), (name, body)
        assert body["kind"] == (json.loads(payload)["kind"] if name not in ("invalid JSON", "JSON array",
                                "invalid UTF-8", "1 MB", "NaN") else topic_kind), (name, body)
        seen[name] = reason

    # replay and versions need state: apply first, then send again / older / equal
    ping = live.key.command("ping", SID, {"echo": 1})
    assert live.roundtrip("ping", _json(ping), ping["cmd_id"])["status"] == "applied"
    replay = live.roundtrip("ping", _json(ping), ping["cmd_id"])
    assert (replay["status"], replay["reason"]) == ("duplicate", "duplicate")
    version = int(time.time() * 1000)
    update = live.key.command("config.update", SID, {"config": {"health": {"interval_s": 60.0}}}, version=version)
    applied = live.roundtrip("config.update", _json(update), update["cmd_id"])
    assert (applied["status"], applied["version"]) == ("applied", version), applied
    for v in (version - 1, version):
        stale = live.key.command("config.update", SID, {"config": {"health": {"interval_s": 60.0}}}, version=v)
        body = live.roundtrip("config.update", _json(stale), stale["cmd_id"])
        assert (body["status"], body["reason"]) == ("rejected", "stale_version"), body
    seen.update(duplicate="duplicate", stale="stale_version")

    # alive: same connection all along, no component restarted, a valid ping still applied
    sync = live.sync_detail()
    assert sync["state"] == "running" and sync["restarts"] == 0, sync
    assert sync["detail"]["connected"] is True and sync["detail"]["connects"] == 1, sync["detail"]
    status = live.agent.status()
    assert status["broker_connected"] is True
    assert status["config_version"] == version
    pong = live.ping()
    assert pong["status"] == "applied" and pong["result"]["pong"] is True
    assert set(seen.values()) >= {"unsigned", "bad_signature", "untrusted_key", "wrong_store", "expired",
                                  "issued_in_future", "unknown_kind", "malformed", "too_large", "duplicate",
                                  "stale_version", "invalid_body", "forbidden_key"}
    print(f"{len(cases) + 5} bad/replayed commands round-tripped in {time.monotonic() - started:.2f} s")


def test_a_burst_of_random_bytes_does_not_hurt_the_agent(live: Live) -> None:
    rng = random.Random(20240611)
    payloads = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2048))) for _ in range(200)]
    counts_before = dict(live.agent.status()["commands"])
    started = time.monotonic()
    for i, payload in enumerate(payloads):
        live.cloud.publish_nowait(live.topics.cmd(rng.choice(["ping", "config.update", "x"])), payload, qos=1)
    reasons: dict[str, int] = {}
    for _ in payloads:
        body = live.result(None, timeout=30)
        assert body["status"] == "rejected", body
        reasons[body["reason"]] = reasons.get(body["reason"], 0) + 1
    elapsed = time.monotonic() - started
    assert reasons == {"malformed": 200}
    counts = live.agent.status()["commands"]
    assert counts["rejected"] - counts_before.get("rejected", 0) == 200
    assert "failed" not in counts  # no internal errors
    sync = live.sync_detail()
    assert sync["state"] == "running" and sync["restarts"] == 0 and sync["detail"]["connects"] == 1, sync
    assert live.ping()["status"] == "applied"
    assert wait_until(lambda: live.agent.status()["outbox"].get("cmd-result", {}).get("depth") == 0, 10)
    print(f"200 random payloads answered in {elapsed:.2f} s")
