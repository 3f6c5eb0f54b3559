"""Desired-state reconciliation of one gateway's labels: price book + template → desired image → push →
confirmed from the gateway's own reports.

Rules (a change is never silently lost):

- ``refresh(now, plus)`` recomputes the content key of linked labels (all, or those of ``plus``); a new key is
  rendered and becomes ``desired_hash``; ``desired_since`` starts its time-to-shelf clock.
- ``push_due(now)`` pushes every label whose desired content is not confirmed and is not already in flight,
  plus those whose push timed out (``retry_timeout_s``) or that the gateway dropped. A refused push or an
  unreachable gateway leaves the label in ``retry`` with a backoff; nothing is assumed delivered.
- ``on_report(report)`` confirms a push when the label reports the push's token with nothing pending (or,
  for gateways without tokens, an advanced ``update_count``); a check-in newer than the push with nothing
  pending and other content shown means the gateway dropped its queue → ``dropped`` → pushed again.
- ``flush()`` writes changed rows and time-to-shelf records in one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agent.esl.content import ImageCache, Renderer, article_payload, content_key
from agent.esl.state import LINK_COLUMNS, LabelRow, load_labels, save_labels
from agent.pricebook.book import PriceBook
from devices.esl.backends.base import GatewayBackend, GatewayError, LabelContent, LabelReport, PushReceipt
from sync.sqlite import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcilerSettings:
    """Timing of one gateway (see ``EslGatewayConfig``)."""

    retry_timeout_s: float = 120.0
    retry_backoff_s: float = 5.0
    retry_backoff_max_s: float = 60.0
    max_pushes_per_step: int = 64
    push_workers: int = 4
    default_label_type: str = "29bwr"
    stuck_after_pushes: int = 5
    confirm_by: str = "hash"  # "updatecount": ignore push tokens (a gateway whose hash we cannot predict)


@dataclass(slots=True)
class Confirmation:
    """One label confirmed its content (for telemetry and the bench)."""

    mac: str
    plu: str | None
    desired_since: float
    accepted_at: float | None
    confirmed_at: float
    pushes: int


class Reconciler:
    """Reconciles one gateway's labels; single-threaded (the component thread) except for its push pool."""

    def __init__(self, conn: sqlite3.Connection, gateway: str, backend: GatewayBackend, render: Renderer,
                 settings: ReconcilerSettings | None = None, clock: Callable[[], float] = time.time,
                 hw_types: dict[int, str] | None = None) -> None:
        self.conn = conn
        self.gateway = gateway
        self.backend = backend
        self.render = render
        self.settings = settings or ReconcilerSettings()
        self.clock = clock
        self.hw_types = hw_types or {}
        self.book = PriceBook(conn)
        self.labels: dict[str, LabelRow] = load_labels(conn, gateway)
        self.images = ImageCache()
        self.dirty: set[str] = set()
        self.confirmations: list[Confirmation] = []
        self.counts = {"pushes": 0, "push_errors": 0, "confirmed": 0, "dropped": 0, "timeouts": 0, "renders": 0,
                       "token_mismatch": 0}
        self.gateway_error: str | None = None
        self._gateway_retry_at = 0.0
        self._failures = 0
        self._pool = ThreadPoolExecutor(self.settings.push_workers, thread_name_prefix=f"esl-push-{gateway}")
        self._accepted: dict[str, float] = {}  # mac → first acceptance of the current desired content
        self._sql: list[tuple[str, tuple[Any, ...]]] = []  # shelf-time writes, committed by flush()
        self._attempts: dict[str, int] = {}  # mac → pushes of the current desired content
        self._noted: dict[str, str] = {}  # mac → the problem last reported (orphan, render_error, stuck)
        self.notices: list[dict[str, Any]] = []  # label problems raised/resolved, for events/esl_label

    # -- discovery and links ------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read rows from SQLite (after ``esl.relink`` changed links/positions through another connection)."""
        self.flush()
        fresh = load_labels(self.conn, self.gateway)
        for mac, row in fresh.items():
            mine = self.labels.get(mac)
            if mine is None:
                self.labels[mac] = row
                continue
            if (mine.plu, mine.template, mine.label_type) != (row.plu, row.template, row.label_type):
                mine.desired_key = None  # forces a re-evaluation
            for column in LINK_COLUMNS:  # delivery state stays ours; links and positions are the command's
                setattr(mine, column, getattr(row, column))
        for mac in set(self.labels) - set(fresh):
            del self.labels[mac]

    def _discover(self, report: LabelReport, now: float) -> LabelRow:
        label_type = self.hw_types.get(report.hw_type or -1, self.settings.default_label_type)
        row = LabelRow(mac=report.label_id, gateway=self.gateway, label_type=label_type, updated_at=now)
        self.labels[row.mac] = row
        self.dirty.add(row.mac)
        return row

    # -- desired content ----------------------------------------------------------------------------
    def refresh(self, now: float | None = None, plus: Iterable[str] | None = None) -> int:
        """Recompute desired content of linked labels (of ``plus`` only, when given); returns how many changed."""
        now = self.clock() if now is None else now
        wanted = None if plus is None else set(plus)
        rows = [r for r in self.labels.values() if r.plu and (wanted is None or r.plu in wanted)]
        articles = self.book.many({r.plu for r in rows if r.plu}, at_ts=now)
        changed = 0
        for row in rows:
            article = articles.get(row.plu or "")
            if article is None:
                if row.state != "orphan":
                    row.state, row.last_error = "orphan", f"PLU {row.plu} is not in the price book"
                    self.dirty.add(row.mac)
                continue
            key = content_key(article, row.label_type, row.template, now)
            if key == row.desired_key and row.state not in ("orphan", "render_error"):
                continue
            try:
                content_hash, image = self.render(article, row.label_type, row.template, now)
            except Exception as exc:  # a bad template or label type must not stop the other labels
                if row.state != "render_error":
                    log.warning("ESL render failed", extra={"label": row.mac, "plu": row.plu, "error": str(exc)})
                row.state, row.last_error = "render_error", f"render: {exc}"
                self.dirty.add(row.mac)
                continue
            self.counts["renders"] += 1
            self.images.put(content_hash, image)
            row.desired_key = key
            if content_hash != row.desired_hash:
                row.desired_hash, row.desired_since = content_hash, now
                self._accepted.pop(row.mac, None)
                self._attempts.pop(row.mac, None)
                self._new_shelf_record(row)
                changed += 1
            row.state = "idle" if row.desired_hash == row.confirmed_hash else (
                row.state if row.state in ("pending", "retry") else "due")
            if row.state == "idle":
                row.last_error = None
            self.dirty.add(row.mac)
        for row in self.labels.values():
            if not row.plu and row.state != "unlinked":
                row.state, row.desired_key, row.desired_hash = "unlinked", None, None
                self.dirty.add(row.mac)
        return changed

    def _new_shelf_record(self, row: LabelRow) -> None:
        self._exec("UPDATE esl_shelf_times SET superseded = 1 WHERE mac = ? AND confirmed_at IS NULL",
                          (row.mac,))
        self._exec("INSERT INTO esl_shelf_times(mac, plu, desired_hash, desired_since) VALUES (?,?,?,?)",
                          (row.mac, row.plu, row.desired_hash, row.desired_since))

    # -- pushing ------------------------------------------------------------------------------------
    def due(self, now: float) -> list[LabelRow]:
        """Labels that need a push now."""
        out = []
        for row in self.labels.values():
            if not row.desired_hash or row.desired_hash == row.confirmed_hash or row.state in ("orphan", "unlinked",
                                                                                              "render_error"):
                continue
            if row.state == "pending" and row.pushed_hash == row.desired_hash:
                if now - (row.pushed_at or 0) < self.settings.retry_timeout_s:
                    continue
                self.counts["timeouts"] += 1
            if row.state == "retry" and (row.retry_at or 0) > now:
                continue
            out.append(row)
        out.sort(key=lambda r: r.state != "dropped")  # a label the gateway dropped is waiting for it: first
        return out

    def push_due(self, now: float | None = None) -> int:
        """Push what is due (bounded per step); returns the number of pushes the gateway accepted."""
        now = self.clock() if now is None else now
        if now < self._gateway_retry_at:
            return 0
        batch = self.due(now)[: self.settings.max_pushes_per_step]
        jobs = []
        for row in batch:
            content = self._content(row, now)
            if content is not None:
                jobs.append((row, self._pool.submit(self.backend.push, row.mac, content)))
        accepted = 0
        for row, future in jobs:
            try:
                receipt = future.result()
            except GatewayError as exc:
                self._push_failed(row, exc, now)
                continue
            except Exception as exc:  # a backend bug must not stop the other labels
                log.exception("ESL push failed", extra={"label": row.mac})
                self._push_failed(row, GatewayError("protocol", repr(exc)), now)
                continue
            self._pushed(row, receipt, now)
            accepted += 1
        if accepted:
            self._failures, self.gateway_error = 0, None
        return accepted

    def _content(self, row: LabelRow, now: float) -> LabelContent | None:
        article = self.book.get(row.plu or "", at_ts=now)
        if article is None:
            return None
        image = self.images.get(row.desired_hash or "")
        if image is None:
            try:
                content_hash, image = self.render(article, row.label_type, row.template, now)
            except Exception as exc:
                row.state, row.last_error = "render_error", f"render: {exc}"
                self.dirty.add(row.mac)
                return None
            self.counts["renders"] += 1
            if content_hash != row.desired_hash:  # the book moved on since refresh(): take the newer content
                row.desired_hash, row.desired_since = content_hash, now
                self._new_shelf_record(row)
            self.images.put(content_hash, image)
        return LabelContent(row.desired_hash or "", image=image, article=article_payload(article, now),
                            template=row.template)

    def _pushed(self, row: LabelRow, receipt: PushReceipt, now: float) -> None:
        self.counts["pushes"] += 1
        token = receipt.token if self.settings.confirm_by == "hash" else None
        row.pushed_hash, row.push_token, row.pushed_at = row.desired_hash, token, now
        row.base_seen, row.base_count = row.last_seen, row.update_count
        row.push_count += 1
        row.state, row.last_error, row.retry_at = "pending", None, None
        self._accepted.setdefault(row.mac, now)
        self._attempts[row.mac] = self._attempts.get(row.mac, 0) + 1
        self._exec("UPDATE esl_shelf_times SET accepted_at = COALESCE(accepted_at, ?), pushes = pushes + 1"
                          " WHERE mac = ? AND desired_hash = ? AND confirmed_at IS NULL AND superseded = 0",
                          (now, row.mac, row.desired_hash))
        self.dirty.add(row.mac)

    def _push_failed(self, row: LabelRow, exc: GatewayError, now: float) -> None:
        self.counts["push_errors"] += 1
        self._failures += 1
        backoff = min(self.settings.retry_backoff_max_s, self.settings.retry_backoff_s * 2 ** min(self._failures, 6))
        row.state, row.last_error, row.retry_at = "retry", f"{exc.reason}: {exc.message}", now + backoff
        self.dirty.add(row.mac)
        if exc.reason in ("unreachable", "busy"):  # the gateway as a whole: stop pushing until the backoff ends
            self.gateway_error = exc.message
            self._gateway_retry_at = now + backoff

    # -- reports ------------------------------------------------------------------------------------
    def on_report(self, report: LabelReport, now: float | None = None) -> LabelRow:
        """Take one label report (websocket event or poll): sensors, confirmation, drop detection."""
        now = self.clock() if now is None else now
        row = self.labels.get(report.label_id) or self._discover(report, now)
        row.last_seen = report.last_seen if report.last_seen is not None else row.last_seen
        row.shown_token, row.update_count = report.shown_token, report.update_count
        row.temperature_c, row.battery_mv, row.rssi = report.temperature_c, report.battery_mv, report.rssi
        row.updated_at = now
        self.dirty.add(row.mac)
        if row.state not in ("pending", "dropped") or report.pending or row.pushed_hash is None:
            return row
        # The AP reports whole seconds, so a check-in in the same second as the push's base counts as newer: a
        # spurious "dropped" only costs a re-push the gateway skips as identical to its pending image.
        newer = (report.last_seen or 0) >= (row.base_seen or 0) and report.last_seen is not None
        if (row.push_token is not None and report.shown_token == row.push_token) or (
                row.push_token is None and newer and report.update_count > (row.base_count or 0)):
            self._confirm(row, now)
        elif newer and row.state == "pending":
            row.state = "dropped"
            self.counts["dropped"] += 1
            if report.update_count > (row.base_count or 0):
                # The label took an update but reports another hash: either a race with an older push, or a
                # gateway that hashes differently (then set confirm_by = "updatecount"); status shows the count.
                self.counts["token_mismatch"] += 1
        return row

    def _confirm(self, row: LabelRow, now: float) -> None:
        row.confirmed_hash, row.confirmed_at = row.pushed_hash, now
        row.state = "idle" if row.confirmed_hash == row.desired_hash else "due"
        self.counts["confirmed"] += 1
        self._attempts.pop(row.mac, None)
        self._exec("UPDATE esl_shelf_times SET confirmed_at = ? WHERE mac = ? AND desired_hash = ?"
                          " AND confirmed_at IS NULL", (now, row.mac, row.confirmed_hash))
        self.confirmations.append(Confirmation(row.mac, row.plu, row.desired_since or now,
                                               self._accepted.pop(row.mac, None), now, row.push_count))

    # -- persistence and status ---------------------------------------------------------------------
    def flush(self) -> None:
        """Write changed rows (and the shelf-time updates made since the last flush) in one transaction."""
        rows = [self.labels[m] for m in self.dirty if m in self.labels]
        self._note_problems(rows)
        sql, self._sql = self._sql, []
        self.dirty.clear()
        if not rows and not sql:
            return
        with transaction(self.conn):
            save_labels(self.conn, rows, links=False)
            for statement, args in sql:
                self.conn.execute(statement, args)

    def _note_problems(self, rows: list[LabelRow]) -> None:
        for row in rows:
            problem = row.state if row.state in ("orphan", "render_error") else (
                "stuck" if row.state != "idle" and self._attempts.get(row.mac, 0) >= self.settings.stuck_after_pushes
                else None)
            before = self._noted.get(row.mac)
            if problem == before:
                continue
            if problem is None:
                del self._noted[row.mac]
            else:
                self._noted[row.mac] = problem
            self.notices.append({"label": row.mac, "plu": row.plu, "problem": problem or before,
                                 "state": "raised" if problem else "resolved", "label_state": row.state,
                                 "error": row.last_error, "pushes": self._attempts.get(row.mac, 0)})

    def take_notices(self) -> list[dict[str, Any]]:
        out, self.notices = self.notices, []
        return out

    def _exec(self, statement: str, args: tuple[Any, ...]) -> None:
        self._sql.append((statement, args))

    def take_confirmations(self) -> list[Confirmation]:
        out, self.confirmations = self.confirmations, []
        return out

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for row in list(self.labels.values()):  # status() reads this from another thread
            states[row.state] = states.get(row.state, 0) + 1
        return {"labels": len(self.labels), "states": states, "counts": dict(self.counts),
                "gateway_error": self.gateway_error}

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True, cancel_futures=True)
