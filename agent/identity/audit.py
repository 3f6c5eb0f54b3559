"""Audited changes shared by the signed commands and the CLI: enrol, forget (with tombstone), opt-out, alert
decisions. Each runs on the caller's connection inside its transaction and writes its audit line.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from agent.identity import repository as repo
from agent.identity.crypto import EmbeddingCipher
from sync.outbox import OutboxItem

__all__ = ["Tombstoned", "enrol", "forget", "optout_visitor", "record_alert_decision"]


class Tombstoned(Exception):
    """The id was deleted on request and must never be enrolled again."""


def enrol(conn: sqlite3.Connection, cipher: EmbeddingCipher, *, identity_id: str, gallery: str,
          embeddings: list[np.ndarray], kind: str | None = None, reason: str | None = None,
          source: str | None = None, expires_at: float | None = None, actor: str, now: float) -> str:
    """Create or replace an enrolled identity (its old embeddings are replaced). Raises :class:`Tombstoned`."""
    if repo.is_tombstoned(conn, identity_id):
        raise Tombstoned(identity_id)
    existed = repo.get_identity(conn, identity_id) is not None
    repo.drop_embeddings(conn, identity_id)
    repo.insert_identity(conn, cipher, identity_id=identity_id, gallery=gallery, kind=kind, reason=reason,
                         source=source, expires_at=expires_at, embeddings=[(e, 1.0) for e in embeddings], now=now)
    action = ("watchlist_update" if existed else "watchlist_add") if gallery == "watchlist" else (
        "enrol_update" if existed else "enrol")
    repo.audit(conn, action, identity_id=identity_id, gallery=gallery, actor=actor,
               detail={"kind": kind, "reason": reason, "source": source, "expires_at": expires_at,
                       "embeddings": len(embeddings)}, now=now)
    return identity_id


def forget(conn: sqlite3.Connection, identity_id: str, *, actor: str, now: float, tombstone: bool = True
           ) -> repo.IdentityRow | None:
    """Delete an identity with its embeddings and visits; leave a tombstone (unless a plain watchlist removal)."""
    row = repo.delete_identity(conn, identity_id)
    if tombstone:
        repo.add_tombstone(conn, identity_id, row.gallery if row else None, now)
    action = "delete" if tombstone else "watchlist_remove"
    repo.audit(conn, action, identity_id=identity_id, gallery=row.gallery if row else None, actor=actor,
               detail={"existed": row is not None}, now=now)
    return row


def optout_visitor(conn: sqlite3.Connection, visitor_id: str, *, actor: str, now: float) -> str | None:
    """Move a known person's embeddings to the opt-out gallery under a new id; their visits and old id go (the
    old id is tombstoned). Returns the opt-out id, or None if ``visitor_id`` is unknown."""
    row = repo.get_identity(conn, visitor_id)
    if row is None:
        return None
    optout_id = repo.new_id()
    conn.execute("INSERT INTO identities(id, gallery, created_at, updated_at, source) VALUES (?,?,?,?,?)",
                 (optout_id, "optout", now, now, "optout.add"))
    conn.execute("UPDATE identity_links SET identity_id = ? WHERE identity_id = ?", (optout_id, visitor_id))
    repo.delete_identity(conn, visitor_id)
    repo.add_tombstone(conn, visitor_id, row.gallery, now)
    repo.audit(conn, "optout", identity_id=optout_id, gallery="optout", actor=actor,
               detail={"from_gallery": row.gallery}, now=now)
    return optout_id


def record_alert_decision(conn: sqlite3.Connection, alert_id: str, decision: str, *, actor: str, now: float,
                          note: str = "") -> OutboxItem | None:
    """Mark a pending alert confirmed/dismissed and audit it; returns the ``events/watchlist_decision`` to queue,
    or None when the alert is unknown or already decided."""
    if decision not in ("confirm", "dismiss"):
        raise ValueError("decision must be 'confirm' or 'dismiss'")
    status = "confirmed" if decision == "confirm" else "dismissed"
    row = conn.execute("SELECT identity_id, gallery, kind, score FROM identity_alerts WHERE id = ? AND status = "
                       "'pending'", (alert_id,)).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE identity_alerts SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
                 (status, now, actor, alert_id))
    detail: dict[str, Any] = {"alert_id": alert_id, "score": row[3], "kind": row[2]}
    if note:
        detail["note"] = note
    repo.audit(conn, f"alert_{status}", identity_id=row[0], gallery=row[1], actor=actor, detail=detail, now=now)
    return OutboxItem("events/watchlist_decision", {"alert_id": alert_id, "decision": status, "gallery": row[1],
                                                    "identity_id": row[0], "by": actor, "ts": now}, event_ts=now)


def list_alerts(conn: sqlite3.Connection, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first."""
    sql = ("SELECT id, identity_id, gallery, kind, camera, ts, score, status, decided_at, decided_by"
           " FROM identity_alerts")
    args: tuple[Any, ...] = ()
    if status:
        sql += " WHERE status = ?"
        args = (status,)
    keys = ("alert_id", "identity_id", "gallery", "kind", "camera", "ts", "score", "status", "decided_at",
            "decided_by")
    return [dict(zip(keys, r)) for r in conn.execute(sql + " ORDER BY ts DESC LIMIT ?", (*args, limit))]
