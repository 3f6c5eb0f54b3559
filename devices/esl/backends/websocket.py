"""A minimal RFC 6455 websocket (text frames, ping/pong, close) on the standard library.

Enough for the OpenEPaperLink ``/ws`` feed: the client (:class:`WebSocketClient`) and the frame helpers the
simulator's server side uses. No extensions, no fragmentation on send; fragmented text frames are reassembled.
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import socket
import struct
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_FRAME = 4 * 2**20


class WebSocketClosed(Exception):
    """The peer closed the connection (or it broke)."""


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final frame; clients must mask, servers must not."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 2**16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _xor(payload, key)


def read_frame(sock_file) -> tuple[bool, int, bytes]:  # noqa: ANN001 - a binary file-like socket
    """Read one frame: (fin, opcode, unmasked payload). Raises :class:`WebSocketClosed` at EOF."""
    head = _read_exact(sock_file, 2)
    fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
    masked, n = bool(head[1] & 0x80), head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", _read_exact(sock_file, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _read_exact(sock_file, 8))[0]
    if n > MAX_FRAME:
        raise WebSocketClosed(f"frame of {n} bytes exceeds the {MAX_FRAME} byte limit")
    key = _read_exact(sock_file, 4) if masked else b""
    payload = _read_exact(sock_file, n)
    return fin, opcode, _xor(payload, key) if masked else payload


def _read_exact(f, n: int) -> bytes:  # noqa: ANN001
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise WebSocketClosed("connection closed")
        data += chunk
    return data


def _xor(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


class WebSocketClient:
    """``ws://host[:port]/path`` client. ``recv_text(timeout_s)`` returns one text message or None on timeout."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"unsupported websocket URL {url!r} (ws://host[:port]/path)")
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        self.file = _SocketReader(self.sock)
        status = self.file.readline().decode("latin-1")
        headers: dict[str, str] = {}
        while True:
            line = self.file.readline().decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.io_timeout_s = timeout_s
        if " 101 " not in status or headers.get("sec-websocket-accept") != accept_key(key):
            self.close()
            raise WebSocketClosed(f"websocket handshake refused: {status.strip()!r}")

    def recv_text(self, timeout_s: float | None = None) -> str | None:
        """Next text message; None when ``timeout_s`` passes first. Answers pings on the way."""
        parts: list[bytes] = []
        while True:
            if not parts and not self.file.buffered():
                ready, _, _ = select.select([self.sock], [], [], timeout_s)
                if not ready:
                    return None
            self.sock.settimeout(self.io_timeout_s)  # a started frame must arrive whole
            try:
                fin, opcode, payload = read_frame(self.file)
            except OSError as exc:
                raise WebSocketClosed(str(exc)) from exc
            if opcode == OP_PING:
                self.sock.sendall(encode_frame(OP_PONG, payload, mask=True))
            elif opcode == OP_CLOSE:
                raise WebSocketClosed("closed by the server")
            elif opcode in (OP_TEXT, OP_CONT, OP_BINARY):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8", "replace")

    def send_text(self, text: str) -> None:
        self.sock.sendall(encode_frame(OP_TEXT, text.encode(), mask=True))

    def close(self) -> None:
        try:
            self.sock.sendall(encode_frame(OP_CLOSE, b"", mask=True))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class _SocketReader:
    """Buffered reads on a socket that survive timeouts (``socket.makefile`` does not)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def buffered(self) -> int:
        return len(self.buf)

    def read(self, n: int) -> bytes:
        if not self.buf:
            chunk = self.sock.recv(max(n, 65536))
            if not chunk:
                return b""
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def readline(self, limit: int = 8192) -> bytes:
        while b"\n" not in self.buf and len(self.buf) < limit:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        end = self.buf.find(b"\n")
        end = len(self.buf) if end < 0 else end + 1
        out = bytes(self.buf[:end])
        del self.buf[:end]
        return out
