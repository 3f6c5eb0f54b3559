"""The local control socket: ``store-agent status`` asks the running daemon over a Unix socket.

Protocol: one request line (``status``, or a name and JSON arguments: ``esl.pick {"order_id": ...}``), one
JSON reply line. The socket is created mode 0600 in the data
directory, so only the agent's user (and root) can ask.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(65536).decode("utf-8", "replace").strip()
        server: ControlServer = self.server  # type: ignore[assignment]
        name, _, arg = line.partition(" ")  # "name" or "name {json arguments}"
        handler = server.routes.get(name)
        try:
            if handler is None:
                reply = {"error": f"unknown request {name!r}", "known": sorted(server.routes)}
            else:
                reply = handler(json.loads(arg)) if arg else handler()
        except Exception as exc:  # the control socket must survive any status bug
            log.exception("control request failed")
            reply = {"error": repr(exc)}
        self.wfile.write((json.dumps(reply, default=str) + "\n").encode())


class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves named requests from ``routes`` (request line → callable returning a JSON-able dict)."""

    daemon_threads = True

    def __init__(self, path: Path, routes: dict[str, Callable[..., dict[str, Any]]]) -> None:
        self.path = path
        self.routes = routes
        if path.exists():
            path.unlink()  # stale socket of a killed daemon
        old = os.umask(0o177)
        try:
            super().__init__(str(path), _Handler)
        finally:
            os.umask(old)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="control-socket", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def ask(path: Path, request: str = "status", timeout_s: float = 3.0) -> dict[str, Any]:
    """Send one request to a running daemon; raises ``OSError`` when none listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(request.encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
    return json.loads(b"".join(chunks))
