"""The command pipeline (sync/commands.py) in isolation, over a real SQLite store and a real outbox.

Contract (docs/architecture.md, "Commands"): every refusal names its reason, queues a ``cmd-result`` with that
reason, and leaves state unchanged; apply + inbox + resource version + result are one transaction.
The second half fuzzes the pipeline with hypothesis against an independent oracle of what must be applied.
"""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.config import SyncConfig
from agent.store import connect, open_store
from sync.cloud.commands import build_command
from sync.commands import CommandProcessor, CommandRejected, Handler, Outcome
from sync.outbox import Outbox
from sync.signing import generate_keypair, load_public_key, sign

pytestmark = pytest.mark.timeout(120)

STORE = "s1"
KEY_ID = "cloud-1"
MAX_BYTES = 262_144
SKEW_S = 300.0
WRITE, VERSIONED = "test.write", "test.versioned"
RESOURCE = "widget"

#: docs/architecture.md, Commands: the pipeline's reasons, plus what the test handlers refuse with.
PIPELINE_REASONS = {"too_large", "malformed", "unsigned", "untrusted_key", "bad_signature", "wrong_store",
                    "expired", "issued_in_future", "unknown_kind", "duplicate", "stale_version"}
HANDLER_REASONS = {"invalid_body"}


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    db: Path
    outbox: Outbox
    processor: CommandProcessor
    key: Ed25519PrivateKey
    public: Ed25519PublicKey
    clock: Clock
    reader: sqlite3.Connection
    applied: list[dict[str, Any]] = dc_field(default_factory=list)

    def command(self, kind: str = WRITE, body: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        kw.setdefault("now", self.clock.now)
        if kind == VERSIONED:
            kw.setdefault("resource", RESOURCE)
        return build_command(kind, kw.pop("store_id", STORE), body if body is not None else {"x": 1},
                             key=self.key, key_id=KEY_ID, **kw)

    def resign(self, cmd: dict[str, Any], key_id: str = KEY_ID) -> dict[str, Any]:
        return sign(cmd, self.key, key_id)

    # -- observing (an independent connection, as another process would) --------------------------------
    def state(self) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """Everything a command may change: inbox, resource_versions and the test handler's own table."""
        q = self.reader.execute
        return (q("SELECT cmd_id, kind, resource, version, status, result FROM inbox ORDER BY cmd_id").fetchall(),
                q("SELECT resource, version, cmd_id FROM resource_versions ORDER BY resource").fetchall(),
                q("SELECT cmd_id, kind, body FROM test_side ORDER BY rowid").fetchall())

    def result_count(self) -> int:
        return self.reader.execute("SELECT COUNT(*) FROM outbox WHERE stream = 'cmd-result'").fetchone()[0]

    def results_since(self, count: int) -> list[dict[str, Any]]:
        rows = self.reader.execute("SELECT body, schema, priority FROM outbox WHERE stream = 'cmd-result'"
                                   " ORDER BY id LIMIT -1 OFFSET ?", (count,)).fetchall()
        assert all(schema == "cmd-result/1" and priority == 0 for _, schema, priority in rows)
        return [json.loads(body) for body, _, _ in rows]

    def other_rows(self) -> int:
        return self.reader.execute("SELECT COUNT(*) FROM outbox WHERE stream != 'cmd-result'").fetchone()[0]


def _side_write(cmd: Any, conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO test_side(cmd_id, kind, body) VALUES (?, ?, ?)",
                 (cmd.cmd_id, cmd.kind, json.dumps(cmd.body, sort_keys=True)))


def _apply(cmd: Any, conn: sqlite3.Connection) -> dict[str, Any]:
    """Writes through the transaction's connection first, then may refuse: proves the rollback."""
    _side_write(cmd, conn)
    if "refuse" in cmd.body:
        raise CommandRejected("invalid_body", "the test handler refuses bodies with 'refuse'")
    return {"written": cmd.cmd_id}


def _explode(cmd: Any, conn: sqlite3.Connection) -> dict[str, Any]:
    _side_write(cmd, conn)
    raise RuntimeError("handler bug")


def make_env(directory: Path) -> Env:
    db = open_store(directory)
    setup = connect(db)
    setup.execute("CREATE TABLE test_side (cmd_id TEXT PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL)")
    setup.close()
    outbox = Outbox(db, store_id=STORE, boot_id="boot-test", priority_for=SyncConfig().priority_for,
                    connect=connect)
    key, pub = generate_keypair()
    clock = Clock()
    processor = CommandProcessor(outbox, store_id=STORE, trusted_keys={KEY_ID: load_public_key(pub)},
                                 max_bytes=MAX_BYTES, max_clock_skew_s=SKEW_S, clock=clock)
    processor.register(WRITE, Handler(apply=_apply))
    processor.register(VERSIONED, Handler(apply=_apply, resource=lambda cmd: RESOURCE))
    reader = sqlite3.connect(db, isolation_level=None)
    return Env(db, outbox, processor, key, load_public_key(pub), clock, reader)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = make_env(tmp_path)
    yield e
    e.reader.close()
    e.outbox.close()


def payload_of(cmd: Any, **dump_kw: Any) -> bytes:
    return json.dumps(cmd, **dump_kw).encode("utf-8")


def assert_refused(env: Env, payload: bytes, topic_kind: str | None, reason: str, *, status: str = "rejected",
                   cmd_id: str | None = None, kind: str | None = None) -> Outcome:
    """Process ``payload``; it must be refused for ``reason``, answered by one cmd-result, state untouched."""
    before, n = env.state(), env.result_count()
    outcome = env.processor.process(payload, topic_kind)
    assert (outcome.status, outcome.reason) == (status, reason), outcome
    assert env.state() == before, "a refused command changed state"
    results = env.results_since(n)
    assert len(results) == 1, results
    body = results[0]
    assert (body["status"], body["reason"], body["cmd_id"]) == (status, reason, cmd_id)
    assert body["kind"] == (kind if kind is not None else topic_kind)
    assert body["detail"] and body["result"] == {}
    assert env.other_rows() == 0
    assert not env.outbox.conn.in_transaction
    return outcome


def assert_applied(env: Env, cmd: dict[str, Any], topic_kind: str | None = None) -> Outcome:
    before, n = env.state(), env.result_count()
    outcome = env.processor.process(payload_of(cmd), topic_kind or cmd["kind"])
    assert (outcome.status, outcome.reason) == ("applied", None), outcome
    inbox, versions, side = env.state()
    assert len(inbox) == len(before[0]) + 1 and cmd["cmd_id"] in {r[0] for r in inbox}
    assert side[-1][0] == cmd["cmd_id"] and len(side) == len(before[2]) + 1
    if cmd["kind"] == VERSIONED:
        assert (RESOURCE, cmd["version"], cmd["cmd_id"]) in versions
    else:
        assert versions == before[1]
    [result] = env.results_since(n)
    assert result == {"cmd_id": cmd["cmd_id"], "kind": cmd["kind"], "status": "applied", "reason": None,
                      "detail": "", "result": {"written": cmd["cmd_id"]}, "version": cmd.get("version"),
                      "reply_to": cmd.get("reply_to")}
    return outcome


# == each refusal, one by one ==================================================================================
def test_a_valid_command_is_applied_with_its_result_in_the_same_transaction(env: Env) -> None:
    cmd = env.command(WRITE, {"echo": "é"}, reply_to="req-7")
    assert_applied(env, cmd)
    versioned = env.command(VERSIONED, version=5)
    assert_applied(env, versioned)
    assert env.processor.counts == {"applied": 2}


def test_replayed_command_is_a_duplicate_and_applied_once(env: Env) -> None:
    cmd = env.command(WRITE)
    assert_applied(env, cmd)
    assert_refused(env, payload_of(cmd), WRITE, "duplicate", status="duplicate", cmd_id=cmd["cmd_id"], kind=WRITE)
    assert_refused(env, payload_of(cmd), WRITE, "duplicate", status="duplicate", cmd_id=cmd["cmd_id"], kind=WRITE)
    assert env.reader.execute("SELECT COUNT(*) FROM test_side").fetchone() == (1,)
    assert env.processor.counts == {"applied": 1, "duplicate": 2}


def test_replay_of_a_versioned_command_is_a_duplicate_not_stale(env: Env) -> None:
    cmd = env.command(VERSIONED, version=3)
    assert_applied(env, cmd)
    assert_refused(env, payload_of(cmd), VERSIONED, "duplicate", status="duplicate", cmd_id=cmd["cmd_id"],
                   kind=VERSIONED)


def test_older_and_equal_versions_are_stale(env: Env) -> None:
    assert_applied(env, env.command(VERSIONED, version=10))
    older = env.command(VERSIONED, version=9)
    assert_refused(env, payload_of(older), VERSIONED, "stale_version", cmd_id=older["cmd_id"], kind=VERSIONED)
    equal = env.command(VERSIONED, version=10)
    assert_refused(env, payload_of(equal), VERSIONED, "stale_version", cmd_id=equal["cmd_id"], kind=VERSIONED)
    zero = env.command(VERSIONED, version=0)
    assert_refused(env, payload_of(zero), VERSIONED, "stale_version", cmd_id=zero["cmd_id"], kind=VERSIONED)
    assert_applied(env, env.command(VERSIONED, version=11))
    # a stale command is not remembered as seen: it stays stale, not duplicate
    assert_refused(env, payload_of(older), VERSIONED, "stale_version", cmd_id=older["cmd_id"], kind=VERSIONED)


def test_versioned_kind_without_version_is_malformed(env: Env) -> None:
    cmd = env.command(VERSIONED)
    del cmd["version"]
    cmd = env.resign(cmd)
    assert_refused(env, payload_of(cmd), VERSIONED, "malformed", cmd_id=cmd["cmd_id"], kind=VERSIONED)


def test_expired_command(env: Env) -> None:
    cmd = env.command(WRITE, now=env.clock.now - 7200, ttl_s=3600)
    assert_refused(env, payload_of(cmd), WRITE, "expired", cmd_id=cmd["cmd_id"], kind=WRITE)
    just = env.command(WRITE, now=env.clock.now - 10, ttl_s=10)  # expires_at == now: still valid
    assert_applied(env, just)


def test_command_issued_in_the_future_beyond_skew(env: Env) -> None:
    cmd = env.command(WRITE, now=env.clock.now + SKEW_S + 1)
    assert_refused(env, payload_of(cmd), WRITE, "issued_in_future", cmd_id=cmd["cmd_id"], kind=WRITE)
    assert_applied(env, env.command(WRITE, now=env.clock.now + SKEW_S - 1))  # within the allowed skew


def test_command_for_another_store(env: Env) -> None:
    cmd = env.command(WRITE, store_id="s2")
    assert_refused(env, payload_of(cmd), WRITE, "wrong_store", cmd_id=cmd["cmd_id"], kind=WRITE)


def test_unsigned_command(env: Env) -> None:
    cmd = env.command(WRITE)
    del cmd["sig"]
    assert_refused(env, payload_of(cmd), WRITE, "unsigned", cmd_id=cmd["cmd_id"], kind=WRITE)
    del cmd["key_id"]
    assert_refused(env, payload_of(cmd), WRITE, "unsigned", cmd_id=cmd["cmd_id"], kind=WRITE)
    cmd["sig"] = ""
    assert_refused(env, payload_of(cmd), WRITE, "unsigned", cmd_id=cmd["cmd_id"], kind=WRITE)


@pytest.mark.parametrize("tamper", [
    lambda c: c["body"].update(x=2),
    lambda c: c.update(expires_at=c["expires_at"] + 86400),
    lambda c: c.update(extra="added after signing"),
    lambda c: c.update(reply_to="someone-else"),
    lambda c: c.update(sig=c["sig"][:10] + ("A" if c["sig"][10] != "A" else "B") + c["sig"][11:]),
    lambda c: c.update(sig="!!not base64!!"),
], ids=["body", "expiry", "added-field", "reply-to", "sig-char", "sig-not-base64"])
def test_tampered_command_is_bad_signature(env: Env, tamper: Any) -> None:
    cmd = env.command(WRITE)
    tamper(cmd)
    assert_refused(env, payload_of(cmd), WRITE, "bad_signature", cmd_id=cmd["cmd_id"], kind=WRITE)


def test_untrusted_key(env: Env) -> None:
    cmd = env.resign(env.command(WRITE), key_id="unknown-key")
    assert_refused(env, payload_of(cmd), WRITE, "untrusted_key", cmd_id=cmd["cmd_id"], kind=WRITE)
    forged = sign(env.command(WRITE), Ed25519PrivateKey.generate(), KEY_ID)  # claims the trusted id
    assert_refused(env, payload_of(forged), WRITE, "bad_signature", cmd_id=forged["cmd_id"], kind=WRITE)


def test_one_megabyte_payload_is_too_large_before_parsing(env: Env) -> None:
    cmd = env.command(WRITE, {"pad": "x" * 2**20})
    outcome = assert_refused(env, payload_of(cmd), WRITE, "too_large")
    assert str(MAX_BYTES) in outcome.detail


def test_size_limit_is_inclusive(env: Env) -> None:
    cmd = env.command(WRITE, {"pad": ""})
    cmd = env.command(WRITE, {"pad": "x" * (MAX_BYTES - len(payload_of(cmd)))}, now=cmd["issued_at"])
    assert len(payload_of(cmd)) == MAX_BYTES
    assert_applied(env, cmd)
    big = env.command(WRITE, {"pad": "x" * (MAX_BYTES + 1 - len(payload_of(env.command(WRITE, {"pad": ""}))))})
    assert len(payload_of(big)) == MAX_BYTES + 1
    assert_refused(env, payload_of(big), WRITE, "too_large")


@pytest.mark.parametrize("payload", [
    b"\xff\xfe\xfd", b'{"cmd_id": "\xc3\x28"}', b"\xed\xa0\x80",  # invalid UTF-8 (incl. an encoded surrogate)
], ids=["garbage", "bad-continuation", "encoded-surrogate"])
def test_invalid_utf8_is_malformed(env: Env, payload: bytes) -> None:
    outcome = assert_refused(env, payload, WRITE, "malformed")
    assert "UTF-8" in outcome.detail


@pytest.mark.parametrize("payload", [b"", b"{", b"not json", b"{'a': 1}", b'{"a": 1,}', b"[" * 100_000,
                                     b"1" * 5000, b'{"n": ' + b"9" * 5000 + b"}"],
                         ids=["empty", "open-brace", "text", "single-quotes", "trailing-comma", "deep-nesting",
                              "huge-int", "huge-int-field"])
def test_invalid_json_is_malformed(env: Env, payload: bytes) -> None:
    outcome = assert_refused(env, payload, WRITE, "malformed")
    assert "JSON" in outcome.detail


@pytest.mark.parametrize("payload", [b"[]", b'[{"cmd_id": "x"}]', b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object_is_malformed(env: Env, payload: bytes) -> None:
    outcome = assert_refused(env, payload, WRITE, "malformed")
    assert "object" in outcome.detail


@pytest.mark.parametrize("field", ["cmd_id", "kind", "store_id", "issued_at", "expires_at", "body"])
def test_missing_field_is_malformed(env: Env, field: str) -> None:
    cmd = env.command(WRITE)
    del cmd[field]
    cmd = env.resign(cmd)  # correctly signed: only the missing field is wrong
    assert_refused(env, payload_of(cmd), WRITE, "malformed", cmd_id=cmd.get("cmd_id"), kind=WRITE)


@pytest.mark.parametrize(("field", "value"), [
    ("version", "3"), ("version", True), ("version", -1), ("version", 1.5), ("version", 2**64),
    ("issued_at", "now"), ("issued_at", True), ("issued_at", None), ("expires_at", False),
    ("expires_at", [1]), ("expires_at", 10**400), ("body", []), ("body", "text"), ("body", None),
    ("cmd_id", 5), ("cmd_id", None), ("store_id", ["s1"]), ("kind", 7), ("resource", 3),
], ids=lambda v: repr(v)[:16])
def test_mistyped_field_is_malformed(env: Env, field: str, value: Any) -> None:
    cmd = env.command(WRITE, version=1)
    cmd[field] = value
    cmd = env.resign(cmd)
    assert_refused(env, payload_of(cmd), WRITE, "malformed",
                   cmd_id=cmd["cmd_id"] if isinstance(cmd["cmd_id"], str) else None, kind=WRITE)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
@pytest.mark.parametrize("where", ["issued_at", "expires_at", "body"])
def test_non_finite_numbers_are_malformed_not_internal_errors(env: Env, token: str, where: str) -> None:
    cmd = env.command(WRITE)
    marker = "__NUMBER__"
    if where == "body":
        cmd["body"] = {"x": marker}
    else:
        cmd[where] = marker
    payload = payload_of(cmd).replace(f'"{marker}"'.encode(), token.encode())
    assert_refused(env, payload, WRITE, "malformed", cmd_id=cmd["cmd_id"], kind=WRITE)


def test_lone_surrogates_are_malformed_and_still_answered(env: Env) -> None:
    cmd = env.command(WRITE)
    body = payload_of(cmd)
    # a lone surrogate escape in the body: valid JSON, but no UTF-8 canonical form to verify
    bad_body = body.replace(b'"body": {"x": 1}', b'"body": {"x": "\\ud800"}')
    assert bad_body != body
    assert_refused(env, bad_body, WRITE, "malformed", cmd_id=cmd["cmd_id"], kind=WRITE)
    # in the cmd_id itself: the result must still be queued (without the unstorable id)
    bad_id = body.replace(cmd["cmd_id"].encode(), b"\\udfff" + cmd["cmd_id"].encode())
    assert_refused(env, bad_id, WRITE, "malformed", cmd_id=None, kind=WRITE)


def test_kind_not_matching_the_topic_is_malformed(env: Env) -> None:
    cmd = env.command(WRITE)
    assert_refused(env, payload_of(cmd), VERSIONED, "malformed", cmd_id=cmd["cmd_id"], kind=WRITE)


def test_unknown_kind(env: Env) -> None:
    cmd = env.command("no.such.kind")
    assert_refused(env, payload_of(cmd), "no.such.kind", "unknown_kind", cmd_id=cmd["cmd_id"], kind="no.such.kind")


@pytest.mark.parametrize(("kind", "resource"), [(WRITE, "config"), (VERSIONED, "config"), (VERSIONED, "")])
def test_resource_not_matching_the_handler_is_malformed(env: Env, kind: str, resource: str) -> None:
    cmd = env.command(kind, version=99, resource=resource)
    assert_refused(env, payload_of(cmd), kind, "malformed", cmd_id=cmd["cmd_id"], kind=kind)


def test_handler_refusal_rolls_back_its_own_writes(env: Env) -> None:
    cmd = env.command(VERSIONED, {"refuse": True}, version=7)
    assert_refused(env, payload_of(cmd), VERSIONED, "invalid_body", cmd_id=cmd["cmd_id"], kind=VERSIONED)
    # nothing was recorded as seen: a corrected command with a new id applies, at the same version
    assert_applied(env, env.command(VERSIONED, {"ok": True}, version=7))


def test_handler_crash_is_failed_internal_error_and_the_processor_keeps_working(env: Env) -> None:
    env.processor.register("test.explode", Handler(apply=_explode))
    cmd = env.command("test.explode")
    assert_refused(env, payload_of(cmd), "test.explode", "internal_error", status="failed", kind="test.explode",
                   cmd_id=cmd["cmd_id"])  # the cloud can tell which command failed
    assert env.reader.execute("SELECT COUNT(*) FROM test_side").fetchone() == (0,)  # its write was undone
    assert env.processor.counts["failed"] == 1
    # the same command is not remembered: nothing was recorded
    assert env.reader.execute("SELECT COUNT(*) FROM inbox WHERE cmd_id = ?", (cmd["cmd_id"],)).fetchone() == (0,)
    assert_applied(env, env.command(WRITE))
    assert_applied(env, env.command(VERSIONED, version=1))


def test_after_commit_runs_only_for_applied_commands_and_its_failure_is_contained(env: Env) -> None:
    seen: list[str] = []

    def after(cmd: Any, result: dict[str, Any]) -> None:
        seen.append(cmd.cmd_id)
        raise RuntimeError("reload failed")

    env.processor.register("test.after", Handler(apply=_apply, after_commit=after))
    good = env.command("test.after")
    assert env.processor.process(payload_of(good), "test.after").status == "applied"
    refused = env.command("test.after", {"refuse": 1})
    assert env.processor.process(payload_of(refused), "test.after").reason == "invalid_body"
    assert seen == [good["cmd_id"]]
    assert env.reader.execute("SELECT status FROM inbox WHERE cmd_id = ?", (good["cmd_id"],)).fetchone() == ("applied",)


def test_registering_a_kind_twice_is_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="already registered"):
        env.processor.register(WRITE, Handler(apply=_apply))


# == property-based fuzzing =====================================================================================
@pytest.fixture(scope="module")
def fuzz_env() -> Iterator[Env]:
    with tempfile.TemporaryDirectory(prefix="cmd-fuzz-") as tmp:
        e = make_env(Path(tmp))
        yield e
        e.reader.close()
        e.outbox.close()


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in obj.items() if k != "sig"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def oracle(env: Env, payload: bytes, topic_kind: str | None) -> tuple[bool, str]:
    """Written from the contract, independently of sync/commands.py: must this payload be applied?"""
    if len(payload) > MAX_BYTES:
        return False, "too_large"
    try:
        data = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return False, "not JSON"
    if not isinstance(data, dict):
        return False, "not an object"
    types_ok = (isinstance(data.get("cmd_id"), str) and isinstance(data.get("kind"), str)
                and isinstance(data.get("store_id"), str) and _is_number(data.get("issued_at"))
                and _is_number(data.get("expires_at")) and isinstance(data.get("body"), dict)
                and (data.get("resource") is None or isinstance(data.get("resource"), str)))
    version = data.get("version")
    if not types_ok or (version is not None and not (isinstance(version, int) and not isinstance(version, bool)
                                                       and 0 <= version < 2**63)):
        return False, "fields"
    if not (_finite(data["issued_at"]) and _finite(data["expires_at"])):
        return False, "non-finite"
    if topic_kind is not None and data["kind"] != topic_kind:
        return False, "topic"
    sig, key_id = data.get("sig"), data.get("key_id")
    if not (isinstance(sig, str) and key_id == KEY_ID):
        return False, "signature"
    try:
        env.public.verify(base64.b64decode(sig, validate=True), _canonical(data))
    except (ValueError, InvalidSignature):
        return False, "signature"
    now = env.clock.now
    if data["store_id"] != STORE or data["expires_at"] < now or data["issued_at"] > now + SKEW_S:
        return False, "store/time"
    if data["kind"] not in (WRITE, VERSIONED):
        return False, "kind"
    if env.reader.execute("SELECT 1 FROM inbox WHERE cmd_id = ?", (data["cmd_id"],)).fetchone():
        return False, "seen"
    if data["kind"] == VERSIONED:
        if data.get("resource") not in (None, RESOURCE) or version is None:
            return False, "resource/version"
        row = env.reader.execute("SELECT version FROM resource_versions WHERE resource = ?", (RESOURCE,)).fetchone()
        if row is not None and version <= row[0]:
            return False, "stale"
    elif data.get("resource") is not None:
        return False, "resource"
    if "refuse" in data["body"]:
        return False, "handler refuses"
    return True, "valid"


def check_properties(env: Env, payload: bytes, topic_kind: str | None) -> Outcome:
    should_apply, why = oracle(env, payload, topic_kind)
    before, n = env.state(), env.result_count()
    outcome = env.processor.process(payload, topic_kind)  # must never raise
    event(f"{outcome.status}:{outcome.reason}")  # reason coverage: pytest --hypothesis-show-statistics
    after = env.state()
    results = env.results_since(n)
    assert len(results) == 1, results  # every outcome is answered, exactly once
    assert (results[0]["status"], results[0]["reason"]) == (outcome.status, outcome.reason)
    if outcome.status == "applied":
        assert should_apply, f"applied although {why}: {payload[:300]!r}"
        assert len(after[0]) == len(before[0]) + 1 and len(after[2]) == len(before[2]) + 1
    else:
        assert not should_apply, f"refused a valid command ({outcome.reason}: {outcome.detail})"
        assert after == before, "state changed although not applied"
        assert outcome.status in ("rejected", "duplicate"), outcome
        assert outcome.reason in PIPELINE_REASONS | HANDLER_REASONS, outcome
        assert (outcome.status == "duplicate") == (outcome.reason == "duplicate")
    return outcome


_TOPIC_KINDS = st.sampled_from([WRITE, VERSIONED, "ping", None])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(
    st.binary(max_size=512),
    st.text(alphabet='{}[]":,0123456789.-eE tfnrul\\abcdkisg_', max_size=200).map(str.encode),
    # around the size limit: a drawn prefix padded to MAX_BYTES - 8 … MAX_BYTES + 8 bytes
    st.tuples(st.binary(max_size=64), st.integers(-8, 8)).map(
        lambda t: (t[0] + b"\x00" * MAX_BYTES)[:MAX_BYTES + t[1]]),
), topic_kind=_TOPIC_KINDS)
def test_fuzz_arbitrary_bytes_are_never_applied(fuzz_env: Env, payload: bytes, topic_kind: str | None) -> None:
    outcome = check_properties(fuzz_env, payload, topic_kind)
    assert outcome.status == "rejected"


_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                       st.sampled_from(["\ud800", "s1", "s2", WRITE, VERSIONED, RESOURCE, KEY_ID, "", "refuse"]))
_JSON = st.recursive(_JSON_LEAF, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
_MUTATIONS = ["none", "reorder", "drop", "drop+resign", "change", "sig-byte", "add-field", "add-field+resign",
              "replay"] + ["change+resign"] * 4
_SEMANTIC = ["store_id", "kind", "issued_at", "expires_at", "version", "resource", "body", "cmd_id"]
_FIELDS = ["v", "cmd_id", "kind", "store_id", "issued_at", "expires_at", "version", "resource", "reply_to",
           "body", "key_id", "sig"]


def _interesting_value(field: str, now: float) -> st.SearchStrategy[Any]:
    """Plausible values per field, so re-signed mutations reach the later pipeline steps."""
    specific: dict[str, st.SearchStrategy[Any]] = {
        "store_id": st.sampled_from([STORE, "s2", "S1", ""]),
        "kind": st.sampled_from([WRITE, VERSIONED, "ping", "unknown.kind"]),
        "issued_at": st.sampled_from([now, now + SKEW_S - 1, now + SKEW_S + 1, now - 10**6, 0, True]),
        "expires_at": st.sampled_from([now, now - 1, now + 3600, 0, now + 10**9, False]),
        "version": st.one_of(st.integers(-2, 2**64), st.sampled_from([None, "5", True, 1.0])),
        "resource": st.sampled_from([None, RESOURCE, "config", "", 1]),
        "body": st.one_of(st.dictionaries(st.text(max_size=5), _JSON_LEAF, max_size=3),
                          st.sampled_from([{"refuse": 1}, [], "x", None])),
        "cmd_id": st.one_of(st.text(max_size=8), st.sampled_from(["dup-id", None, 3])),
        "key_id": st.sampled_from([KEY_ID, "other-key", "", None, 1]),
        "sig": st.sampled_from(["", None, "AAAA", "not base64", 7]),
    }
    return specific.get(field, _JSON)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_signed_commands(fuzz_env: Env, data: st.DataObject) -> None:
    env = fuzz_env
    kind = data.draw(st.sampled_from([WRITE, VERSIONED]), label="kind")
    row = env.reader.execute("SELECT version FROM resource_versions WHERE resource = ?", (RESOURCE,)).fetchone()
    cmd = env.command(kind, {"n": data.draw(st.integers(0, 9))}, reply_to="r",
                      version=(row[0] if row else 0) + data.draw(st.integers(1, 1000)))
    mutation = data.draw(st.sampled_from(_MUTATIONS), label="mutation")
    if mutation == "replay":  # an already applied command (draws do not depend on the db's state)
        index = data.draw(st.integers(0, 10**6), label="replayed")
        if env.applied:
            cmd = env.applied[index % len(env.applied)]
    expect_applied = mutation in ("none", "reorder")
    if mutation.startswith("drop"):
        cmd.pop(data.draw(st.sampled_from(_FIELDS), label="dropped"), None)
    elif mutation == "change":  # any field, any JSON value: the signature no longer matches
        name = data.draw(st.sampled_from(_FIELDS), label="field")
        cmd[name] = data.draw(_interesting_value(name, env.clock.now) | _JSON, label="value")
    elif mutation == "change+resign":  # a correctly signed command with one questionable field
        name = data.draw(st.sampled_from(_SEMANTIC), label="field")
        cmd[name] = data.draw(_interesting_value(name, env.clock.now), label="value")
    elif mutation == "sig-byte":
        raw = bytearray(base64.b64decode(cmd["sig"]))
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        cmd["sig"] = base64.b64encode(bytes(raw)).decode()
    elif mutation == "reorder":
        cmd = dict(data.draw(st.permutations(list(cmd.items())), label="order"))
    elif mutation.startswith("add-field"):
        extra = data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k not in _FIELDS), label="extra")
        cmd[extra] = data.draw(_JSON, label="extra value")
    if mutation.endswith("+resign"):
        try:
            cmd = env.resign(cmd)
        except ValueError:
            pass  # no canonical form (NaN, lone surrogate): keeps the old signature, hence unverifiable
    if mutation == "add-field":
        expect_applied = False  # a field added after signing breaks the signature
    ensure_ascii = data.draw(st.booleans(), label="ascii")
    payload = json.dumps(cmd, ensure_ascii=ensure_ascii, indent=data.draw(st.sampled_from([None, 1])))
    raw_payload = payload.encode("utf-8", errors="surrogatepass")
    topic_kind = data.draw(st.sampled_from([kind, kind, cmd.get("kind"), None]), label="topic")
    if not isinstance(topic_kind, str) or "\ud800" in topic_kind:
        topic_kind = None  # an MQTT topic is always valid UTF-8 text
    outcome = check_properties(env, raw_payload, topic_kind)
    if outcome.status == "applied":
        env.applied.append(cmd)
    if expect_applied:
        assert outcome.status == "applied", outcome
    if mutation in ("sig-byte", "add-field"):
        assert outcome.reason in ("bad_signature", "malformed"), outcome
