"""OpenEPaperLink access point backend: talks to the AP's web API (we never reuse its CC BY-NC-SA code).

Endpoints used: ``POST /imgupload`` (multipart ``mac``, ``file`` = JPEG, ``dither``), ``GET /led_flash``
(``mac``, ``pattern``), ``POST /tag_cmd`` (``mac``, ``cmd`` = ``ledflash_stop`` …), ``GET /get_db`` (paged with
``pos``/``continu``) and the websocket ``/ws`` (``{"tags": [...]}``, ``{"errMsg": ...}``, ``{"logMsg": ...}``).
See :mod:`devices.esl.backends.oepl_protocol` for the hash and LED encodings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from devices.esl.backends.base import (
    GatewayBackend, GatewayError, GatewayEvent, LabelContent, LabelReport, LedFlash, PushReceipt,
)
from devices.esl.backends.http import form, multipart, read_json, request
from devices.esl.backends.oepl_protocol import (
    SLEEP_SENTINEL, encode_led_pattern, image_buffer_hash, jpeg_bytes, normalise_mac,
)
from devices.esl.backends.websocket import WebSocketClient, WebSocketClosed

log = logging.getLogger(__name__)


def report_from_record(rec: dict[str, Any]) -> LabelReport:
    """A :class:`LabelReport` from one ``get_db`` / websocket tag record."""
    battery = rec.get("batteryMv")
    next_checkin = rec.get("nextcheckin")
    return LabelReport(
        label_id=str(rec.get("mac", "")).upper(),
        last_seen=float(rec["lastseen"]) if rec.get("lastseen") else None,
        shown_token=rec.get("hash") or None,
        pending=bool(rec.get("pending")),
        update_count=int(rec.get("updatecount") or 0),
        next_checkin=None if not next_checkin or next_checkin == SLEEP_SENTINEL else float(next_checkin),
        temperature_c=float(rec["temperature"]) if rec.get("temperature") is not None else None,
        battery_mv=int(battery) if battery not in (None, 0, 1337) else None,
        rssi=int(rec["RSSI"]) if rec.get("RSSI") is not None else None,
        hw_type=int(rec["hwType"]) if rec.get("hwType") is not None else None,
        led=rec.get("led") or None,
        extra={k: rec[k] for k in ("alias", "contentMode", "LQI", "wakeupReason") if k in rec},
    )


class OpenEPaperLinkBackend(GatewayBackend):
    """One OpenEPaperLink AP at ``url`` (``http://host[:port]``)."""

    name = "openepaperlink"

    def __init__(self, url: str, *, timeout_s: float = 5.0, dither: int = 0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.dither = dither

    def push(self, label_id: str, content: LabelContent) -> PushReceipt:
        if content.image is None:
            raise GatewayError("rejected", "OpenEPaperLink takes images: content has no image")
        image = content.image
        body, ctype = multipart({"mac": normalise_mac(label_id), "dither": str(self.dither)},
                                {"file": ("label.jpg", jpeg_bytes(image), "image/jpeg")})
        request("POST", f"{self.url}/imgupload", body=body, content_type=ctype, timeout_s=self.timeout_s)
        return PushReceipt(normalise_mac(label_id), image_buffer_hash(image), time.time())

    def push_drawing(self, label_id: str, drawing: list[dict[str, Any]], ttl_min: int = 0) -> None:
        """``POST /jsonupload``: a drawing list the AP renders itself (``[{"text": [x, y, "…", font, colour]},
        {"box": [...]}, ...]``). The agent pushes rendered images; this is for ad-hoc content."""
        body, ctype = form({"mac": normalise_mac(label_id), "json": json.dumps(drawing), "ttl": ttl_min})
        request("POST", f"{self.url}/jsonupload", body=body, content_type=ctype, timeout_s=self.timeout_s)

    def flash(self, label_id: str, flash: LedFlash) -> None:
        query = urlencode({"mac": normalise_mac(label_id),
                           "pattern": encode_led_pattern(flash.colour, flash.pattern, flash.duration_s)})
        request("GET", f"{self.url}/led_flash?{query}", timeout_s=self.timeout_s)

    def stop_flash(self, label_id: str) -> None:
        self.tag_cmd(label_id, "ledflash_stop")

    def tag_cmd(self, label_id: str, cmd: str) -> None:
        """``POST /tag_cmd`` (``refresh``, ``reboot``, ``clear``, ``ledflash``, ``ledflash_stop`` …)."""
        body, ctype = form({"mac": normalise_mac(label_id), "cmd": cmd})
        request("POST", f"{self.url}/tag_cmd", body=body, content_type=ctype, timeout_s=self.timeout_s)

    def probe(self) -> str:
        """``GET /sysinfo`` (cheap, unlike paging through ``/get_db`` on a large store)."""
        url = f"{self.url}/sysinfo"
        try:
            _, data = request("GET", url, timeout_s=self.timeout_s)
        except GatewayError as exc:
            if exc.reason == "unknown_label":  # a 404: something answers, but not an AP
                raise GatewayError("protocol", f"{exc.message} (not an OpenEPaperLink AP?)") from exc
            raise
        info = read_json(url, data, "sysinfo")
        if not isinstance(info, dict):
            raise GatewayError("protocol", f"{url}: not a JSON object")
        alias = info.get("alias") or "?"
        return f"OpenEPaperLink AP {alias!s} (build {info.get('buildversion', '?')!s})"

    def labels(self) -> list[LabelReport]:
        reports: list[LabelReport] = []
        pos: int | None = 0
        while pos is not None:
            url = f"{self.url}/get_db?pos={pos}"
            _, data = request("GET", url, timeout_s=self.timeout_s)
            page = read_json(url, data, "get_db")
            if not isinstance(page, dict) or not isinstance(page.get("tags"), list):
                raise GatewayError("protocol", f"{url}: no 'tags' list")
            reports.extend(report_from_record(rec) for rec in page["tags"] if isinstance(rec, dict))
            nxt = page.get("continu")
            pos = int(nxt) if isinstance(nxt, int) and nxt > pos else None
        return reports

    def events(self, stop: threading.Event) -> Iterator[GatewayEvent]:
        parts = urlsplit(self.url)
        if parts.scheme != "http":
            yield from super().events(stop)  # wss through a proxy: fall back to polling
            return
        try:
            ws = WebSocketClient(f"ws://{parts.netloc}/ws", timeout_s=self.timeout_s)
        except (OSError, WebSocketClosed) as exc:
            raise GatewayError("unreachable", f"websocket {self.url}/ws: {exc}") from exc
        try:
            while not stop.is_set():
                text = ws.recv_text(timeout_s=0.5)
                if text is None:
                    continue
                yield from _events_of(text)
        except WebSocketClosed as exc:
            raise GatewayError("unreachable", f"websocket {self.url}/ws closed: {exc}") from exc
        finally:
            ws.close()


def _events_of(text: str) -> Iterator[GatewayEvent]:
    try:
        msg = json.loads(text)
    except ValueError:
        log.warning("unreadable websocket message from the AP", extra={"text": text[:200]})
        return
    if not isinstance(msg, dict):
        return
    for rec in msg.get("tags") or []:
        if isinstance(rec, dict) and rec.get("mac"):
            yield GatewayEvent("label", report_from_record(rec))
    if "errMsg" in msg:
        yield GatewayEvent("error", message=str(msg["errMsg"]))
    if "logMsg" in msg:
        yield GatewayEvent("log", message=str(msg["logMsg"]))
