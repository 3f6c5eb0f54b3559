"""Small HTTP helpers on ``urllib`` shared by the gateway backends: form/multipart bodies and error mapping."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from devices.esl.backends.base import GatewayError


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type; ``files`` maps field → (filename, data, mime)."""
    boundary = "----esl" + os.urandom(12).hex()
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, (filename, data, mime) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: {mime}\r\n\r\n").encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def request(method: str, url: str, *, body: bytes | None = None, content_type: str | None = None,
            timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request; returns (status, body) for 2xx and maps everything else to :class:`GatewayError`."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace").strip()[:300]
        if exc.code == 404 or "not found" in text.lower():
            raise GatewayError("unknown_label", f"{method} {url}: {exc.code} {text}") from exc
        reason = "server" if exc.code >= 500 else "busy" if exc.code in (409, 429, 503) else "rejected"
        raise GatewayError(reason, f"{method} {url}: {exc.code} {text}") from exc
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
        raise GatewayError("unreachable", f"{method} {url}: {getattr(exc, 'reason', exc)}") from exc
    except OSError as exc:
        raise GatewayError("unreachable", f"{method} {url}: {exc}") from exc


def form(fields: dict[str, Any]) -> tuple[bytes, str]:
    """An ``application/x-www-form-urlencoded`` body."""
    return urllib.parse.urlencode({k: str(v) for k, v in fields.items()}).encode(), \
        "application/x-www-form-urlencoded"


def json_body(obj: Any) -> tuple[bytes, str]:
    return json.dumps(obj).encode(), "application/json"


def read_json(url: str, data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise GatewayError("protocol", f"{url}: {what} is not JSON") from exc
