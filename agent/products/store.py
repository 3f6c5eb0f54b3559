"""SQLite persistence of the product gallery and of weighing records (tables in :mod:`agent.products.schema`).

:class:`GalleryRepository` keeps the ``product_embeddings`` rows of one embedding space in step with a
:class:`~agent.products.gallery.Gallery`: :meth:`load` fills the gallery at start, :meth:`enrol` runs the
gallery's add decision and writes its outcome (insert, plus the delete of a replaced entry) through the
caller's connection, so it can share the caller's transaction (e.g. a signed command's).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from ulid import ULID

from agent.products.gallery import AddResult, Gallery


def new_uid() -> str:
    """A new gallery entry / weighing id (ULID text: sortable by creation time)."""
    return str(ULID())


class GalleryRepository:
    """The gallery's rows of embedding ``space``; methods take the connection to write through."""

    def __init__(self, gallery: Gallery, space: str) -> None:
        self.gallery = gallery
        self.space = space

    def load(self, conn: sqlite3.Connection, plu: str | None = None) -> int:
        """Add the stored vectors of this space (of one ``plu`` if given) to the gallery (no dedupe: they were
        checked when added)."""
        n = 0
        sql = "SELECT uid, plu, vector FROM product_embeddings WHERE space = ?"
        args: tuple[str, ...] = (self.space,)
        if plu is not None:
            sql, args = sql + " AND plu = ?", (self.space, plu)
        for uid, plu, blob in conn.execute(sql + " ORDER BY created_at, uid", args):
            vec = np.frombuffer(blob, dtype=np.float32)
            if vec.shape[0] == self.gallery.dim:
                self.gallery.add(plu, vec, uid=uid, force=True)
                n += 1
        return n

    def enrol(self, conn: sqlite3.Connection, plu: str, vector: np.ndarray, *, source: str,
              uid: str | None = None, force: bool = False) -> AddResult:
        """Add ``vector`` under ``plu`` (dedupe + cap, see Gallery.add) and persist the outcome."""
        result = self.gallery.add(plu, vector, uid=uid or new_uid(), force=force)
        if result.added:
            v = np.asarray(vector, np.float32).reshape(-1)
            v = v / max(float(np.linalg.norm(v)), 1e-12)
            conn.execute("INSERT OR REPLACE INTO product_embeddings(uid, plu, space, vector, source, created_at)"
                         " VALUES (?,?,?,?,?,?)", (result.uid, plu, self.space, v.astype(np.float32).tobytes(),
                                                   source, time.time()))
        if result.removed:
            conn.execute("DELETE FROM product_embeddings WHERE uid = ?", (result.removed,))
        return result

    def remove(self, conn: sqlite3.Connection, *, uids: list[str] | None = None, plu: str | None = None) -> int:
        """Remove entries by uid and/or every entry of ``plu``; returns how many were removed."""
        removed: list[str] = []
        if plu is not None:
            removed += self.gallery.remove_plu(plu)
            conn.execute("DELETE FROM product_embeddings WHERE plu = ? AND space = ?", (plu, self.space))
        if uids:
            self.gallery.remove(list(uids))
            conn.executemany("DELETE FROM product_embeddings WHERE uid = ?", [(u,) for u in uids])
            removed += [u for u in uids if u not in removed]
        return len(removed)

    @staticmethod
    def counts(conn: sqlite3.Connection, space: str) -> dict[str, int]:
        """Entries per PLU stored for ``space``."""
        return {plu: n for plu, n in conn.execute(
            "SELECT plu, COUNT(*) FROM product_embeddings WHERE space = ? GROUP BY plu ORDER BY plu", (space,))}


@dataclass(frozen=True)
class Weighing:
    """A stable weighing that got candidates (``candidates``: ``[{"plu", "score", "rank", ...}]``)."""

    id: str
    scale: str
    stable_ts: float
    weight_kg: float
    candidates: list[dict[str, Any]]
    candidates_ms: float


def record_weighing(conn: sqlite3.Connection, w: Weighing) -> None:
    """Insert a pending weighing."""
    conn.execute("INSERT INTO weighings(id, scale, stable_ts, weight_kg, candidates, candidates_ms) "
                 "VALUES (?,?,?,?,?,?)", (w.id, w.scale, w.stable_ts, w.weight_kg, json.dumps(w.candidates),
                                          round(w.candidates_ms, 3)))


def confirm_weighing(conn: sqlite3.Connection, weighing_id: str, *, plu: str | None, chosen_rank: int | None,
                     unit_price: float | None, unit: str | None, total: float | None, confirmed_at: float,
                     confirm_ms: float) -> bool:
    """Complete a pending weighing (``plu`` None = "none of these"); False when unknown or already done."""
    cur = conn.execute(
        "UPDATE weighings SET status = ?, plu = ?, chosen_rank = ?, unit_price = ?, unit = ?, total = ?,"
        " confirmed_at = ?, confirm_ms = ? WHERE id = ? AND status = 'pending'",
        ("confirmed" if plu else "rejected", plu, chosen_rank, unit_price, unit, total, confirmed_at,
         round(confirm_ms, 3), weighing_id))
    return cur.rowcount == 1


def get_weighing(conn: sqlite3.Connection, weighing_id: str) -> dict[str, Any] | None:
    """One weighing row as a dict (``candidates`` decoded), or None."""
    cur = conn.execute("SELECT * FROM weighings WHERE id = ?", (weighing_id,))
    row = cur.fetchone()
    if row is None:
        return None
    out = dict(zip([d[0] for d in cur.description], row))
    out["candidates"] = json.loads(out["candidates"])
    return out
