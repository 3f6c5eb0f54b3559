"""The reference cloud's SQLite database: received messages (deduplicated), store states, commands."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sync.envelope import Envelope, dumps
from sync.sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    msg_id      TEXT PRIMARY KEY,
    store_id    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    boot_id     TEXT NOT NULL,
    event_ts    REAL NOT NULL,
    received_at REAL NOT NULL,
    historical  INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_stream_seq ON messages(store_id, stream, seq);
CREATE TABLE IF NOT EXISTS stream_stats (
    store_id   TEXT NOT NULL,
    stream     TEXT NOT NULL,
    received   INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, stream)
);
CREATE TABLE IF NOT EXISTS states (
    store_id TEXT PRIMARY KEY,
    boot_id  TEXT NOT NULL,
    online   INTEGER NOT NULL,
    versions TEXT NOT NULL,
    ts       REAL NOT NULL,
    births   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS commands (
    cmd_id     TEXT PRIMARY KEY,
    store_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    resource   TEXT,
    version    INTEGER,
    payload    TEXT NOT NULL,
    issued_at  REAL NOT NULL,
    expires_at REAL NOT NULL,
    sends      INTEGER NOT NULL DEFAULT 0,
    status     TEXT,
    reason     TEXT,
    result     TEXT,
    result_at  REAL
);
CREATE INDEX IF NOT EXISTS commands_resource ON commands(store_id, resource, version);
"""


class CloudStore:
    """One connection, used from the receiver's single thread (or a CLI command)."""

    def __init__(self, path: Path | str) -> None:
        self.conn = connect(path)
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def store_messages(self, envelopes: list[Envelope]) -> tuple[int, int]:
        """Insert a batch in one transaction; returns ``(new, duplicates)``. Command results also update
        their command's row."""
        now = time.time()
        new = dup = 0
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for env in envelopes:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO messages(msg_id, store_id, stream, seq, boot_id, event_ts, received_at,"
                    " historical, body) VALUES (?,?,?,?,?,?,?,?,?)",
                    (env.msg_id, env.store_id, env.stream, env.seq, env.boot_id, env.event_ts, now,
                     int(env.historical), dumps(env.body)))
                is_new = cur.rowcount == 1
                new += is_new
                dup += not is_new
                conn.execute(
                    "INSERT INTO stream_stats(store_id, stream, received, duplicates) VALUES (?,?,?,?)"
                    " ON CONFLICT DO UPDATE SET received = received + excluded.received,"
                    " duplicates = duplicates + excluded.duplicates",
                    (env.store_id, env.stream, int(is_new), int(not is_new)))
                if is_new and env.stream == "cmd-result" and isinstance(env.body, dict):
                    body = env.body
                    conn.execute("UPDATE commands SET status = ?, reason = ?, result = ?, result_at = ?"
                                 " WHERE cmd_id = ? AND (status IS NULL OR status != 'applied')",
                                 (body.get("status"), body.get("reason"), dumps(body.get("result")), now,
                                  body.get("cmd_id")))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new, dup

    def record_state(self, state: dict[str, Any]) -> None:
        """Upsert a store's birth or offline state."""
        self.conn.execute(
            "INSERT INTO states(store_id, boot_id, online, versions, ts, births) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT(store_id) DO UPDATE SET boot_id = excluded.boot_id, online = excluded.online,"
            " versions = excluded.versions, ts = excluded.ts, births = births + excluded.births",
            (state["store_id"], state.get("boot_id", ""), int(bool(state.get("online"))),
             dumps(state.get("versions") or {}), float(state.get("ts") or time.time()),
             int(bool(state.get("online")))))

    def record_command(self, cmd: dict[str, Any]) -> None:
        """Keep a signed command so it can be re-sent on the store's next birth."""
        self.conn.execute(
            "INSERT OR IGNORE INTO commands(cmd_id, store_id, kind, resource, version, payload, issued_at,"
            " expires_at) VALUES (?,?,?,?,?,?,?,?)",
            (cmd["cmd_id"], cmd["store_id"], cmd["kind"], cmd.get("resource"), cmd.get("version"), dumps(cmd),
             cmd["issued_at"], cmd["expires_at"]))

    def mark_sent(self, cmd_id: str) -> None:
        self.conn.execute("UPDATE commands SET sends = sends + 1 WHERE cmd_id = ?", (cmd_id,))

    def commands_to_resend(self, store_id: str, versions: dict[str, Any], now: float | None = None) -> list[dict[str, Any]]:
        """Per resource, the newest unexpired command the store has not applied and not refused for good.

        A command with a result other than ``failed`` (a transient internal error) is never re-sent: an
        ``applied`` one is done, a rejected one (invalid config, forbidden key, …) would be rejected again.
        """
        now = time.time() if now is None else now
        rows = self.conn.execute(
            "SELECT resource, version, payload FROM commands WHERE store_id = ? AND resource IS NOT NULL"
            " AND expires_at > ? AND (status IS NULL OR status = 'failed') ORDER BY resource, version DESC",
            (store_id, now)).fetchall()
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for resource, version, payload in rows:
            if resource in seen:
                continue
            seen.add(resource)
            have = versions.get(resource)
            if not isinstance(have, int) or have < version:
                out.append(json.loads(payload))
        return out

    def desired_versions(self, store_id: str) -> dict[str, int]:
        rows = self.conn.execute("SELECT resource, MAX(version) FROM commands WHERE store_id = ? AND resource IS NOT"
                                 " NULL GROUP BY resource", (store_id,)).fetchall()
        return {r: int(v) for r, v in rows}

    def command(self, cmd_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT status, reason, result, sends FROM commands WHERE cmd_id = ?",
                                (cmd_id,)).fetchone()
        if row is None:
            return None
        return {"status": row[0], "reason": row[1], "result": json.loads(row[2]) if row[2] else None,
                "sends": row[3]}

    def gaps(self, store_id: str, stream: str) -> list[tuple[int, int]]:
        """Missing sequence ranges ``(first, last)`` between the lowest and highest seq received."""
        rows = self.conn.execute(
            "SELECT seq + 1, nxt - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq) AS nxt FROM messages"
            " WHERE store_id = ? AND stream = ?) WHERE nxt > seq + 1", (store_id, stream)).fetchall()
        return [(int(a), int(b)) for a, b in rows]

    def summary(self) -> dict[str, Any]:
        """Per store and stream: received, duplicates, seq range and unexplained gaps."""
        out: dict[str, Any] = {}
        for store_id, stream, received, dups in self.conn.execute(
                "SELECT store_id, stream, received, duplicates FROM stream_stats ORDER BY 1, 2").fetchall():
            lo, hi = self.conn.execute("SELECT MIN(seq), MAX(seq) FROM messages WHERE store_id = ? AND stream = ?",
                                       (store_id, stream)).fetchone()
            out.setdefault(store_id, {})[stream] = {
                "received": received, "duplicates": dups, "first_seq": lo, "last_seq": hi,
                "gaps": self.gaps(store_id, stream)}
        return out
