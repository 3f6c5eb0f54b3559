"""A vendor-style ESL server (the shape of Hanshow ESL-Working / SoluM AIMS / VUSION): articles, label↔article
links with a template, LED flash, asynchronous transactions. Labels render on the server from article data.

JSON over HTTP, all under ``/api/v1``:

- ``PUT /articles`` ``{"articles": [{"id", "data": {...}}]}`` → ``{"articles": [{"id", "revision"}]}``
- ``POST /links`` ``{"links": [{"labelId", "articleId", "template"}]}`` → 202 ``{"transactionId"}``
- ``POST /labels/{labelId}/flash`` ``{"color", "pattern", "durationS"}`` → 202 ``{"transactionId"}``;
  ``DELETE /labels/{labelId}/flash`` stops it
- ``GET /transactions/{id}`` → ``{"id", "status": PENDING|SUCCESS|FAILED, "labels": {labelId: status}}``
- ``GET /labels?page=N`` → ``{"labels": [{"labelId", "articleId", "template", "displayed", "pending",
  "lastSeen", "updateCount", "temperature", "batteryMv", "rssi", "led"}], "nextPage": N|null}``

A label shows ``displayed = "<article revision>:<template>"``. Check-ins, failures and queue drops come from the
same :class:`~devices.esl.sim.tags.TagField` as the OpenEPaperLink simulator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devices.esl.backends.oepl_protocol import LED_SHAPES, encode_led_pattern
from devices.esl.sim.tags import TagField

log = logging.getLogger(__name__)
PAGE_SIZE = 200


def article_revision(data: dict[str, Any]) -> str:
    """The revision a vendor server gives an article's data (stable for equal data)."""
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class VendorApSimulator:
    """The simulated vendor server; ``start()`` binds ``host:port`` (0 = any free port)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, interval_s: float = 40.0,
                 failure_rate: float = 0.0, seed: int | None = None) -> None:
        self.host, self.port = host, port
        self.field = TagField(interval_s=interval_s, failure_rate=failure_rate, seed=seed)
        self.articles: dict[str, tuple[str, dict[str, Any]]] = {}
        self.links: dict[str, tuple[str, str]] = {}
        self.transactions: dict[str, list[tuple[str, str]]] = {}
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_labels(self, ids: list[str], **kw: Any) -> None:
        for label_id in ids:
            self.field.add(label_id, **kw)

    def start(self) -> VendorApSimulator:
        handler = type("Handler", (_Handler,), {"sim": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._stop.clear()
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                          daemon=True, name="vendor-sim-http"),
                         threading.Thread(target=self._clock, daemon=True, name="vendor-sim-clock")]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for t in self._threads:
            t.join(5)

    def _clock(self) -> None:
        while not self._stop.wait(min(0.05, self.field.interval_s / 10)):
            self.field.tick()

    def transaction_status(self, tid: str) -> dict[str, Any] | None:
        with self.lock:
            items = self.transactions.get(tid)
        if items is None:
            return None
        labels: dict[str, str] = {}
        for label_id, token in items:
            tag = self.field.get(label_id)
            if tag is None:
                labels[label_id] = "FAILED"
            elif token.startswith("led:"):
                labels[label_id] = "PENDING" if tag.pending_led is not None else "SUCCESS"
            elif token in tag.history or tag.hash == token:
                labels[label_id] = "SUCCESS"
            elif tag.pending_hash == token:
                labels[label_id] = "PENDING"
            else:
                labels[label_id] = "FAILED"
        statuses = set(labels.values())
        overall = "PENDING" if "PENDING" in statuses else "FAILED" if "FAILED" in statuses else "SUCCESS"
        return {"id": tid, "status": overall, "labels": labels}

    def label_record(self, label_id: str, now: float) -> dict[str, Any]:
        tag = self.field.tags[label_id]
        article_id, template = self.links.get(label_id, (None, None))
        led = tag.led if tag.led and tag.led["until"] > now else None
        return {"labelId": label_id, "articleId": article_id, "template": template, "displayed": tag.hash,
                "pending": tag.pending_hash is not None, "lastSeen": tag.last_seen, "updateCount": tag.update_count,
                "temperature": tag.temperature, "batteryMv": tag.battery_mv, "rssi": tag.rssi,
                "led": f"{led['colour']}/{led['pattern']}" if led else None}


class _Handler(BaseHTTPRequestHandler):
    sim: VendorApSimulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("vendor-sim " + format, *args)

    def _reply(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(n) or b"null")
        except ValueError:
            return None

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/api/v1")
        if path.startswith("/transactions/"):
            status = self.sim.transaction_status(path.rsplit("/", 1)[1])
            return self._reply(200, status) if status else self._reply(404, {"error": "unknown transaction"})
        if path == "/labels":
            page = int(parse_qs(parts.query).get("page", ["0"])[0])
            now = time.time()
            with self.sim.field.lock:
                ids = sorted(self.sim.field.tags)
                chunk = [self.sim.label_record(i, now) for i in ids[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]]
            more = (page + 1) * PAGE_SIZE < len(ids)
            return self._reply(200, {"labels": chunk, "nextPage": page + 1 if more else None})
        return self._reply(404, {"error": "not found"})

    def do_PUT(self) -> None:  # noqa: N802
        body = self._body()
        if urlsplit(self.path).path != "/api/v1/articles":
            return self._reply(404, {"error": "not found"})
        if not isinstance(body, dict) or not isinstance(body.get("articles"), list):
            return self._reply(400, {"error": "body must be {\"articles\": [...]}"})
        out = []
        with self.sim.lock:
            for a in body["articles"]:
                if not isinstance(a, dict) or not isinstance(a.get("id"), str) or not isinstance(a.get("data"), dict):
                    return self._reply(400, {"error": "each article needs a string id and a data object"})
                rev = article_revision(a["data"])
                self.sim.articles[a["id"]] = (rev, a["data"])
                out.append({"id": a["id"], "revision": rev})
        return self._reply(200, {"articles": out})

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.removeprefix("/api/v1")
        body = self._body()
        tid = f"tx-{time.monotonic_ns()}"
        if path == "/links":
            if not isinstance(body, dict) or not isinstance(body.get("links"), list):
                return self._reply(400, {"error": "body must be {\"links\": [...]}"})
            items = []
            for link in body["links"]:
                label_id, article_id = link.get("labelId"), link.get("articleId")
                if self.sim.field.get(label_id) is None:
                    return self._reply(404, {"error": f"label {label_id} not found"})
                if article_id not in self.sim.articles:
                    return self._reply(400, {"error": f"article {article_id} not found"})
                template = str(link.get("template") or "default")
                token = f"{self.sim.articles[article_id][0]}:{template}"
                self.sim.links[label_id] = (article_id, template)
                self.sim.field.queue_image(label_id, token)
                items.append((label_id, token))
            with self.sim.lock:
                self.sim.transactions[tid] = items
            return self._reply(202, {"transactionId": tid})
        if path.startswith("/labels/") and path.endswith("/flash"):
            label_id = path.split("/")[2]
            if self.sim.field.get(label_id) is None:
                return self._reply(404, {"error": f"label {label_id} not found"})
            body = body if isinstance(body, dict) else {}
            try:
                pattern = encode_led_pattern(str(body.get("color")), str(body.get("pattern", "blink")),
                                             float(body.get("durationS", 30)))
            except (KeyError, ValueError, TypeError):
                return self._reply(400, {"error": f"color/pattern must be known ({', '.join(LED_SHAPES)})"})
            self.sim.field.queue_led(label_id, pattern)
            with self.sim.lock:
                self.sim.transactions[tid] = [(label_id, "led:")]
            return self._reply(202, {"transactionId": tid})
        return self._reply(404, {"error": "not found"})

    def do_DELETE(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.removeprefix("/api/v1")
        if path.startswith("/labels/") and path.endswith("/flash"):
            label_id = path.split("/")[2]
            if self.sim.field.get(label_id) is None:
                return self._reply(404, {"error": f"label {label_id} not found"})
            self.sim.field.queue_led(label_id, None)
            return self._reply(202, {"transactionId": None})
        return self._reply(404, {"error": "not found"})
