"""SQL of the identity tables, on a caller's connection (so commands can write inside their transaction).

Nothing here commits: callers own the transaction. Embeddings go in and out only through an
:class:`~agent.identity.crypto.EmbeddingCipher`; the database never sees a plain float.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from ulid import ULID

from agent.identity.crypto import EmbeddingCipher

__all__ = ["GALLERIES", "WATCHLIST_KINDS", "ENROL_GALLERIES", "IdentityRow", "new_id"]

#: Every gallery, in the order a match is decided (an opt-out match suppresses everything else).
GALLERIES: tuple[str, ...] = ("optout", "watchlist", "staff", "vip", "member", "visitor")
WATCHLIST_KINDS: tuple[str, ...] = ("theft", "scalper", "custom")
#: Galleries people are enrolled in on purpose (CLI ``identities enroll --kind``).
ENROL_GALLERIES: tuple[str, ...] = ("member", "vip", "staff", "watchlist", "optout")


def new_id() -> str:
    """A fresh pseudonymous id (ULID): says nothing about the person."""
    return str(ULID())


@dataclass(frozen=True, slots=True)
class IdentityRow:
    """One identity record (no biometric data)."""

    id: str
    gallery: str
    kind: str | None
    reason: str | None
    source: str | None
    created_at: float
    last_seen: float | None
    expires_at: float | None
    updated_at: float = 0.0


_COLS = "id, gallery, kind, reason, source, created_at, last_seen, expires_at, updated_at"


def get_identity(conn: sqlite3.Connection, identity_id: str) -> IdentityRow | None:
    """The record of ``identity_id`` or None."""
    row = conn.execute(f"SELECT {_COLS} FROM identities WHERE id = ?", (identity_id,)).fetchone()
    return IdentityRow(*row) if row else None


def list_identities(conn: sqlite3.Connection, gallery: str | None = None) -> list[IdentityRow]:
    """Records of one gallery (or all), oldest first."""
    sql = f"SELECT {_COLS} FROM identities" + (" WHERE gallery = ?" if gallery else "") + " ORDER BY created_at"
    return [IdentityRow(*r) for r in conn.execute(sql, (gallery,) if gallery else ())]


def insert_identity(conn: sqlite3.Connection, cipher: EmbeddingCipher, *, identity_id: str, gallery: str,
                    embeddings: list[tuple[np.ndarray, float]], kind: str | None = None, reason: str | None = None,
                    source: str | None = None, expires_at: float | None = None, last_seen: float | None = None,
                    now: float | None = None) -> list[str]:
    """Insert (or replace) an identity and its embeddings; returns the embedding references."""
    now = time.time() if now is None else now
    conn.execute(
        "INSERT INTO identities(id, gallery, kind, reason, source, created_at, updated_at, last_seen, expires_at)"
        " VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET gallery = excluded.gallery,"
        " kind = excluded.kind, reason = excluded.reason, source = excluded.source,"
        " updated_at = excluded.updated_at, expires_at = excluded.expires_at",
        (identity_id, gallery, kind, reason, source, now, now, last_seen, expires_at))
    return [add_embedding(conn, cipher, identity_id, vec, quality) for vec, quality in embeddings]


def add_embedding(conn: sqlite3.Connection, cipher: EmbeddingCipher, identity_id: str, vector: np.ndarray,
                  quality: float) -> str:
    """Store one encrypted embedding under a fresh opaque reference linked to ``identity_id``."""
    ref = new_id()
    conn.execute("INSERT INTO identity_embeddings(ref, blob) VALUES (?, ?)", (ref, cipher.seal(vector, ref)))
    conn.execute("INSERT INTO identity_links(identity_id, ref, quality) VALUES (?,?,?)",
                 (identity_id, ref, float(quality)))
    return ref


def drop_embeddings(conn: sqlite3.Connection, identity_id: str) -> list[str]:
    """Delete every embedding of ``identity_id``; returns their references."""
    refs = [r[0] for r in conn.execute("SELECT ref FROM identity_links WHERE identity_id = ?", (identity_id,))]
    conn.executemany("DELETE FROM identity_embeddings WHERE ref = ?", [(r,) for r in refs])
    conn.execute("DELETE FROM identity_links WHERE identity_id = ?", (identity_id,))
    return refs


def embedding_count(conn: sqlite3.Connection, identity_id: str) -> int:
    """Number of embeddings stored for ``identity_id``."""
    return int(conn.execute("SELECT COUNT(*) FROM identity_links WHERE identity_id = ?", (identity_id,)).fetchone()[0])


def load_embeddings(conn: sqlite3.Connection, cipher: EmbeddingCipher, *, identity_id: str | None = None
                    ) -> Iterator[tuple[str, str, str, np.ndarray]]:
    """``(identity_id, gallery, ref, vector)`` of every stored embedding (or of one identity), decrypted."""
    sql = ("SELECT l.identity_id, i.gallery, l.ref, e.blob FROM identity_links l"
           " JOIN identities i ON i.id = l.identity_id JOIN identity_embeddings e ON e.ref = l.ref")
    args: tuple[Any, ...] = ()
    if identity_id is not None:
        sql += " WHERE l.identity_id = ?"
        args = (identity_id,)
    for iid, gallery, ref, blob in conn.execute(sql, args):
        yield iid, gallery, ref, cipher.open(blob, ref)


def delete_identity(conn: sqlite3.Connection, identity_id: str, *, keep_visits: bool = False) -> IdentityRow | None:
    """Delete an identity, its embeddings and (unless ``keep_visits``) its visits; returns the old record."""
    row = get_identity(conn, identity_id)
    drop_embeddings(conn, identity_id)
    withdraw_queued_embeddings(conn, identity_id)
    if not keep_visits:
        conn.execute("DELETE FROM identity_visits WHERE identity_id = ?", (identity_id,))
    conn.execute("DELETE FROM identities WHERE id = ?", (identity_id,))
    return row


def withdraw_queued_embeddings(conn: sqlite3.Connection, identity_id: str) -> int:
    """Strip the embedding from messages about ``identity_id`` still waiting in the outbox.

    Only with ``share_embeddings_with_cloud`` do events carry one; a deletion must reach what was queued
    before it (the WAN may have been down for hours), while the events themselves stay so the cloud's
    per-stream sequence has no gap. Returns the number of messages changed.
    """
    return conn.execute(
        "UPDATE outbox SET body = json_remove(body, '$.embedding_b64'),"
        " size = length(json_remove(body, '$.embedding_b64')) + 200"
        " WHERE json_valid(body) AND json_extract(body, '$.embedding_b64') IS NOT NULL"
        " AND ? IN (json_extract(body, '$.visitor_id'), json_extract(body, '$.identity_id'),"
        " json_extract(body, '$.watchlist_id'))", (identity_id,)).rowcount


def add_tombstone(conn: sqlite3.Connection, identity_id: str, gallery: str | None, now: float) -> None:
    """Remember that ``identity_id`` was deleted on purpose (never re-enrol it)."""
    conn.execute("INSERT OR IGNORE INTO identity_tombstones(id, gallery, deleted_at) VALUES (?,?,?)",
                 (identity_id, gallery, now))


def is_tombstoned(conn: sqlite3.Connection, identity_id: str) -> bool:
    """True if ``identity_id`` was deleted by ``identity.delete`` / ``identities forget``."""
    return conn.execute("SELECT 1 FROM identity_tombstones WHERE id = ?", (identity_id,)).fetchone() is not None


def audit(conn: sqlite3.Connection, action: str, *, identity_id: str | None = None, gallery: str | None = None,
          actor: str = "agent", detail: dict[str, Any] | None = None, now: float | None = None) -> None:
    """Append one line to the audit log (watchlist changes, hits, confirmations, deletions)."""
    conn.execute("INSERT INTO identity_audit(ts, action, identity_id, gallery, actor, detail) VALUES (?,?,?,?,?,?)",
                 (time.time() if now is None else now, action, identity_id, gallery, actor,
                  json.dumps(detail or {}, sort_keys=True)))


def audit_log(conn: sqlite3.Connection, *, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
    """Latest audit lines, newest first."""
    sql = "SELECT id, ts, action, identity_id, gallery, actor, detail FROM identity_audit"
    args: tuple[Any, ...] = ()
    if action:
        sql += " WHERE action = ?"
        args = (action,)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    return [{"id": r[0], "ts": r[1], "action": r[2], "identity_id": r[3], "gallery": r[4], "actor": r[5],
             "detail": json.loads(r[6])} for r in rows]


# -- visits ------------------------------------------------------------------------------------------
def last_visit(conn: sqlite3.Connection, identity_id: str) -> tuple[int, float, float] | None:
    """``(visit_id, started_at, last_seen)`` of the latest visit, or None."""
    row = conn.execute("SELECT id, started_at, last_seen FROM identity_visits WHERE identity_id = ?"
                       " ORDER BY started_at DESC LIMIT 1", (identity_id,)).fetchone()
    return (int(row[0]), float(row[1]), float(row[2])) if row else None


def count_visits(conn: sqlite3.Connection, identity_id: str, since: float, until: float | None = None) -> int:
    """Visits of ``identity_id`` that started in [since, until)."""
    sql = "SELECT COUNT(*) FROM identity_visits WHERE identity_id = ? AND started_at >= ?"
    args: list[Any] = [identity_id, since]
    if until is not None:
        sql += " AND started_at < ?"
        args.append(until)
    return int(conn.execute(sql, args).fetchone()[0])


def update_visit(conn: sqlite3.Connection, visit_id: int, *, last_seen: float | None = None,
                 zones: list[str] | None = None, dwell_s: float | None = None) -> None:
    """Extend a visit; ``zones`` are merged into those already recorded, ``dwell_s`` is added."""
    row = conn.execute("SELECT zones, dwell_s, last_seen FROM identity_visits WHERE id = ?", (visit_id,)).fetchone()
    if row is None:
        return
    merged = list(dict.fromkeys([*json.loads(row[0]), *(zones or [])]))
    dwell = (row[1] or 0.0) + dwell_s if dwell_s is not None else row[1]
    seen = max(float(row[2]), last_seen) if last_seen is not None else float(row[2])
    conn.execute("UPDATE identity_visits SET zones = ?, dwell_s = ?, last_seen = ? WHERE id = ?",
                 (json.dumps(merged), dwell, seen, visit_id))


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Enrolled identities per gallery (and per watchlist kind), visits, tombstones, pending alerts."""
    per_gallery = {g: 0 for g in GALLERIES}
    for gallery, n in conn.execute("SELECT gallery, COUNT(*) FROM identities GROUP BY gallery"):
        per_gallery[gallery] = int(n)
    kinds = {k: 0 for k in WATCHLIST_KINDS}
    for kind, n in conn.execute("SELECT kind, COUNT(*) FROM identities WHERE gallery = 'watchlist' GROUP BY kind"):
        kinds[kind or "custom"] = int(n)
    one = lambda sql: int(conn.execute(sql).fetchone()[0])  # noqa: E731
    return {"galleries": per_gallery, "watchlist_kinds": kinds,
            "embeddings": one("SELECT COUNT(*) FROM identity_embeddings"),
            "visits": one("SELECT COUNT(*) FROM identity_visits"),
            "tombstones": one("SELECT COUNT(*) FROM identity_tombstones"),
            "pending_alerts": one("SELECT COUNT(*) FROM identity_alerts WHERE status = 'pending'")}


