"""The signed ``price.update`` command: a versioned delta of the price book.

Body::

    {"version": 42,                # > the book's version, else rejected as stale_version (nothing changes)
     "effective_at": 1767225600,   # epoch s when the delta takes effect; null = now
     "upsert": [{"plu": "4011", "name": "Bananas", "price": 1.99, "unit": "kg", ...}],
     "delete": ["4012"]}

Each upserted article replaces the PLU's whole record from ``effective_at`` on (fields: see
``agent.pricebook.article.ARTICLE_FIELDS``). Deltas are events on a timeline: at time *t* the record of the
delta with the latest ``effective_at <= t`` applies (ties: higher version), so a change scheduled for later
switches by itself, also offline. To cancel a scheduled change send a delta with the same ``effective_at``
and a higher version. An envelope ``version``, if present, must equal the body's.

Result: ``{"version", "effective_at", "upserted", "deleted", "revision", "scheduled"}``. Rejections:
``stale_version`` (version <= the book's), ``invalid_body`` (missing/unknown keys, bad article field — the
detail names the field, e.g. ``upsert[3].price``).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from agent.pricebook.article import ArticleError, article_from_dict, validate_plu
from agent.pricebook.book import PriceBook
from sync.commands import Command, CommandProcessor, CommandRejected, Handler

KIND = "price.update"
RESOURCE = "pricebook"
MAX_ITEMS = 20_000
_BODY_KEYS = frozenset({"version", "effective_at", "upsert", "delete"})


def register_pricebook(processor: CommandProcessor, *, on_change: Callable[[dict[str, Any]], None] | None = None,
                       clock: Callable[[], float] = time.time) -> None:
    """Register ``price.update``. ``on_change(result)`` runs after the delta is committed (e.g. wake the
    shelf-label reconciler); the reconciler may equally poll ``PriceBook.revision``."""

    def apply(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        version, effective_at, upsert, delete = _parse_body(cmd)
        book = PriceBook(conn)
        current = book.version
        if version <= current:
            raise CommandRejected("stale_version", f"price book is at version {current}; this delta has version "
                                                   f"{version} and was ignored (nothing changed)")
        articles = []
        for i, item in enumerate(upsert):
            try:
                articles.append(article_from_dict(item, f"upsert[{i}]", version=version))
            except ArticleError as exc:
                raise CommandRejected("invalid_body", str(exc)) from exc
        plus = [article.plu for article in articles]
        if len(set(plus)) != len(plus):
            dup = next(p for p in plus if plus.count(p) > 1)
            raise CommandRejected("invalid_body", f"upsert: PLU {dup!r} appears more than once")
        try:
            deleted = [validate_plu(p, f"delete[{i}]") for i, p in enumerate(delete)]
        except ArticleError as exc:
            raise CommandRejected("invalid_body", str(exc)) from exc
        both = sorted(set(plus) & set(deleted))
        if both:
            raise CommandRejected("invalid_body", f"PLU {both[0]!r} is both upserted and deleted")
        # A delta without effective_at takes effect when the cloud issued it (bounded by this box's clock), so a
        # late-arriving immediate change does not override a change the cloud scheduled after it.
        now = clock()
        when = min(cmd.issued_at, now) if effective_at is None else effective_at
        result = book.apply_delta(version, when, articles, deleted, now=now)
        conn.execute("INSERT INTO resource_versions(resource, version, cmd_id, applied_at) VALUES (?,?,?,?)"
                     " ON CONFLICT(resource) DO UPDATE SET version = excluded.version, cmd_id = excluded.cmd_id,"
                     " applied_at = excluded.applied_at", (RESOURCE, version, cmd.cmd_id, now))
        return result

    def after_commit(cmd: Command, result: dict[str, Any]) -> None:
        if on_change is not None:
            on_change(result)

    processor.register(KIND, Handler(apply=apply, after_commit=after_commit))


def _parse_body(cmd: Command) -> tuple[int, float | None, list[Any], list[Any]]:
    body = cmd.body
    unknown = sorted(set(body) - _BODY_KEYS)
    if unknown:
        raise CommandRejected("invalid_body", f"unknown key {unknown[0]!r} (allowed: version, effective_at, "
                                              "upsert, delete)")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**63:
        raise CommandRejected("invalid_body", "'version' must be a positive integer")
    if cmd.version is not None and cmd.version != version:
        raise CommandRejected("invalid_body", f"envelope version {cmd.version} differs from body version {version}")
    effective_at = body.get("effective_at")
    if effective_at is not None and (isinstance(effective_at, bool) or not isinstance(effective_at, (int, float))
                                     or not math.isfinite(effective_at) or effective_at < 0):
        raise CommandRejected("invalid_body", "'effective_at' must be epoch seconds or null")
    upsert = body.get("upsert", [])
    delete = body.get("delete", [])
    if not isinstance(upsert, list) or not isinstance(delete, list):
        raise CommandRejected("invalid_body", "'upsert' and 'delete' must be lists")
    if not upsert and not delete:
        raise CommandRejected("invalid_body", "the delta is empty: give 'upsert' and/or 'delete'")
    if len(upsert) + len(delete) > MAX_ITEMS:
        raise CommandRejected("invalid_body", f"at most {MAX_ITEMS} items per delta; split it")
    return version, None if effective_at is None else float(effective_at), upsert, delete
