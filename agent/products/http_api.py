"""The scale screen's local HTTP endpoint (stdlib ``http.server``; payloads in docs/scale.md).

- ``GET /candidates`` → ``{"scales": {name: <candidates payload or null>}}``;
  ``GET /candidates/<scale>`` → that scale's latest candidates payload (404 when none yet);
- ``POST /confirm`` with ``{"weighing_id": "...", "plu": "4011" | null}`` → the recorded weighing
  (400 malformed, 404 unknown weighing, 409 already confirmed or expired);
- ``GET /health`` → ``{"ok": true}``;
- ``GET /screen?scale=<name>`` → a reference screen page (:mod:`agent.products.screen_page`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent.products.screen_page import PAGE

log = logging.getLogger(__name__)

MAX_BODY = 16_384


class ConfirmError(Exception):
    """A confirmation that cannot be recorded; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class ScreenServer:
    """Serves ``latest(scale|None)`` and ``confirm(body) -> dict`` (raising :class:`ConfirmError`)."""

    def __init__(self, host: str, port: int, *, latest: Callable[[str | None], Any],
                 confirm: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        handler = _handler(latest, confirm)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="products-http", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        return int(self.httpd.server_address[1])

    def start(self) -> ScreenServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(latest: Callable[[str | None], Any], confirm: Callable[[dict[str, Any]], dict[str, Any]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "store-agent-products/1"

        def log_message(self, fmt: str, *args: Any) -> None:  # keep stdout clean; debug log instead
            log.debug("http " + fmt, *args)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Access-Control-Allow-Origin", "*")  # screens may be web apps served elsewhere
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:  # noqa: N802 - CORS pre-flight of a browser screen's POST /confirm
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Content-Type")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/health":
                self._send(200, {"ok": True})
            elif path == "/screen":
                data = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif path == "/candidates":
                self._send(200, {"scales": latest(None)})
            elif path.startswith("/candidates/"):
                body = latest(path.rsplit("/", 1)[1])
                self._send(200, body) if body else self._send(404, {"error": "no_candidates",
                                                                     "message": "no weighing on this scale yet"})
            else:
                self._send(404, {"error": "not_found", "message": "GET /candidates[/<scale>] or POST /confirm"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0].rstrip("/") != "/confirm":
                self._send(404, {"error": "not_found", "message": "POST /confirm"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._send(400, {"error": "bad_length", "message": f"send a JSON body of 1-{MAX_BODY} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length))
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                self._send(400, {"error": "invalid_json", "message": "body must be a JSON object"})
                return
            try:
                self._send(200, confirm(body))
            except ConfirmError as exc:
                self._send(exc.status, {"error": exc.reason, "message": str(exc)})
            except Exception:  # a bug must answer 500, not kill the server thread
                log.exception("confirm failed")
                self._send(500, {"error": "internal", "message": "confirmation failed; see the agent log"})

    return Handler