# -- retention -----------------------------------------------------------------------------------------
def purge_expired(conn: sqlite3.Connection, *, now: float, retention_s: float) -> list[tuple[str, str]]:
    """Delete visitors not seen within ``retention_s`` and watchlist entries past their expiry, and visits
    older than the retention of anyone. Returns ``(identity_id, gallery)`` of the deleted identities."""
    cutoff = now - retention_s
    stale = conn.execute(
        "SELECT id, gallery FROM identities WHERE (gallery = 'visitor' AND COALESCE(last_seen, created_at) < ?)"
        " OR (expires_at IS NOT NULL AND expires_at < ?)", (cutoff, now)).fetchall()
    for identity_id, gallery in stale:
        delete_identity(conn, identity_id)
        if gallery != "visitor":
            audit(conn, "expired", identity_id=identity_id, gallery=gallery, now=now)
    conn.execute("DELETE FROM identity_visits WHERE last_seen < ?", (cutoff,))
    # Defence in depth: embeddings whose identity is gone (a race with a deletion in another process) go too.
    conn.execute("DELETE FROM identity_links WHERE identity_id NOT IN (SELECT id FROM identities)")
    conn.execute("DELETE FROM identity_embeddings WHERE ref NOT IN (SELECT ref FROM identity_links)")
    return [(str(i), str(g)) for i, g in stale]
