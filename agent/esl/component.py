"""Daemon component ``esl-<gateway>``: keeps one gateway's labels showing the price book, delivers queued LED
requests, watches fridge temperatures and label health, and reports to the cloud through the outbox.

Loop (every ``step_s``): take the gateway's live events (a reader thread follows its websocket / event stream
and reconnects), poll its whole label database every ``poll_interval_s``, re-evaluate desired content when the
price book's revision moves, when a scheduled change or promo boundary passes (also with no cloud connection),
after ``esl.relink`` and every ``reevaluate_s``; push what is due; flush state; send telemetry and alarms.

Cloud streams: ``telemetry/esl_delivery`` (labels confirmed with their time to shelf), ``telemetry/esl_temperature``
(fridge-group readings), ``events/esl_alarm`` (cold_chain / battery_low / label_offline raised or cleared),
``telemetry/esl_gateway`` (label states, gateway errors), ``events/esl_label`` (a label became ``orphan`` —
its PLU left the price book —, ``render_error`` or ``stuck`` — 5 pushes without confirmation — or recovered).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from agent.config.device_models import EslGatewayConfig
from agent.esl.alerts import AlarmChange, AlertMonitor, FridgeRule
from agent.esl.content import Renderer, default_renderer
from agent.esl.leds import retry_queued
from agent.esl.reconciler import Confirmation, Reconciler, ReconcilerSettings
from agent.store import connect
from devices.esl.backends import build_backend
from devices.esl.backends.base import GatewayBackend, GatewayError, GatewayEvent
from devices.esl.model import HW_TYPES
from sync.outbox import Outbox

log = logging.getLogger(__name__)
#: Labels per ``telemetry/esl_delivery`` message.
DELIVERY_BATCH = 200


def backend_for(cfg: EslGatewayConfig) -> GatewayBackend:
    """The backend of one configured gateway."""
    return build_backend(cfg.backend, cfg.url, timeout_s=cfg.request_timeout_s)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * (len(ordered) - 1)))))]


class EslGatewayComponent:
    """One gateway as a supervised component (``run(stop)`` / ``status()``)."""

    def __init__(self, cfg: EslGatewayConfig, db_path: Path, outbox: Outbox | None, *,
                 render: Renderer | None = None, backend: GatewayBackend | None = None, step_s: float = 0.1) -> None:
        self.cfg = cfg
        self.db_path = db_path
        self.outbox = outbox
        self.render = render
        self.backend = backend or backend_for(cfg)
        self.step_s = step_s
        self.events: queue.Queue[GatewayEvent] = queue.Queue(maxsize=100_000)
        self._wake = threading.Event()
        self._relinked = threading.Event()
        self.reconciler: Reconciler | None = None
        self.stream_error: str | None = None
        self.poll_error: str | None = None
        self._polled = threading.Event()
        self.alarms: dict[str, float] = {}
        self.sent = {"delivery": 0, "alarms": 0, "temperature": 0}

    # -- hooks for commands -------------------------------------------------------------------------
    def price_changed(self, _result: dict[str, Any] | None = None) -> None:
        """Wake the loop (``price.update`` committed); the revision check finds what changed."""
        self._wake.set()

    def relinked(self) -> None:
        """Links/positions changed (``esl.relink`` committed): reload rows and re-evaluate."""
        self._relinked.set()
        self._wake.set()

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        conn = connect(self.db_path)
        cfg = self.cfg
        settings = ReconcilerSettings(retry_timeout_s=cfg.retry_timeout_s, push_workers=cfg.push_workers,
                                      default_label_type=cfg.default_label_type, confirm_by=cfg.confirm_by)
        rec = Reconciler(conn, cfg.name, self.backend, self.render or default_renderer(), settings,
                         hw_types={k: v.name for k, v in HW_TYPES.items()})
        self.reconciler = rec
        active = {r[0]: r[1] for r in conn.execute("SELECT key, since FROM esl_alarms WHERE active = 1")}
        monitor = AlertMonitor([FridgeRule(g.name, g.max_c, g.alarm_after_min * 60, g.hysteresis_c)
                                for g in cfg.fridge_groups], battery_low_mv=cfg.battery_low_mv,
                               offline_after_s=cfg.offline_after_s, active=active)
        for target, what in ((self._read_events, "events"), (self._poll_loop, "poll")):
            threading.Thread(target=target, args=(stop,), name=f"esl-{cfg.name}-{what}", daemon=True).start()
        revision = rec.book.revision
        last_eval = now = time.time()
        rec.refresh(now)
        next_transition = rec.book.next_transition(now)
        next_full = next_second = next_temp = now
        try:
            while not stop.is_set():
                now = time.time()
                polled = self._polled.is_set()  # read before draining: the first poll's reports are then in
                self._drain(rec, now)
                if self.poll_error != rec.gateway_error and self.poll_error:
                    rec.gateway_error = self.poll_error
                if self._relinked.is_set():
                    self._relinked.clear()
                    rec.reload()
                    rec.refresh(now)
                new_revision = rec.book.revision
                if new_revision != revision:
                    rec.refresh(now, rec.book.changed_plus_since(revision))
                    revision = new_revision
                    next_transition = rec.book.next_transition(now)
                if next_transition is not None and now >= next_transition:
                    rec.refresh(now, rec.book.plus_changing_between(last_eval, now))
                    next_transition = rec.book.next_transition(now)
                if now >= next_full:
                    next_full = now + cfg.reevaluate_s
                    rec.refresh(now)
                last_eval = now
                rec.push_due(now)
                rec.flush()
                if now >= next_second:  # once a second: LED retries, delivery telemetry, alarms
                    next_second = now + 1.0
                    retry_queued(conn, cfg.name, self.backend, now)
                    self._report_confirmations(rec.take_confirmations())
                    for notice in rec.take_notices():
                        self._enqueue("events/esl_label", {"gateway": cfg.name, "at": now, **notice})
                    if polled:  # not before the first poll is in: a stale last_seen would look offline
                        self._alerts(conn, monitor, rec, now)
                if now >= next_temp:
                    next_temp = now + cfg.poll_interval_s
                    self._temperatures(monitor, rec, now)
                self._wake.wait(self.step_s)
                self._wake.clear()
        finally:
            rec.close()
            conn.close()
            if self.outbox is not None:
                self.outbox.close()

    def _read_events(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                for event in self.backend.events(stop):
                    self.events.put(event)
                    self.stream_error = None
            except GatewayError as exc:
                self.stream_error = exc.message
            except Exception as exc:  # keep following the gateway whatever it sends
                log.exception("ESL event stream failed", extra={"gateway": self.cfg.name})
                self.stream_error = repr(exc)
            stop.wait(min(5.0, max(0.2, self.cfg.checkin_interval_s / 4)))

    def _drain(self, rec: Reconciler, now: float) -> None:
        for _ in range(20_000):
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if event.report is not None:
                rec.on_report(event.report, now)
            elif event.kind == "error":
                log.warning("ESL gateway error", extra={"gateway": self.cfg.name, "message": event.message})

    def _poll_loop(self, stop: threading.Event) -> None:
        """Read the whole label database now and then (a real AP pages it in ~5 kB chunks, so for thousands of
        labels this takes a while: it runs here, not in the reconciling loop)."""
        while not stop.is_set():
            try:
                for report in self.backend.labels():
                    self.events.put(GatewayEvent("label", report))
                self.poll_error = None
                self._polled.set()
            except GatewayError as exc:
                self.poll_error = exc.message
            except Exception as exc:
                log.exception("ESL poll failed", extra={"gateway": self.cfg.name})
                self.poll_error = repr(exc)
            stop.wait(self.cfg.poll_interval_s)

    # -- reporting ----------------------------------------------------------------------------------
    def _enqueue(self, stream: str, body: dict[str, Any]) -> None:
        if self.outbox is not None:
            self.outbox.enqueue(stream, body)

    def _report_confirmations(self, confirmed: list[Confirmation]) -> None:
        # One message per 200 labels: a mass price change confirms thousands at once, and every label's time to
        # shelf must reach the cloud (each message summarises its own labels).
        for start in range(0, len(confirmed), DELIVERY_BATCH):
            batch = confirmed[start:start + DELIVERY_BATCH]
            times = [c.confirmed_at - c.desired_since for c in batch]
            self._enqueue("telemetry/esl_delivery", {
                "gateway": self.cfg.name, "confirmed": len(batch),
                "time_to_shelf_s": {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95), "max": max(times)},
                "labels": [{"label": c.mac, "plu": c.plu, "time_to_shelf_s": round(t, 3), "pushes": c.pushes}
                           for c, t in zip(batch, times)]})
            self.sent["delivery"] += 1

    def _alerts(self, conn: Any, monitor: AlertMonitor, rec: Reconciler, now: float) -> None:
        changes = monitor.evaluate(list(rec.labels.values()), now)
        for change in changes:
            self._persist_alarm(conn, change)
            self._enqueue("events/esl_alarm", {"gateway": self.cfg.name, "kind": change.kind,
                                               "subject": change.subject, "state": "raised" if change.active
                                               else "cleared", "at": change.at, **change.detail})
            self.sent["alarms"] += 1
            log.warning("ESL alarm %s", "raised" if change.active else "cleared",
                        extra={"kind": change.kind, "subject": change.subject})
        self.alarms = dict(monitor.active)

    @staticmethod
    def _persist_alarm(conn: Any, change: AlarmChange) -> None:
        conn.execute("INSERT INTO esl_alarms(key, kind, subject, active, since, cleared_at, detail)"
                     " VALUES (?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET active = excluded.active,"
                     " since = CASE WHEN excluded.active = 1 THEN excluded.since ELSE esl_alarms.since END,"
                     " cleared_at = excluded.cleared_at, detail = excluded.detail",
                     (change.key, change.kind, change.subject, int(change.active), change.at,
                      None if change.active else change.at, json.dumps(change.detail, default=str)))

    def _temperatures(self, monitor: AlertMonitor, rec: Reconciler, now: float) -> None:
        readings = monitor.group_readings(rec.labels.values(), now)
        if readings:
            self._enqueue("telemetry/esl_temperature", {"gateway": self.cfg.name, "at": now,
                                                        "groups": list(readings.values())})
            self.sent["temperature"] += 1
        self._enqueue("telemetry/esl_gateway", {"gateway": self.cfg.name, **rec.summary(),
                                                "stream_error": self.stream_error})

    def status(self) -> dict[str, Any]:
        rec = self.reconciler
        return {"gateway": self.cfg.name, "backend": self.cfg.backend, "url": self.cfg.url,
                **(rec.summary() if rec else {}), "stream_error": self.stream_error, "poll_error": self.poll_error,
                "active_alarms": sorted(self.alarms), "sent": dict(self.sent)}
