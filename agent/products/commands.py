"""Signed ``products.gallery_update``: add or remove product embeddings chain-wide.

Body::

    {"space": "mobilenet-v1-embedding+07a4d0acd81c",          # must equal this box's embedding space
     "add": [{"plu": "4011", "uid": "01J…", "vector": "<base64 of dim float32, little-endian>"}],
     "remove": [{"uid": "01J…"}, {"plu": "4012"}]}               # one entry, or every entry of a PLU

Adds go through the same dedupe and per-PLU cap as local learning (against the PLU's stored entries); the
rows are written in the command's transaction; the running weighing service reloads its gallery after commit.
An ``events/product_learned`` body (see :mod:`agent.products.service`) carries ``space``/``plu``/``uid``/
``vector`` in this format, so the cloud can forward a learned embedding to the other stores unchanged.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.products.gallery import Gallery
from agent.products.store import GalleryRepository
from models.spec import ModelError
from sync.commands import Command, CommandProcessor, CommandRejected, Handler

KIND = "products.gallery_update"
MAX_ITEMS = 1000


def encode_vector(vector: np.ndarray) -> str:
    """Base64 of the float32 little-endian bytes (what commands and product_learned events carry)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").reshape(-1).tobytes()).decode("ascii")


def decode_vector(text: Any, dim: int, where: str) -> np.ndarray:
    """Inverse of :func:`encode_vector`, checked: ``dim`` finite values, not all zero."""
    if not isinstance(text, str):
        raise CommandRejected("invalid_body", f"{where}: 'vector' must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CommandRejected("invalid_body", f"{where}: 'vector' is not valid base64") from exc
    if len(raw) != 4 * dim:
        raise CommandRejected("wrong_dimension", f"{where}: vector has {len(raw) // 4} values, this store's "
                                                 f"embedding space has {dim}")
    vec = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(vec)) or not np.any(vec):
        raise CommandRejected("invalid_body", f"{where}: vector must be finite and not all zero")
    return vec


def _text(item: dict[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise CommandRejected("invalid_body", f"{where}: '{key}' must be a non-empty string (at most 64 chars)")
    return value.strip()


def apply_gallery_update(body: Any, conn: sqlite3.Connection, *, space: str, dim: int, cap_per_plu: int,
                         dedupe_cosine: float) -> dict[str, Any]:
    """Validate ``body`` and write its adds/removes through ``conn``; raises :class:`CommandRejected`."""
    if not isinstance(body, dict):
        raise CommandRejected("invalid_body", "body must be a JSON object")
    unknown = set(body) - {"space", "add", "remove"}
    if unknown:
        raise CommandRejected("invalid_body", f"unknown key(s) {sorted(unknown)}; expected space, add, remove")
    if body.get("space") != space:
        raise CommandRejected("wrong_space", f"embeddings are from space {body.get('space')!r}; this store "
                                             f"embeds with {space!r} (vectors of different spaces don't compare)")
    adds, removes = body.get("add", []), body.get("remove", [])
    if not isinstance(adds, list) or not isinstance(removes, list) or not (adds or removes):
        raise CommandRejected("invalid_body", "'add' and 'remove' must be lists, at least one non-empty")
    if len(adds) + len(removes) > MAX_ITEMS:
        raise CommandRejected("invalid_body", f"at most {MAX_ITEMS} items per command")
    parsed = []
    for i, item in enumerate(adds):
        where = f"add[{i}]"
        if not isinstance(item, dict):
            raise CommandRejected("invalid_body", f"{where} must be an object")
        parsed.append((_text(item, "plu", where), _text(item, "uid", where),
                       decode_vector(item.get("vector"), dim, where)))
    removals = []
    for i, item in enumerate(removes):
        where = f"remove[{i}]"
        if not isinstance(item, dict) or len(item) != 1 or not ({"uid", "plu"} & set(item)):
            raise CommandRejected("invalid_body", f"{where} must be {{\"uid\": …}} or {{\"plu\": …}}")
        key = next(iter(item))
        removals.append((key, _text(item, key, where)))
    removed = 0
    for key, value in removals:
        cur = conn.execute(f"DELETE FROM product_embeddings WHERE space = ? AND {key} = ?", (space, value))
        removed += cur.rowcount
    outcomes: dict[str, int] = {}
    for plu in sorted({p for p, _, _ in parsed}):
        repo = GalleryRepository(Gallery(dim, cap_per_plu=cap_per_plu, dedupe_cosine=dedupe_cosine), space)
        repo.load(conn, plu=plu)
        for p, uid, vec in parsed:
            if p == plu:
                reason = repo.enrol(conn, plu, vec, source="command", uid=uid).reason
                outcomes[reason] = outcomes.get(reason, 0) + 1
    return {"added": outcomes.get("added", 0) + outcomes.get("replaced", 0), "removed": removed,
            "skipped": outcomes.get("duplicate", 0) + outcomes.get("redundant", 0), "space": space}


def register_products(processor: CommandProcessor, *, space: Callable[[], tuple[str, int]], cap_per_plu: int,
                      dedupe_cosine: float, on_change: Callable[[], None] | None = None) -> None:
    """Register ``products.gallery_update``. ``space()`` → (embedding space, dim) of the running embedder
    (opened lazily by the caller); ``on_change`` runs after commit (the service reloads its gallery)."""

    def apply(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        try:
            name, dim = space()
        except (ModelError, OSError) as exc:
            raise CommandRejected("model_unavailable", f"the product embedder cannot be opened: {exc}") from exc
        return apply_gallery_update(cmd.body, conn, space=name, dim=dim, cap_per_plu=cap_per_plu,
                                    dedupe_cosine=dedupe_cosine)

    def after(cmd: Command, result: dict[str, Any]) -> None:
        if on_change is not None:
            on_change()

    processor.register(KIND, Handler(apply=apply, after_commit=after))
