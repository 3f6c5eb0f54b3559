"""``PriceBook``: read and write the price book's timeline of changes through one SQLite connection.

Writers never commit a caller's transaction: inside ``BEGIN`` (e.g. the command processor's) they just
write; outside one they wrap their writes in ``BEGIN IMMEDIATE … COMMIT``. Every write bumps ``revision``
(monotonic) and stamps it on the rows it adds, so a reconciler polls ``revision`` and asks
``changed_plus_since(rev)``; for changes that only *take effect* later it asks ``next_transition(t)`` and
``plus_changing_between(t0, t1)``.

Example::

    book = PriceBook(connect(open_store(data_dir)))
    book.upsert([Article("4011", "Bananas", 1.99, "kg")])
    book.effective_price("4011", time.time())   # 1.99
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent.pricebook.article import Article, article_from_dict

_LATEST = ("SELECT plu, op, body, version FROM ("
           " SELECT plu, op, body, version, ROW_NUMBER() OVER ("
           "  PARTITION BY plu ORDER BY effective_at DESC, version DESC, id DESC) AS rn"
           " FROM pricebook_changes WHERE effective_at <= ?{extra}) WHERE rn = 1")


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the timeline (for ``prices show`` and audits)."""

    plu: str
    effective_at: float
    version: int
    revision: int
    op: str
    article: Article | None


