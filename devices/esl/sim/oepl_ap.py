"""A protocol-faithful OpenEPaperLink access point on loopback: the AP's HTTP endpoints and its websocket.

Speaks what the agent's backend speaks to a real AP (field names and replies as the AP's web API):
``POST /imgupload`` (multipart ``mac``, ``file``), ``POST /jsonupload`` (``mac``, ``json``), ``POST /tag_cmd``,
``GET /led_flash``, ``GET /get_db`` (paged, ``continu``), ``GET /sysinfo``, websocket ``/ws`` (``tags``,
``logMsg``, ``errMsg``, ``sys``). Simulator-only: ``POST /sim/tag`` (``mac`` + ``temperature`` / ``battery`` /
``online``) to stage sensor readings. Labels and their check-ins live in :class:`~devices.esl.sim.tags.TagField`.

Example::

    ap = OeplApSimulator(interval_s=0.2, failure_rate=0.05).start()
    ap.add_tags(["0000A1B2C3D4E5F6"])
    ...  # OpenEPaperLinkBackend(ap.url)
    ap.stop()
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from devices.esl.backends.oepl_protocol import image_buffer_hash, normalise_mac
from devices.esl.backends.websocket import OP_TEXT, accept_key, encode_frame
from devices.esl.sim.tags import TagField

log = logging.getLogger(__name__)
_PAGE_BYTES = 5000
_TAG_CMDS = {"del", "purge", "clear", "refresh", "reboot", "scan", "reset", "deepsleep", "ledflash",
             "ledflash_long", "ledflash_stop"}


class OeplApSimulator:
    """The simulated AP. ``start()`` binds ``host:port`` (0 = any free port) and starts the check-in clock."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, interval_s: float = 40.0,
                 failure_rate: float = 0.0, retry_after_failure_s: float | None = None, seed: int | None = None,
                 broadcast_idle: bool = True, failure_mode: str = "drop", pending_ttl_s: float = 86_400.0) -> None:
        self.host, self.port = host, port
        self.field = TagField(interval_s=interval_s, failure_rate=failure_rate,
                              retry_after_failure_s=retry_after_failure_s, seed=seed, failure_mode=failure_mode,
                              pending_ttl_s=pending_ttl_s)
        self.broadcast_idle = broadcast_idle
        self.running = True  # False: answers 409 "Come back later" like an AP that is not in running state
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._clients: list[queue.Queue[str | None]] = []
        self._clients_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_tags(self, macs: list[str], **kw: Any) -> None:
        for mac in macs:
            self.field.add(normalise_mac(mac), **kw)

    def start(self) -> OeplApSimulator:
        handler = type("Handler", (_Handler,), {"ap": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._stop.clear()
        self._threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                          name="oepl-sim-http", daemon=True),
                         threading.Thread(target=self._clock, name="oepl-sim-clock", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop serving (port closed: clients see connection refused); tags keep their state for ``start()``."""
        self._stop.set()
        with self._clients_lock:
            for q in self._clients:
                q.put(None)
            self._clients.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for t in self._threads:
            t.join(5)

    # -- broadcasting -------------------------------------------------------------------------------
    def broadcast(self, msg: dict[str, Any]) -> None:
        text = json.dumps(msg)
        with self._clients_lock:
            for q in self._clients:
                q.put(text)

    def _clock(self) -> None:
        step = min(0.05, self.field.interval_s / 10)
        last_sys = 0.0
        log_sent, errors_sent = self.field.log_count, self.field.error_count
        while not self._stop.wait(step):
            changed = self.field.tick(include_idle=self.broadcast_idle)
            # Counts, not list lengths (the lists keep only their last 1000 lines); lines logged by the HTTP
            # handlers between ticks (e.g. an identical image skipped) are sent too.
            with self.field.lock:
                errors = _newest(self.field.errors, self.field.error_count - errors_sent)
                lines = _newest(self.field.log, self.field.log_count - log_sent)
                errors_sent, log_sent = self.field.error_count, self.field.log_count
            for line in errors:
                self.broadcast({"errMsg": line})
            for i in range(0, len(changed), 25):
                self.broadcast({"tags": changed[i:i + 25]})
            for line in lines:
                self.broadcast({"logMsg": line})
            now = time.time()
            if now - last_sys >= 5:
                last_sys = now
                self.broadcast({"sys": {"currtime": int(now), "recordcount": len(self.field.tags), "apstate": 1,
                                        "runstate": 2, "uptime": 0}})


class _Handler(BaseHTTPRequestHandler):
    ap: OeplApSimulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("oepl-sim " + format, *args)

    # -- plumbing -----------------------------------------------------------------------------------
    def _reply(self, status: int, body: str | bytes, ctype: str = "text/plain") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> tuple[dict[str, str], dict[str, bytes]]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            return _parse_multipart(body, ctype)
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}, {}

    def _tag(self, mac_text: str | None):  # noqa: ANN202 - SimTag | None
        try:
            return self.ap.field.get(normalise_mac(mac_text or ""))
        except ValueError:
            return None

    # -- routes -------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        parts = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/ws":
            return self._websocket()
        if parts.path == "/get_db":
            return self._get_db(q)
        if parts.path == "/led_flash":
            if not q.get("mac"):
                return self._reply(400, "parameters are missing")
            tag = self._tag(q.get("mac"))
            if tag is None:
                return self._reply(400, "mac not found")
            try:
                self.ap.field.queue_led(tag.mac, q.get("pattern"))
            except ValueError as exc:
                return self._reply(400, f"bad pattern: {exc}")
            return self._reply(200, "ok, request transmitted")
        if parts.path == "/sysinfo":
            return self._reply(200, json.dumps({"alias": "sim", "env": "SIMULATOR", "buildversion": "sim",
                                                "ap_version": 0}), "application/json")
        return self._reply(404, "Not found")

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        fields, files = self._form()
        if path == "/sim/tag":
            return self._sim_tag(fields)
        if not self.ap.running:
            return self._reply(409, "Come back later")
        if path == "/imgupload":
            tag = self._tag(fields.get("mac"))
            data = files.get("file")
            if tag is None:
                return self._reply(400, "mac not found")
            if not data:
                return self._reply(400, "Missing parameters")
            try:
                image = Image.open(io.BytesIO(data))
                image.load()
            except Exception:  # any undecodable upload is the client's error
                return self._reply(400, "Error: not a valid image")
            self.ap.field.queue_image(tag.mac, image_buffer_hash(image))
            return self._reply(200, "Ok, saved")
        if path == "/jsonupload":
            tag = self._tag(fields.get("mac"))
            if not fields.get("json"):
                return self._reply(400, "Missing parameters")
            if tag is None:
                return self._reply(400, "mac not found in tagDB")
            digest = hashlib.md5(fields["json"].encode()).hexdigest()[:16] + "0" * 16
            self.ap.field.queue_image(tag.mac, digest)
            return self._reply(200, "Ok, saved")
        if path == "/tag_cmd":
            return self._tag_cmd(fields)
        return self._reply(404, "Not found")

    def _tag_cmd(self, fields: dict[str, str]) -> None:
        cmd = fields.get("cmd", "")
        tag = self._tag(fields.get("mac"))
        if tag is None:
            return self._reply(400, "Error: mac not found")
        if cmd not in _TAG_CMDS:
            return self._reply(400, f"Error: unknown command {cmd!r}")
        field = self.ap.field
        if cmd == "del":
            field.delete(tag.mac)
        elif cmd == "clear":
            field.clear(tag.mac)
        elif cmd == "ledflash_stop":
            field.queue_led(tag.mac, None)
        elif cmd in ("ledflash", "ledflash_long"):
            pattern = "21E0150A000000000000" + ("3C00" if cmd == "ledflash_long" else "0500")
            field.queue_led(tag.mac, pattern)
        return self._reply(200, "Ok, done")

    def _get_db(self, q: dict[str, str]) -> None:
        now = time.time()
        with self.ap.field.lock:
            if q.get("mac"):
                tag = self._tag(q["mac"])
                records = [tag.record(now)] if tag else []
                return self._reply(200, json.dumps({"tags": records}), "application/json")
            tags = list(self.ap.field.tags.values())
            pos = int(q.get("pos") or 0)
            page: list[dict[str, Any]] = []
            size = 0
            while pos < len(tags) and size < _PAGE_BYTES:
                rec = tags[pos].record(now)
                size += len(json.dumps(rec))
                page.append(rec)
                pos += 1
        out: dict[str, Any] = {"tags": page}
        if pos < len(tags):
            out["continu"] = pos
        return self._reply(200, json.dumps(out), "application/json")

    def _sim_tag(self, fields: dict[str, str]) -> None:
        tag = self._tag(fields.get("mac"))
        if tag is None:
            return self._reply(400, "mac not found")
        with self.ap.field.lock:
            if "temperature" in fields:
                tag.temperature = float(fields["temperature"])
            if "battery" in fields:
                tag.battery_mv = int(fields["battery"])
            if "online" in fields:
                tag.online = fields["online"] not in ("0", "false")
        return self._reply(200, "Ok, saved")

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if not key or self.headers.get("Upgrade", "").lower() != "websocket":
            return self._reply(400, "websocket upgrade expected")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        self.end_headers()
        self.wfile.flush()
        q: queue.Queue[str | None] = queue.Queue()
        with self.ap._clients_lock:
            self.ap._clients.append(q)
        try:
            while True:
                text = q.get()
                if text is None:
                    break
                self.wfile.write(encode_frame(OP_TEXT, text.encode(), mask=False))
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with self.ap._clients_lock:
                if q in self.ap._clients:
                    self.ap._clients.remove(q)
            self.close_connection = True


def _newest(lines: list[str], new: int) -> list[str]:
    """The ``new`` lines added last (at most 50 per tick)."""
    return lines[-min(new, 50):] if new > 0 else []


def _parse_multipart(body: bytes, ctype: str) -> tuple[dict[str, str], dict[str, bytes]]:
    boundary = ctype.split("boundary=", 1)[-1].strip().strip('"').encode()
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in body.split(b"--" + boundary):
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = head.decode("utf-8", "replace")
        name = _param(disposition, "name")
        if name is None:
            continue
        data = data[:-2] if data.endswith(b"\r\n") else data
        if _param(disposition, "filename") is not None:
            files[name] = data
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _param(header: str, key: str) -> str | None:
    marker = f' {key}="'
    i = header.find(marker)
    if i < 0:
        marker = f';{key}="'
        i = header.find(marker)
        if i < 0:
            return None
    start = i + len(marker)
    return header[start:header.find('"', start)]
