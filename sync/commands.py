"""Signed commands from the cloud: validation in a fixed order, then apply + result in one transaction.

Order (DESIGN.md §5): size → parse → signature → target store → expiry → duplicate → version → apply and
queue the result atomically → only then is the MQTT message acknowledged (by the caller). Every rejection is
answered with a ``cmd-result`` naming the reason, and leaves state unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sync.envelope import dumps
from sync.outbox import Outbox, OutboxItem
from sync.signing import SignatureError, verify

log = logging.getLogger(__name__)

RESULT_STREAM = "cmd-result"
RESULT_SCHEMA = "cmd-result/1"
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "cmd_id": str, "kind": str, "store_id": str, "issued_at": (int, float), "expires_at": (int, float),
    "body": dict,
}


class CommandRejected(Exception):
    """Raised by a handler (or the pipeline) to refuse a command; ``reason`` is a stable machine word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


@dataclass(frozen=True, slots=True)
class Command:
    """A verified command. ``resource`` names what ``version`` orders (e.g. ``config``); None = unversioned."""

    cmd_id: str
    kind: str
    store_id: str
    issued_at: float
    expires_at: float
    body: dict[str, Any]
    version: int | None = None
    reply_to: str | None = None
    key_id: str | None = None
    resource: str | None = None


@dataclass(slots=True)
class Handler:
    """How to apply one kind. ``apply`` runs inside the transaction and returns the result body;
    ``after_commit`` runs once the change is durable (reload a component, notify)."""

    apply: Callable[[Command, sqlite3.Connection], dict[str, Any]]
    resource: Callable[[Command], str | None] = lambda cmd: None
    after_commit: Callable[[Command, dict[str, Any]], None] | None = None


@dataclass(slots=True)
class Outcome:
    """What processing one message produced (also what was queued as the cmd-result)."""

    status: str  # applied | rejected | duplicate | failed
    reason: str | None
    cmd_id: str | None
    kind: str | None
    result: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