class PriceBook:
    """The store's articles over time. Not thread-safe: one instance per connection/thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- reads -------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The highest cloud delta version applied (0 = none)."""
        return int(self.conn.execute("SELECT version FROM pricebook_meta WHERE id = 1").fetchone()[0])

    @property
    def revision(self) -> int:
        """Monotonic counter bumped by every write (cloud delta or local import)."""
        return int(self.conn.execute("SELECT revision FROM pricebook_meta WHERE id = 1").fetchone()[0])

    def get(self, plu: str, at_ts: float | None = None) -> Article | None:
        """The article in force now (or at ``at_ts``); None when unknown or deleted."""
        return self.effective_article(plu, time.time() if at_ts is None else at_ts)

    def effective_article(self, plu: str, at_ts: float) -> Article | None:
        """The article in force at ``at_ts`` (epoch s), with scheduled changes applied by their time."""
        row = self.conn.execute(
            "SELECT op, body, version FROM pricebook_changes WHERE plu = ? AND effective_at <= ?"
            " ORDER BY effective_at DESC, version DESC, id DESC LIMIT 1", (str(plu), at_ts)).fetchone()
        if row is None or row[0] == "delete":
            return None
        return _article(row[1], row[2])

    def effective_price(self, plu: str, at_ts: float) -> float | None:
        """The price charged at ``at_ts`` (promo price while the promo runs); None for an unknown PLU."""
        article = self.effective_article(plu, at_ts)
        return None if article is None else article.price_at(at_ts)

    def all(self, at_ts: float | None = None) -> list[Article]:
        """Every article in force now (or at ``at_ts``), sorted by PLU."""
        at = time.time() if at_ts is None else at_ts
        rows = self.conn.execute(_LATEST.format(extra="") + " ORDER BY plu", (at,)).fetchall()
        return [_article(body, version) for _, op, body, version in rows if op == "upsert"]

    def many(self, plus: Iterable[str], at_ts: float | None = None) -> dict[str, Article]:
        """The articles in force for ``plus`` (unknown/deleted ones are absent)."""
        wanted = sorted({str(p) for p in plus})
        at = time.time() if at_ts is None else at_ts
        out: dict[str, Article] = {}
        for chunk in _chunks(wanted, 500):
            sql = _LATEST.format(extra=f" AND plu IN ({','.join('?' * len(chunk))})")
            for plu, op, body, version in self.conn.execute(sql, (at, *chunk)):
                if op == "upsert":
                    out[plu] = _article(body, version)
        return out

    def history(self, plu: str) -> list[Change]:
        """Every change of ``plu`` in timeline order (past and scheduled)."""
        rows = self.conn.execute(
            "SELECT plu, effective_at, version, revision, op, body FROM pricebook_changes WHERE plu = ?"
            " ORDER BY effective_at, version, id", (str(plu),)).fetchall()
        return [Change(r[0], r[1], r[2], r[3], r[4], _article(r[5], r[2]) if r[4] == "upsert" else None)
                for r in rows]

    def changed_plus_since(self, revision: int) -> set[str]:
        """PLUs touched by writes after ``revision`` (including changes scheduled for later)."""
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT plu FROM pricebook_changes WHERE revision > ?", (revision,))}

    def next_transition(self, after_ts: float) -> float | None:
        """The earliest time after ``after_ts`` when some article or promo state may change, or None."""
        row = self.conn.execute(
            "SELECT MIN(t) FROM (SELECT MIN(effective_at) AS t FROM pricebook_changes WHERE effective_at > ?1"
            " UNION ALL SELECT MIN(promo_start) FROM pricebook_changes WHERE promo_start > ?1"
            " UNION ALL SELECT MIN(promo_end) FROM pricebook_changes WHERE promo_end > ?1)",
            (after_ts,)).fetchone()
        return None if row[0] is None else float(row[0])

    def plus_changing_between(self, t0: float, t1: float) -> set[str]:
        """PLUs whose article or promo state may change in ``(t0, t1]`` (a superset: re-check, don't trust)."""
        return {r[0] for r in self.conn.execute(
            "SELECT DISTINCT plu FROM pricebook_changes WHERE (effective_at > ?1 AND effective_at <= ?2)"
            " OR (promo_start > ?1 AND promo_start <= ?2) OR (promo_end > ?1 AND promo_end <= ?2)", (t0, t1))}

    # -- writes ------------------------------------------------------------------------------------
    def apply_delta(self, version: int, effective_at: float | None, upsert: Sequence[Any], delete: Sequence[Any],
                    *, now: float | None = None) -> dict[str, Any]:
        """Apply a validated-or-raw cloud delta (see ``price.update``); returns a summary.

        ``upsert`` items may be ``Article`` or dicts (validated here; ``ArticleError`` names the field).
        The caller checks ``version`` > :attr:`version` (the command handler does).
        """
        now = time.time() if now is None else now
        articles = [a.with_version(version) if isinstance(a, Article) else
                    article_from_dict(a, f"upsert[{i}]", version=version) for i, a in enumerate(upsert)]
        when = now if effective_at is None else float(effective_at)
        with self._write() as revision:
            self._insert(articles, [str(p) for p in delete], when, version, revision, now)
            self.conn.execute("UPDATE pricebook_meta SET version = MAX(version, ?) WHERE id = 1", (version,))
        return {"version": version, "effective_at": when, "upserted": len(articles), "deleted": len(delete),
                "revision": revision, "scheduled": when > now}

    def upsert(self, articles: Iterable[Article], *, effective_at: float | None = None,
               now: float | None = None) -> int:
        """Local write (CSV import, tests, demo): articles in force from ``effective_at`` (default now).

        Does not advance the cloud :attr:`version`; returns the new revision.
        """
        now = time.time() if now is None else now
        batch = list(articles)
        with self._write() as revision:
            version = self.version
            self._insert([a.with_version(version) for a in batch], [], now if effective_at is None else effective_at,
                         version, revision, now)
        return revision

    def delete(self, plus: Iterable[str], *, effective_at: float | None = None, now: float | None = None) -> int:
        """Local delete of ``plus`` from ``effective_at`` (default now); returns the new revision."""
        now = time.time() if now is None else now
        with self._write() as revision:
            self._insert([], [str(p) for p in plus], now if effective_at is None else effective_at,
                         self.version, revision, now)
        return revision

    def compact(self, before_ts: float) -> int:
        """Drop rows superseded by a newer row that took effect before ``before_ts``; returns rows removed."""
        with self._write(bump=False):
            cur = self.conn.execute(
                "DELETE FROM pricebook_changes WHERE id IN (SELECT id FROM ("
                " SELECT id, ROW_NUMBER() OVER (PARTITION BY plu ORDER BY effective_at DESC, version DESC, id DESC)"
                " AS rn FROM pricebook_changes WHERE effective_at <= ?) WHERE rn > 1)", (before_ts,))
        return cur.rowcount

    # -- internals ---------------------------------------------------------------------------------
    def _insert(self, articles: list[Article], deletes: list[str], when: float, version: int, revision: int,
                now: float) -> None:
        rows = [(a.plu, when, version, revision, "upsert", json.dumps(a.to_dict(), ensure_ascii=False),
                 a.promo_start, a.promo_end, now) for a in articles]
        rows += [(plu, when, version, revision, "delete", None, None, None, now) for plu in deletes]
        self.conn.executemany(
            "INSERT INTO pricebook_changes(plu, effective_at, version, revision, op, body, promo_start, promo_end,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)

    @contextmanager
    def _write(self, bump: bool = True) -> Iterator[int]:
        own = not self.conn.in_transaction
        if own:
            self.conn.execute("BEGIN IMMEDIATE")
        try:
            if bump:
                self.conn.execute("UPDATE pricebook_meta SET revision = revision + 1, updated_at = ? WHERE id = 1",
                                  (time.time(),))
            yield self.revision
            if own:
                self.conn.execute("COMMIT")
        except BaseException:
            if own and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise


def _article(body: str, version: int) -> Article:
    data = json.loads(body)
    data.pop("version", None)
    return article_from_dict(data, version=int(version))


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
