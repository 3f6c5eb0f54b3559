"""Signed identity commands: ``watchlist.upsert``, ``watchlist.delete``, ``identity.delete``, ``optout.add``.

Bodies::

    watchlist.upsert  {"entries": [{"id": "wl-1", "kind": "theft|scalper|custom", "reason": "...",
                                    "source": "cloud:rule-7", "expires_at": 1767225600 | null,
                                    "embeddings": ["<base64 float32>", [0.1, ...], ...]}]}
    watchlist.delete  {"ids": ["wl-1", ...]}
    identity.delete   {"id": "01J..."} or {"ids": [...]}        (visitor, member, VIP, staff or watchlist id)
    optout.add        {"visitor_id": "01J..."} or {"embeddings": [...]}

Writes happen in the command processor's transaction; the in-memory galleries follow in ``after_commit`` (so a
deletion is effective as soon as the command is applied). A tombstoned id is never re-enrolled: upserts name it
under ``skipped_tombstoned``.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.config.identity_models import IdentityConfig
from agent.identity import repository as repo
from agent.identity.audit import Tombstoned, enrol, forget, optout_visitor
from agent.identity.crypto import EmbeddingCipher
from sync.commands import Command, CommandProcessor, CommandRejected, Handler

__all__ = ["parse_embeddings", "register_identity"]

_MAX_EMBEDDINGS = 20


def parse_embeddings(value: Any, dim: int, where: str) -> list[np.ndarray]:
    """Embeddings from base64 little-endian float32 strings or lists of numbers; each must have ``dim`` finite
    values. Raises :class:`CommandRejected` naming ``where`` otherwise."""
    if isinstance(value, (str, dict)) or not isinstance(value, list) or not value:
        raise CommandRejected("invalid_body", f"{where}: 'embeddings' must be a non-empty list")
    if len(value) > _MAX_EMBEDDINGS:
        raise CommandRejected("invalid_body", f"{where}: at most {_MAX_EMBEDDINGS} embeddings per entry")
    out: list[np.ndarray] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            try:
                raw = base64.b64decode(item, validate=True)
            except (binascii.Error, ValueError):
                raise CommandRejected("invalid_body", f"{where}: embeddings[{i}] is not valid base64") from None
            if len(raw) % 4:
                raise CommandRejected("invalid_body", f"{where}: embeddings[{i}] is not a float32 array")
            vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif isinstance(item, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in item):
            try:
                vec = np.asarray(item, dtype=np.float32)
            except OverflowError:  # an integer beyond float range
                raise CommandRejected("invalid_body", f"{where}: embeddings[{i}] has a value out of range") from None
        else:
            raise CommandRejected("invalid_body", f"{where}: embeddings[{i}] must be base64 float32 or a list of "
                                  "numbers")
        if vec.shape != (dim,):
            raise CommandRejected("wrong_dimension", f"{where}: embeddings[{i}] has {vec.size} values; this store's "
                                  f"embedder produces {dim}")
        if not np.all(np.isfinite(vec)) or float(np.linalg.norm(vec)) < 1e-6:
            raise CommandRejected("invalid_body", f"{where}: embeddings[{i}] must be finite and non-zero")
        out.append(vec / np.linalg.norm(vec))
    return out


def _entry(raw: Any, index: int, dim: int) -> dict[str, Any]:
    where = f"entries[{index}]"
    if not isinstance(raw, dict):
        raise CommandRejected("invalid_body", f"{where} must be an object")
    missing = [k for k in ("id", "kind", "embeddings") if k not in raw]
    if missing:
        raise CommandRejected("invalid_body", f"{where}: missing field(s) {', '.join(missing)}")
    entry_id, kind = raw["id"], raw["kind"]
    if not isinstance(entry_id, str) or not 1 <= len(entry_id) <= 128:
        raise CommandRejected("invalid_body", f"{where}: 'id' must be a string of 1-128 characters")
    if kind not in repo.WATCHLIST_KINDS:
        raise CommandRejected("unknown_kind", f"{where}: kind {kind!r} is not one of "
                              f"{', '.join(repo.WATCHLIST_KINDS)}")
    expires = raw.get("expires_at")
    if expires is not None and (not isinstance(expires, (int, float)) or isinstance(expires, bool)
                                or not -1e12 < expires < 1e12):
        raise CommandRejected("invalid_body", f"{where}: 'expires_at' must be epoch seconds or null")
    for name in ("reason", "source"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            raise CommandRejected("invalid_body", f"{where}: '{name}' must be a string")
    return {"id": entry_id, "kind": kind, "reason": raw.get("reason"), "source": raw.get("source") or "cloud",
            "expires_at": float(expires) if expires is not None else None,
            "embeddings": parse_embeddings(raw["embeddings"], dim, where)}


def _ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("ids", [body["id"]] if "id" in body else None)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise CommandRejected("invalid_body", "body must be {\"id\": \"...\"} or {\"ids\": [\"...\", ...]}")
    return list(dict.fromkeys(ids))


def register_identity(processor: CommandProcessor, *, cfg: IdentityConfig, cipher: EmbeddingCipher | None,
                      on_change: Callable[[list[str]], None] | None = None,
                      clock: Callable[[], float] = time.time) -> None:
    """Register the four identity command kinds. ``cipher`` None (no key configured) rejects the kinds that
    carry embeddings; ``on_change(ids)`` (``IdentityService.reload``) runs after each commit."""

    def need_cipher(kind: str) -> EmbeddingCipher:
        if cipher is None:
            raise CommandRejected("identity_disabled", f"{kind} carries embeddings but this store has no embedding "
                                  "key ([identity] embedding_key_file)")
        return cipher

    def watchlist_upsert(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        raw = cmd.body.get("entries")
        if not isinstance(raw, list) or not raw:
            raise CommandRejected("invalid_body", "body must be {\"entries\": [...]} with at least one entry")
        entries = [_entry(e, i, cfg.embedding_dim) for i, e in enumerate(raw)]
        key = need_cipher(cmd.kind)
        upserted, skipped = [], []
        for e in entries:
            try:
                enrol(conn, key, identity_id=e["id"], gallery="watchlist", kind=e["kind"], reason=e["reason"],
                      source=e["source"], expires_at=e["expires_at"], embeddings=e["embeddings"],
                      actor=f"cloud:{cmd.cmd_id}", now=clock())
                upserted.append(e["id"])
            except Tombstoned:
                skipped.append(e["id"])
        return {"upserted": upserted, "skipped_tombstoned": skipped}

    def watchlist_delete(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        deleted, missing = [], []
        for identity_id in _ids(cmd.body):
            row = repo.get_identity(conn, identity_id)
            if row is None or row.gallery != "watchlist":
                missing.append(identity_id)
                continue
            forget(conn, identity_id, actor=f"cloud:{cmd.cmd_id}", now=clock(), tombstone=False)
            deleted.append(identity_id)
        return {"deleted": deleted, "missing": missing}

    def identity_delete(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        deleted, unknown = [], []
        for identity_id in _ids(cmd.body):
            row = forget(conn, identity_id, actor=f"cloud:{cmd.cmd_id}", now=clock())
            (deleted if row is not None else unknown).append(identity_id)
        return {"deleted": deleted, "tombstoned_unknown": unknown}

    def optout_add(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        visitor_id = cmd.body.get("visitor_id")
        if visitor_id is not None:
            if not isinstance(visitor_id, str) or not visitor_id:
                raise CommandRejected("invalid_body", "'visitor_id' must be a non-empty string")
            optout_id = optout_visitor(conn, visitor_id, actor=f"cloud:{cmd.cmd_id}", now=clock())
            if optout_id is None:
                raise CommandRejected("unknown_id", f"no identity {visitor_id!r} on this store")
            return {"optout_id": optout_id, "removed": visitor_id}
        if "embeddings" not in cmd.body:
            raise CommandRejected("invalid_body", "body must carry 'visitor_id' or 'embeddings'")
        vectors = parse_embeddings(cmd.body["embeddings"], cfg.embedding_dim, "body")
        optout_id = repo.new_id()
        enrol(conn, need_cipher(cmd.kind), identity_id=optout_id, gallery="optout", embeddings=vectors,
              source="optout.add", actor=f"cloud:{cmd.cmd_id}", now=clock())
        return {"optout_id": optout_id}

    def changed(cmd: Command, result: dict[str, Any]) -> None:
        if on_change is None:
            return
        ids: list[str] = []
        for key in ("upserted", "deleted", "tombstoned_unknown", "removed", "optout_id"):
            value = result.get(key)
            ids.extend(value if isinstance(value, list) else [value] if isinstance(value, str) else [])
        on_change(ids)

    for kind, fn in (("watchlist.upsert", watchlist_upsert), ("watchlist.delete", watchlist_delete),
                     ("identity.delete", identity_delete), ("optout.add", optout_add)):
        processor.register(kind, Handler(apply=fn, after_commit=changed))
