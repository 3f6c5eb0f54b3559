"""LED flashes on labels: direct delivery with a durable retry queue, picking orders with one colour each, and
"find product". Shared by the ``esl.flash`` command, the daemon's control socket and the CLI's direct mode.

Picking colours: an order gets the first colour of :data:`PICK_COLOURS` that no active order holds (red comes
last: it reads as an alarm). A requested colour held by another active order is refused, so two pickers never
follow the same colour. Orders end at ``expires_at`` or when ``done``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from agent.esl.state import LabelRow, get_label, labels_of_plu
from devices.esl.backends.base import GatewayBackend, GatewayError, LedFlash

log = logging.getLogger(__name__)
PICK_COLOURS: tuple[str, ...] = ("green", "blue", "yellow", "cyan", "magenta", "white", "red")


class LedRequestError(ValueError):
    """Bad input to a flash/pick/find request; ``reason`` is a stable word (unknown_plu, unknown_label,
    colour_in_use, no_colour_free, invalid)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def resolve_labels(conn: sqlite3.Connection, *, labels: list[str] | None = None,
                   plus: list[str] | None = None) -> list[LabelRow]:
    """Label rows for explicit MACs and/or PLUs; raises :class:`LedRequestError` naming the first unknown one."""
    rows: dict[str, LabelRow] = {}
    for mac in labels or []:
        row = get_label(conn, str(mac).upper()) or get_label(conn, "0000" + str(mac).upper())
        if row is None:
            raise LedRequestError("unknown_label", f"unknown label {mac!r} (no gateway has reported it)")
        rows[row.mac] = row
    for plu in plus or []:
        found = labels_of_plu(conn, str(plu))
        if not found:
            raise LedRequestError("unknown_plu", f"no label shows PLU {plu!r} (unknown PLU or not linked)")
        rows.update({r.mac: r for r in found})
    return list(rows.values())


def flash_rows(conn: sqlite3.Connection, backends: Mapping[str, GatewayBackend], rows: list[LabelRow],
               flash: LedFlash | None, *, source: str, now: float | None = None) -> list[dict[str, Any]]:
    """Flash (``flash=None``: stop) each label; a gateway that does not answer gets the request queued for
    retry (``queued``) until it expires. Returns one outcome per label."""
    now = time.time() if now is None else now
    outcomes = []
    for row in rows:
        out: dict[str, Any] = {"label": row.mac, "plu": row.plu, "gateway": row.gateway,
                               "position": row.position_text}
        backend = backends.get(row.gateway)
        if backend is None:
            outcomes.append({**out, "status": "error", "error": f"gateway {row.gateway!r} is not configured"})
            continue
        try:
            backend.flash(row.mac, flash) if flash is not None else backend.stop_flash(row.mac)
            out["status"] = "sent"
        except GatewayError as exc:
            if exc.reason in ("unreachable", "busy", "server"):
                _queue(conn, row.mac, flash, source, now, exc.message)
                out.update(status="queued", error=exc.message)
            else:
                out.update(status="error", error=exc.message)
        outcomes.append(out)
    return outcomes


def _queue(conn: sqlite3.Connection, mac: str, flash: LedFlash | None, source: str, now: float, error: str) -> None:
    duration = flash.duration_s if flash else 0.0
    conn.execute("INSERT INTO esl_flash_queue(mac, colour, pattern, duration_s, stop, source, created_at, expires_at,"
                 " attempts, last_error) VALUES (?,?,?,?,?,?,?,?,1,?)",
                 (mac, flash.colour if flash else "", flash.pattern if flash else "", duration, int(flash is None),
                  source, now, now + max(duration, 60.0), error))


