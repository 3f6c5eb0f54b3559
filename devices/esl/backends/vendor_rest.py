"""Vendor-style REST backend (articles + links + flash with asynchronous transactions).

The shape Hanshow ESL-Working, SoluM AIMS, SES VUSION and Pricer share: the agent uploads article data, links a
label to an article with a template, and the vendor server renders and delivers; status comes back per label
and per transaction. This module talks to :mod:`devices.esl.sim.vendor_ap`'s API; a real vendor needs only its
URLs, field names and authentication changed here. Events come from polling ``/labels`` (the base class).
"""

from __future__ import annotations

import time
from typing import Any

from devices.esl.backends.base import GatewayBackend, GatewayError, LabelContent, LabelReport, LedFlash, PushReceipt
from devices.esl.backends.http import json_body, read_json, request


class VendorRestBackend(GatewayBackend):
    """A vendor ESL server at ``url``; ``api_key`` (optional) is sent as a bearer token."""

    name = "vendor-rest"

    def __init__(self, url: str, *, timeout_s: float = 5.0, api_key: str | None = None) -> None:
        self.url = url.rstrip("/") + "/api/v1"
        self.timeout_s = timeout_s
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data, ctype = json_body(body) if body is not None else (None, None)
        url = self.url + path
        _, raw = request(method, url, body=data, content_type=ctype, timeout_s=self.timeout_s, headers=self.headers)
        return read_json(url, raw, "reply") if raw else None

    def push(self, label_id: str, content: LabelContent) -> PushReceipt:
        if content.article is None or not content.article.get("plu"):
            raise GatewayError("rejected", "the vendor backend renders from article data: content has no article")
        article_id = str(content.article["plu"])
        reply = self._call("PUT", "/articles", {"articles": [{"id": article_id, "data": content.article}]})
        try:
            revision = next(a["revision"] for a in reply["articles"] if a["id"] == article_id)
        except (KeyError, StopIteration, TypeError) as exc:
            raise GatewayError("protocol", "article upload reply lacks the article's revision") from exc
        template = content.template or "default"
        self._call("POST", "/links", {"links": [{"labelId": label_id, "articleId": article_id,
                                                 "template": template}]})
        return PushReceipt(label_id, f"{revision}:{template}", time.time())

    def flash(self, label_id: str, flash: LedFlash) -> None:
        self._call("POST", f"/labels/{label_id}/flash",
                   {"color": flash.colour, "pattern": flash.pattern, "durationS": flash.duration_s})

    def stop_flash(self, label_id: str) -> None:
        self._call("DELETE", f"/labels/{label_id}/flash")

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        """Status of one asynchronous transaction (``PENDING`` / ``SUCCESS`` / ``FAILED`` per label)."""
        return self._call("GET", f"/transactions/{transaction_id}")

    def labels(self) -> list[LabelReport]:
        out: list[LabelReport] = []
        page: int | None = 0
        while page is not None:
            reply = self._call("GET", f"/labels?page={page}")
            if not isinstance(reply, dict) or not isinstance(reply.get("labels"), list):
                raise GatewayError("protocol", "labels reply has no 'labels' list")
            for rec in reply["labels"]:
                out.append(LabelReport(
                    label_id=rec["labelId"], last_seen=rec.get("lastSeen"), shown_token=rec.get("displayed"),
                    pending=bool(rec.get("pending")), update_count=int(rec.get("updateCount") or 0),
                    temperature_c=rec.get("temperature"), battery_mv=rec.get("batteryMv"), rssi=rec.get("rssi"),
                    led=rec.get("led"), extra={"articleId": rec.get("articleId"), "template": rec.get("template")}))
            nxt = reply.get("nextPage")
            page = nxt if isinstance(nxt, int) and nxt > page else None
        return out