class CommandProcessor:
    """Validates and applies commands for one store; thread-compatible (call from the sync thread)."""

    def __init__(self, outbox: Outbox, *, store_id: str, trusted_keys: dict[str, Ed25519PublicKey],
                 max_bytes: int = 262_144, max_clock_skew_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.store_id = store_id
        self.trusted_keys = trusted_keys
        self.max_bytes = max_bytes
        self.max_clock_skew_s = max_clock_skew_s
        self.clock = clock
        self.handlers: dict[str, Handler] = {}
        self.counts: dict[str, int] = {}

    def register(self, kind: str, handler: Handler) -> None:
        """Add a command kind (later issues register theirs: ``price.update``, ``watchlist.upsert`` …)."""
        if kind in self.handlers:
            raise ValueError(f"command kind {kind!r} is already registered")
        self.handlers[kind] = handler

    def process(self, payload: bytes, topic_kind: str | None = None) -> Outcome:
        """Run the whole pipeline on one raw payload; never raises for bad input."""
        try:
            outcome = self._process(payload, topic_kind)
        except Exception as exc:  # a bug in a handler must not kill the sync loop
            log.exception("command processing failed")
            outcome = Outcome("failed", "internal_error", _cmd_id_of(payload), topic_kind,
                              detail=type(exc).__name__)
            self._reply_safely(outcome)
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        return outcome

    def _process(self, payload: bytes, topic_kind: str | None) -> Outcome:
        if len(payload) > self.max_bytes:
            return self._reject(None, topic_kind, "too_large",
                                f"command is {len(payload)} bytes; the limit is {self.max_bytes}")
        try:
            data = json.loads(payload.decode("utf-8"))
        except UnicodeDecodeError:
            return self._reject(None, topic_kind, "malformed", "payload is not valid UTF-8")
        except (ValueError, RecursionError):  # JSONDecodeError, or an integer beyond int_max_str_digits
            return self._reject(None, topic_kind, "malformed", "payload is not valid JSON")
        if not isinstance(data, dict):
            return self._reject(None, topic_kind, "malformed", "command must be a JSON object")
        cmd_id = _utf8_or_none(data.get("cmd_id"))
        kind = _utf8_or_none(data.get("kind")) or topic_kind
        try:
            cmd = self._parse(data, topic_kind)
            verify(data, self.trusted_keys)
        except CommandRejected as exc:
            return self._reject(cmd_id, kind, exc.reason, exc.detail)
        except SignatureError as exc:
            return self._reject(cmd_id, kind, exc.reason, str(exc))
        except ValueError as exc:  # no canonical form: NaN/Infinity or a lone surrogate somewhere
            return self._reject(cmd_id, kind, "malformed", f"command has no canonical JSON form: {exc}")
        now = self.clock()
        if cmd.store_id != self.store_id:
            return self._reject(cmd.cmd_id, cmd.kind, "wrong_store",
                                f"command is for store {cmd.store_id!r}, this is {self.store_id!r}")
        if cmd.expires_at < now:
            return self._reject(cmd.cmd_id, cmd.kind, "expired", f"expired {now - cmd.expires_at:.0f} s ago")
        if cmd.issued_at > now + self.max_clock_skew_s:
            return self._reject(cmd.cmd_id, cmd.kind, "issued_in_future",
                                "issued_at is ahead of this box's clock by more than the allowed skew")
        handler = self.handlers.get(cmd.kind)
        if handler is None:
            return self._reject(cmd.cmd_id, cmd.kind, "unknown_kind", f"no handler for {cmd.kind!r}")
        return self._apply(cmd, handler)

    def _parse(self, data: dict[str, Any], topic_kind: str | None) -> Command:
        for name, types in _REQUIRED.items():
            value = data.get(name)
            if not isinstance(value, types) or isinstance(value, bool):
                raise CommandRejected("malformed", f"field {name!r} is missing or of the wrong type")
        version = data.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                    or not 0 <= version < 2**63):
            raise CommandRejected("malformed", "field 'version' must be a non-negative integer")
        if topic_kind is not None and data["kind"] != topic_kind:
            raise CommandRejected("malformed", f"kind {data['kind']!r} does not match the topic's {topic_kind!r}")
        reply_to = data.get("reply_to")
        resource = data.get("resource")
        if resource is not None and not isinstance(resource, str):
            raise CommandRejected("malformed", "field 'resource' must be a string")
        return Command(cmd_id=data["cmd_id"], kind=data["kind"], store_id=data["store_id"],
                       issued_at=_finite(data, "issued_at"), expires_at=_finite(data, "expires_at"),
                       body=data["body"], version=version, reply_to=reply_to if isinstance(reply_to, str) else None,
                       key_id=data.get("key_id"), resource=resource)

    def _apply(self, cmd: Command, handler: Handler) -> Outcome:
        conn = self.outbox.conn
        resource = handler.resource(cmd)
        if cmd.resource is not None and cmd.resource != resource:
            return self._reject(cmd.cmd_id, cmd.kind, "malformed",
                                f"{cmd.kind} versions resource {resource!r}, not {cmd.resource!r}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = conn.execute("SELECT status, result FROM inbox WHERE cmd_id = ?", (cmd.cmd_id,)).fetchone()
            if seen is not None:
                conn.execute("ROLLBACK")
                return self._reject(cmd.cmd_id, cmd.kind, "duplicate",
                                    f"already processed with status {seen[0]}", status="duplicate")
            if resource is not None:
                if cmd.version is None:
                    conn.execute("ROLLBACK")
                    return self._reject(cmd.cmd_id, cmd.kind, "malformed", f"{cmd.kind} needs a 'version'")
                row = conn.execute("SELECT version FROM resource_versions WHERE resource = ?", (resource,)).fetchone()
                if row is not None and cmd.version <= row[0]:
                    conn.execute("ROLLBACK")
                    return self._reject(cmd.cmd_id, cmd.kind, "stale_version",
                                        f"{resource} is at version {row[0]}; command has {cmd.version}")
            try:
                result = handler.apply(cmd, conn)
            except CommandRejected as exc:
                conn.execute("ROLLBACK")
                return self._reject(cmd.cmd_id, cmd.kind, exc.reason, exc.detail)
            now = self.clock()
            if resource is not None:
                conn.execute("INSERT INTO resource_versions(resource, version, cmd_id, applied_at) VALUES (?,?,?,?)"
                             " ON CONFLICT(resource) DO UPDATE SET version = excluded.version,"
                             " cmd_id = excluded.cmd_id, applied_at = excluded.applied_at",
                             (resource, cmd.version, cmd.cmd_id, now))
            outcome = Outcome("applied", None, cmd.cmd_id, cmd.kind, result)
            conn.execute("INSERT INTO inbox(cmd_id, kind, resource, version, received_at, status, result)"
                         " VALUES (?,?,?,?,?,?,?)",
                         (cmd.cmd_id, cmd.kind, resource, cmd.version, now, "applied", dumps(result)))
            self.outbox.enqueue_in(conn, [self._result_item(outcome, cmd.reply_to, cmd.version)])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("command applied", extra={"cmd_id": cmd.cmd_id, "kind": cmd.kind, "version": cmd.version})
        if handler.after_commit is not None:
            try:
                handler.after_commit(cmd, result)
            except Exception:
                log.exception("after-commit hook failed", extra={"cmd_id": cmd.cmd_id})
        return outcome

    def _reject(self, cmd_id: str | None, kind: str | None, reason: str, detail: str,
                status: str = "rejected") -> Outcome:
        log.warning("command refused", extra={"cmd_id": cmd_id, "kind": kind, "reason": reason, "detail": detail})
        outcome = Outcome(status, reason, cmd_id, kind, detail=detail)
        self._reply_safely(outcome)
        return outcome

    def _reply_safely(self, outcome: Outcome) -> None:
        try:
            self.outbox.enqueue_many([self._result_item(outcome, None, None)])
        except Exception:
            log.exception("could not queue a cmd-result")

    @staticmethod
    def _result_item(outcome: Outcome, reply_to: str | None, version: int | None) -> OutboxItem:
        body = {"cmd_id": outcome.cmd_id, "kind": outcome.kind, "status": outcome.status,
                "reason": outcome.reason, "detail": outcome.detail, "result": outcome.result,
                "version": version, "reply_to": reply_to}
        return OutboxItem(RESULT_STREAM, body, schema=RESULT_SCHEMA)


def _utf8_or_none(value: Any) -> str | None:
    """``value`` if it is a string that can be stored and sent (no lone surrogates), else None."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _finite(data: dict[str, Any], name: str) -> float:
    try:
        value = float(data[name])
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise CommandRejected("malformed", f"field {name!r} must be a finite number")
    return value


def _cmd_id_of(payload: bytes) -> str | None:
    """The command id, if the payload is readable enough to have one (for error replies)."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    cmd_id = data.get("cmd_id") if isinstance(data, dict) else None
    return _utf8_or_none(cmd_id) if isinstance(cmd_id, str) else None
