"""The durable outbox: every up message is a committed SQLite row before ``enqueue`` returns.

Rows leave the outbox only when the broker acknowledged them (QoS 1 PUBACK) and, for streams the cloud
acknowledges, when its ``down/ack`` names them. Each stream has a sequence that never wraps and a priority;
over quota, the lowest-priority oldest rows are shed (never priority 0) and a ``gap`` event says what went.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.envelope import Envelope, dumps, new_msg_id
from sync.sqlite import connect as sqlite_connect

log = logging.getLogger(__name__)

PENDING = 0
BROKER_ACKED = 1
GAP_STREAM = "events/gap"
_SHED_BATCH = 500


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message to enqueue: ``stream`` is the topic suffix under ``stores/{sid}/up/``."""

    stream: str
    body: Any
    event_ts: float | None = None
    schema: str | None = None
    ttl_s: float | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A stored message as the sync client reads it."""

    id: int
    msg_id: str
    stream: str
    seq: int
    priority: int
    boot_id: str
    event_ts: float
    expires_at: float | None
    schema: str | None
    body: str

    def envelope(self, store_id: str, *, historical: bool) -> Envelope:
        """The wire envelope of this row."""
        return Envelope(msg_id=self.msg_id, store_id=store_id, boot_id=self.boot_id, stream=self.stream,
                        seq=self.seq, event_ts=self.event_ts, body=json.loads(self.body),
                        expires_at=self.expires_at, historical=historical, schema=self.schema)


class Outbox:
    """Durable, prioritised, per-stream-ordered message queue over one SQLite database.

    Thread-safe: each thread gets its own connection; SQLite serialises writers (``BEGIN IMMEDIATE``).

    Example:
        >>> ob = Outbox(db_path, store_id="s1", boot_id=new_msg_id(), priority_for=lambda s: 1)  # doctest: +SKIP
        >>> ob.enqueue("telemetry/health", {"cpu": 0.2})  # doctest: +SKIP
        '01J...'
    """

    def __init__(self, db_path: Path | str, *, store_id: str, boot_id: str,
                 priority_for: Callable[[str], int], max_bytes: int = 512 * 2**20,
                 max_messages: int = 2_000_000, default_ttl_s: float = 0.0,
                 connect: Callable[[Path | str], sqlite3.Connection] | None = None) -> None:
        self.db_path = db_path
        self.store_id = store_id
        self.boot_id = boot_id
        self.priority_for = priority_for
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.default_ttl_s = default_ttl_s
        self._connect = connect or sqlite_connect
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (created on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(self.db_path)
            self._local.conn = conn
        return conn

    @property
    def ack_conn(self) -> sqlite3.Connection:
        """This thread's connection for acknowledgements, with ``synchronous=NORMAL``: losing the last
        acks to a power cut only causes re-sends (deduplicated by the cloud), never loss, and it saves
        an fsync per batch on the hot drain path."""
        conn = getattr(self._local, "ack_conn", None)
        if conn is None:
            conn = self._connect(self.db_path)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.ack_conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connections."""
        for name in ("conn", "ack_conn"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)

    # -- producing ---------------------------------------------------------------------------------
    def enqueue(self, stream: str, body: Any, *, event_ts: float | None = None, schema: str | None = None,
                ttl_s: float | None = None) -> str:
        """Store one message durably and return its ``msg_id``."""
        return self.enqueue_many([OutboxItem(stream, body, event_ts, schema, ttl_s)])[0]

    def enqueue_many(self, items: Sequence[OutboxItem]) -> list[str]:
        """Store several messages in one transaction (one fsync): the cheap way to produce in bulk."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self.enqueue_in(conn, items)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def enqueue_in(self, conn: sqlite3.Connection, items: Iterable[OutboxItem]) -> list[str]:
        """Insert within the caller's open transaction (used to apply a command and queue its result
        atomically). The caller commits."""
        now = time.time()
        ids: list[str] = []
        for item in items:
            _validate_stream(item.stream)
            body = dumps(item.body)
            seq, priority = self._next_seq(conn, item.stream)
            ttl = self.default_ttl_s if item.ttl_s is None else item.ttl_s
            msg_id = new_msg_id()
            conn.execute(
                "INSERT INTO outbox(msg_id, stream, seq, priority, boot_id, event_ts, enqueued_at, expires_at,"
                " schema, body, size) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (msg_id, item.stream, seq, priority, self.boot_id,
                 now if item.event_ts is None else float(item.event_ts), now,
                 (now + ttl) if ttl and ttl > 0 else None, item.schema, body, len(body) + 200),
            )
            ids.append(msg_id)
        self._enforce_quota(conn)
        return ids

    def _next_seq(self, conn: sqlite3.Connection, stream: str) -> tuple[int, int]:
        row = conn.execute("SELECT next_seq, priority FROM outbox_streams WHERE stream = ?", (stream,)).fetchone()
        if row is None:
            priority = int(self.priority_for(stream))
            conn.execute("INSERT INTO outbox_streams(stream, priority, next_seq, enqueued) VALUES (?, ?, 2, 1)",
                         (stream, priority))
            return 1, priority
        conn.execute("UPDATE outbox_streams SET next_seq = next_seq + 1, enqueued = enqueued + 1 WHERE stream = ?",
                     (stream,))
        return int(row[0]), int(row[1])

    def _enforce_quota(self, conn: sqlite3.Connection) -> None:
        """Shed the lowest-priority oldest rows while over quota; priority 0 is never shed."""
        count, size = conn.execute("SELECT COALESCE(SUM(depth),0), COALESCE(SUM(bytes),0) FROM outbox_streams").fetchone()
        if count <= self.max_messages and size <= self.max_bytes:
            return
        shed: dict[str, list[int]] = {}
        while count > self.max_messages or size > self.max_bytes:
            # Overshoot a little (1 % of the quota, at most _SHED_BATCH rows) so the shedding query is not
            # paid on every enqueue at the limit.
            want = max(int(count - self.max_messages), 0) + max(1, min(_SHED_BATCH, self.max_messages // 100))
            rows = conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE priority > 0"
                " ORDER BY priority DESC, id ASC LIMIT ?) RETURNING stream, seq, size", (want,)
            ).fetchall()
            if not rows:
                log.warning("outbox over quota with only priority-0 messages left; keeping them",
                            extra={"messages": count, "bytes": size})
                break
            for stream, seq, row_size in rows:
                shed.setdefault(stream, []).append(seq)
                count -= 1
                size -= row_size
        for stream, seqs in shed.items():
            conn.execute("UPDATE outbox_streams SET shed = shed + ? WHERE stream = ?", (len(seqs), stream))
            gap = {"stream": stream, "shed": len(seqs), "first_seq": min(seqs), "last_seq": max(seqs),
                   "reason": "outbox_quota"}
            log.warning("outbox quota: shed messages", extra=gap)
            seq, priority = self._next_seq(conn, GAP_STREAM)
            now = time.time()
            body = dumps(gap)
            conn.execute(
                "INSERT INTO outbox(msg_id, stream, seq, priority, boot_id, event_ts, enqueued_at, body, size,"
                " schema) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (new_msg_id(), GAP_STREAM, seq, min(priority, 0), self.boot_id, now, now, body,
                 len(body) + 200, "gap/1"),
            )

    # -- consuming (the sync client) -------------------------------------------------------------------
    def next_batch(self, limit: int, exclude: Iterable[int] = ()) -> list[OutboxRow]:
        """Pending rows in send order (priority, then age), skipping ids already in flight."""
        exclude = list(exclude)
        placeholders = ",".join("?" * len(exclude))
        sql = ("SELECT id, msg_id, stream, seq, priority, boot_id, event_ts, expires_at, schema, body FROM outbox"
               " WHERE state = 0" + (f" AND id NOT IN ({placeholders})" if exclude else "") +
               " ORDER BY priority, id LIMIT ?")
        rows = self.conn.execute(sql, (*exclude, limit)).fetchall()
        return [OutboxRow(*r) for r in rows]

    def mark_sent(self, ids: Sequence[int], *, cloud_ack: bool) -> int:
        """The broker acknowledged these rows: delete them, or park them until the cloud acks."""
        if not ids:
            return 0
        now = time.time()
        conn = self.ack_conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if cloud_ack:
                conn.executemany("UPDATE outbox SET state = 1, sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                                 [(now, i) for i in ids])
                n = len(ids)
            else:
                n = self._delete_acked(conn, "id", ids, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return n

    def cloud_acked(self, msg_ids: Sequence[str]) -> int:
        """The cloud stored these messages: remove them for good. Unknown ids are ignored."""
        if not msg_ids:
            return 0
        conn = self.ack_conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = self._delete_acked(conn, "msg_id", msg_ids, time.time())
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return n

    def _delete_acked(self, conn: sqlite3.Connection, column: str, keys: Sequence[Any], now: float) -> int:
        counts: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            rows = conn.execute(
                f"DELETE FROM outbox WHERE {column} IN ({','.join('?' * len(chunk))}) RETURNING stream", chunk
            ).fetchall()
            for (stream,) in rows:
                counts[stream] = counts.get(stream, 0) + 1
        for stream, n in counts.items():
            conn.execute("UPDATE outbox_streams SET acked = acked + ?, last_acked_at = ? WHERE stream = ?",
                         (n, now, stream))
        return sum(counts.values())

    def dead_letter(self, row_id: int, reason: str) -> None:
        """The broker refused this row for good (e.g. not authorised): move it aside, keep it inspectable."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("DELETE FROM outbox WHERE id = ? RETURNING msg_id, stream, seq, body",
                               (row_id,)).fetchone()
            if row is not None:
                conn.execute("INSERT OR REPLACE INTO outbox_dead(msg_id, stream, seq, body, reason, failed_at)"
                             " VALUES (?,?,?,?,?,?)", (*row, reason, time.time()))
                conn.execute("UPDATE outbox_streams SET rejected = rejected + 1 WHERE stream = ?", (row[1],))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def requeue_unconfirmed(self, older_than_s: float, streams: Sequence[str] | None = None) -> int:
        """Rows the broker took but the cloud never acknowledged go back to pending (sent again, same id).

        A row is due ``older_than_s × 2^(attempts − 1)`` after its last send (capped at 32×), so a cloud that
        is down for hours is not flooded with the whole backlog every ``older_than_s``.
        """
        now = time.time()
        sql = ("UPDATE outbox SET state = 0 WHERE state = 1"
               " AND sent_at + ? * (1 << MIN(MAX(attempts - 1, 0), 5)) <= ?")
        args: list[Any] = [older_than_s, now]
        if streams:
            sql += f" AND stream IN ({','.join('?' * len(streams))})"
            args.extend(streams)
        return self.conn.execute(sql, args).rowcount

    def drop_expired(self, now: float | None = None) -> int:
        """Delete rows past ``expires_at`` (counted per stream as expired); returns how many."""
        now = time.time() if now is None else now
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("DELETE FROM outbox WHERE expires_at IS NOT NULL AND expires_at < ? AND priority > 0"
                                " RETURNING stream", (now,)).fetchall()
            counts: dict[str, int] = {}
            for (stream,) in rows:
                counts[stream] = counts.get(stream, 0) + 1
            for stream, n in counts.items():
                conn.execute("UPDATE outbox_streams SET expired = expired + ? WHERE stream = ?", (n, stream))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(rows)

    # -- observing ---------------------------------------------------------------------------------
    def stats(self, conn: sqlite3.Connection | None = None) -> dict[str, dict[str, Any]]:
        """Per stream: enqueued, acked, shed, expired, rejected, depth, bytes, last_acked_at, priority."""
        rows = (conn or self.conn).execute(
            "SELECT stream, priority, enqueued, acked, shed, expired, rejected, depth, bytes, last_acked_at"
            " FROM outbox_streams ORDER BY stream").fetchall()
        keys = ("priority", "enqueued", "acked", "shed", "expired", "rejected", "depth", "bytes", "last_acked_at")
        return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in rows}

    def depth(self, conn: sqlite3.Connection | None = None) -> int:
        """Messages not yet confirmed, all streams."""
        return int((conn or self.conn).execute("SELECT COALESCE(SUM(depth), 0) FROM outbox_streams").fetchone()[0])


def _validate_stream(stream: str) -> None:
    if not stream or stream.startswith("/") or stream.endswith("/") or any(c in stream for c in "+#\x00"):
        raise ValueError(f"invalid stream name {stream!r}: use topic levels like 'telemetry/health'")