def retry_queued(conn: sqlite3.Connection, gateway: str, backend: GatewayBackend, now: float) -> int:
    """Deliver queued LED requests of ``gateway``'s labels; drops expired ones. Returns how many were sent."""
    conn.execute("DELETE FROM esl_flash_queue WHERE expires_at < ?", (now,))
    rows = conn.execute("SELECT q.id, q.mac, q.colour, q.pattern, q.duration_s, q.stop, q.created_at"
                        " FROM esl_flash_queue q JOIN esl_labels l ON l.mac = q.mac WHERE l.gateway = ?"
                        " ORDER BY q.id LIMIT 100", (gateway,)).fetchall()
    sent = 0
    for qid, mac, colour, pattern, duration, stop, created in rows:
        try:
            if stop:
                backend.stop_flash(mac)
            else:  # flash for what is left of the requested time
                backend.flash(mac, LedFlash(colour, pattern, max(1.0, duration - (now - created))))
        except GatewayError as exc:
            conn.execute("UPDATE esl_flash_queue SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                         (exc.message, qid))
            if exc.reason == "unreachable":
                break
            continue
        conn.execute("DELETE FROM esl_flash_queue WHERE id = ?", (qid,))
        sent += 1
    return sent


def pick(conn: sqlite3.Connection, backends: Mapping[str, GatewayBackend], order_id: str, plus: list[str], *,
         colour: str | None = None, pattern: str = "blink", duration_s: float = 300.0,
         now: float | None = None) -> dict[str, Any]:
    """Start (or restart) picking ``order_id``: flash the labels of ``plus`` in the order's colour."""
    now = time.time() if now is None else now
    if not order_id or not plus:
        raise LedRequestError("invalid", "an order needs an id and at least one PLU")
    conn.execute("DELETE FROM esl_pick_orders WHERE expires_at < ?", (now,))
    taken = {r[0]: r[1] for r in conn.execute("SELECT colour, order_id FROM esl_pick_orders WHERE order_id != ?",
                                              (order_id,))}
    if colour is None:
        colour = next((c for c in PICK_COLOURS if c not in taken), None)
        if colour is None:
            raise LedRequestError("no_colour_free", f"all {len(PICK_COLOURS)} colours are in use by active orders")
    elif colour in taken:
        free = [c for c in PICK_COLOURS if c not in taken]
        raise LedRequestError("colour_in_use", f"colour {colour} is in use by order {taken[colour]}; free: "
                                               f"{', '.join(free) or 'none'}")
    try:
        flash = LedFlash(colour, pattern, duration_s)
    except ValueError as exc:
        raise LedRequestError("invalid", str(exc)) from exc
    rows = resolve_labels(conn, plus=plus)
    outcomes = flash_rows(conn, backends, rows, flash, source=f"pick:{order_id}", now=now)
    conn.execute("INSERT INTO esl_pick_orders(order_id, colour, plus, labels, started_at, expires_at)"
                 " VALUES (?,?,?,?,?,?) ON CONFLICT(order_id) DO UPDATE SET colour = excluded.colour,"
                 " plus = excluded.plus, labels = excluded.labels, started_at = excluded.started_at,"
                 " expires_at = excluded.expires_at",
                 (order_id, colour, json.dumps(plus), json.dumps([r.mac for r in rows]), now, now + duration_s))
    return {"order_id": order_id, "colour": colour, "pattern": pattern, "duration_s": duration_s,
            "labels": outcomes}


def pick_done(conn: sqlite3.Connection, backends: Mapping[str, GatewayBackend], order_id: str) -> dict[str, Any]:
    """End an order: stop its labels' LEDs and free its colour."""
    row = conn.execute("SELECT labels FROM esl_pick_orders WHERE order_id = ?", (order_id,)).fetchone()
    if row is None:
        raise LedRequestError("invalid", f"no active order {order_id!r}")
    rows = [r for mac in json.loads(row[0]) if (r := get_label(conn, mac)) is not None]
    outcomes = flash_rows(conn, backends, rows, None, source=f"pick-done:{order_id}")
    conn.execute("DELETE FROM esl_pick_orders WHERE order_id = ?", (order_id,))
    return {"order_id": order_id, "done": True, "labels": outcomes}


def find(conn: sqlite3.Connection, backends: Mapping[str, GatewayBackend], plu: str, *, colour: str = "white",
         duration_s: float = 60.0) -> dict[str, Any]:
    """Flash the labels of ``plu`` and say where they hang."""
    rows = resolve_labels(conn, plus=[plu])
    outcomes = flash_rows(conn, backends, rows, LedFlash(colour, "fast", duration_s), source=f"find:{plu}")
    return {"plu": plu, "colour": colour, "labels": outcomes}
