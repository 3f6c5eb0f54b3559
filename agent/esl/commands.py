"""Signed shelf-label commands: ``esl.flash`` and ``esl.relink`` (``price.update`` is the price book's).

``esl.flash`` body::

    {"labels": ["0000A1B2C3D4E5F6"], "plus": ["4011"],     # either or both
     "colour": "green", "pattern": "blink", "duration_s": 30, "stop": false}

Result: ``{"labels": [{"label", "plu", "gateway", "position", "status": sent|queued|error, "error"?}]}``;
``queued`` = the gateway did not answer, the agent retries until the flash would have ended.

``esl.relink`` body (all items applied or none)::

    {"links": [{"label": "0000A1B2C3D4E5F6", "plu": "4011",   # plu null = unlink
                "template": null, "label_type": "29bwr",
                "position": {"aisle": "4", "shelf": 2, "slot": 7}, "fridge_group": "dairy"}]}

Result: ``{"labels": [{"label", "plu", "status": linked|unlinked}]}``. Rejections name the item:
``unknown_label``, ``unknown_plu``, ``invalid_body``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.esl.leds import LedRequestError, flash_rows, resolve_labels
from agent.esl.state import get_label, save_links
from agent.pricebook.book import PriceBook
from devices.esl.backends.base import GatewayBackend, LedFlash
from sync.commands import Command, CommandProcessor, CommandRejected, Handler

_FLASH_KEYS = frozenset({"labels", "plus", "colour", "color", "pattern", "duration_s", "stop"})
_LINK_KEYS = frozenset({"label", "plu", "template", "label_type", "position", "fridge_group"})


def register_esl(processor: CommandProcessor, *, backends: Callable[[], Mapping[str, GatewayBackend]],
                 on_relink: Callable[[], None] | None = None) -> None:
    """Register ``esl.flash`` and ``esl.relink``; ``backends()`` returns the configured gateways by name."""

    def flash(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        body = cmd.body
        unknown = sorted(set(body) - _FLASH_KEYS)
        if unknown:
            raise CommandRejected("invalid_body", f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_FLASH_KEYS))})")
        labels, plus = body.get("labels") or [], body.get("plus") or []
        if not _str_list(labels) or not _str_list(plus) or not (labels or plus):
            raise CommandRejected("invalid_body", "give 'labels' and/or 'plus' as non-empty lists of strings")
        led = None
        if not body.get("stop"):
            try:
                led = LedFlash(str(body.get("colour") or body.get("color") or "green"),
                               str(body.get("pattern", "blink")), float(body.get("duration_s", 30)))
            except (TypeError, ValueError) as exc:
                raise CommandRejected("invalid_body", str(exc)) from exc
        try:
            rows = resolve_labels(conn, labels=labels, plus=plus)
        except LedRequestError as exc:
            raise CommandRejected(exc.reason, str(exc)) from exc
        return {"labels": flash_rows(conn, backends(), rows, led, source=f"cmd:{cmd.cmd_id}")}

    def relink(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        links = cmd.body.get("links")
        if not isinstance(links, list) or not links or set(cmd.body) - {"links"}:
            raise CommandRejected("invalid_body", "body must be {\"links\": [{\"label\": ..., \"plu\": ...}, ...]}")
        book = PriceBook(conn)
        rows, out = [], []
        now = time.time()
        for i, item in enumerate(links):
            where = f"links[{i}]"
            if not isinstance(item, dict) or set(item) - _LINK_KEYS or not isinstance(item.get("label"), str):
                raise CommandRejected("invalid_body", f"{where}: needs a 'label' string; keys allowed: "
                                                      f"{', '.join(sorted(_LINK_KEYS))}")
            mac = item["label"].upper().replace(":", "")
            row = get_label(conn, mac) or get_label(conn, "0000" + mac)
            if row is None:
                raise CommandRejected("unknown_label", f"{where}: unknown label {item['label']!r} (no gateway has "
                                                       "reported it)")
            plu = item.get("plu")
            if plu is not None and (not isinstance(plu, str) or book.get(plu) is None):
                raise CommandRejected("unknown_plu", f"{where}: PLU {plu!r} is not in the price book")
            row.plu = plu
            if "template" in item:
                row.template = _template(item["template"], item.get("label_type") or row.label_type, where)
            if item.get("label_type") is not None:
                row.label_type = _label_type(item["label_type"], where)
            if "position" in item:
                row.aisle, row.shelf, row.slot = _position(item["position"], where)
            if "fridge_group" in item:
                group = item["fridge_group"]
                if group is not None and not isinstance(group, str):
                    raise CommandRejected("invalid_body", f"{where}.fridge_group must be a string or null")
                row.fridge_group = group
            row.desired_key, row.updated_at = None, now
            rows.append(row)
            out.append({"label": row.mac, "plu": plu, "status": "linked" if plu else "unlinked",
                        "position": row.position_text})
        save_links(conn, rows)
        return {"labels": out}

    def relinked(cmd: Command, result: dict[str, Any]) -> None:
        if on_relink is not None:
            on_relink()

    processor.register("esl.flash", Handler(apply=flash))
    processor.register("esl.relink", Handler(apply=relink, after_commit=relinked))


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _label_type(name: Any, where: str) -> str:
    from devices.esl.model import LABEL_TYPES

    if name not in LABEL_TYPES:
        raise CommandRejected("invalid_body", f"{where}.label_type: unknown label type {name!r}; known: "
                                              f"{', '.join(LABEL_TYPES)}")
    return str(name)


def _template(name: Any, label_type: str, where: str) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise CommandRejected("invalid_body", f"{where}.template must be a template name or null")
    try:
        from devices.esl.model import label_type as find
        from devices.esl.templates import load_template

        load_template(name, find(label_type))
    except (KeyError, ValueError) as exc:  # TemplateError is a ValueError
        raise CommandRejected("invalid_body", f"{where}.template: {exc}") from exc
    return name


def _position(pos: Any, where: str) -> tuple[str | None, int | None, int | None]:
    if pos is None:
        return None, None, None
    if not isinstance(pos, dict) or not isinstance(pos.get("aisle"), (str, int)):
        raise CommandRejected("invalid_body", f"{where}.position must be {{\"aisle\", \"shelf\", \"slot\"}}")
    try:
        shelf, slot = int(pos.get("shelf", 1)), int(pos.get("slot", 1))
    except (TypeError, ValueError) as exc:
        raise CommandRejected("invalid_body", f"{where}.position: shelf and slot must be integers") from exc
    return str(pos["aisle"]), shelf, slot
