"""RTSP 1.0 message framing (RFC 2326) and per-connection / per-session state for the test RTSP server.

Pure parts first (:func:`next_message`, :func:`response`, :func:`parse_transport`), then the socket-holding
:class:`Client` (one TCP connection: RTSP messages and, for TCP transport, interleaved ``$``-framed RTP/RTCP) and
:class:`Session` (one SETUP: transport, SSRC, sequence numbers, RTP clock).
"""

from __future__ import annotations

import email.utils
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field

from tests.support.rtp_jpeg import CLOCK_RATE

METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 454: "Session Not Found",
           455: "Method Not Valid in This State", 461: "Unsupported Transport", 501: "Not Implemented",
           505: "RTSP Version Not Supported"}
MAX_HEADER_BYTES = 65536


class ProtocolError(ValueError):
    """A message that cannot be framed: the connection is answered 400 and closed."""


@dataclass(frozen=True, slots=True)
class Request:
    """One RTSP request; header names lower-cased."""

    method: str
    uri: str
    version: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Interleaved:
    """One ``$``-framed binary packet from the client (RTCP receiver reports over TCP)."""

    channel: int
    data: bytes


def next_message(buf: bytes) -> tuple[Request | Interleaved | None, bytes]:
    """Split the first complete message off ``buf``: ``(message, rest)``, or ``(None, buf)`` when more bytes are
    needed.

    Raises:
        ProtocolError: a request line that is not ``METHOD URI VERSION``, a bad Content-Length, a header block
            larger than 64 KiB.

    Example:
        >>> msg, rest = next_message(b"OPTIONS * RTSP/1.0\\r\\nCSeq: 1\\r\\n\\r\\n$")
        >>> msg.method, msg.headers, rest
        ('OPTIONS', {'cseq': '1'}, b'$')
    """
    if buf[:1] == b"$":
        if len(buf) < 4:
            return None, buf
        size = int.from_bytes(buf[2:4], "big")
        if len(buf) < 4 + size:
            return None, buf
        return Interleaved(buf[1], buf[4:4 + size]), buf[4 + size:]
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > MAX_HEADER_BYTES:
            raise ProtocolError("header block too large")
        return None, buf
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ProtocolError(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    try:
        length = int(headers.get("content-length", "0") or 0)
    except ValueError:
        raise ProtocolError("bad Content-Length") from None
    if length < 0:
        raise ProtocolError("bad Content-Length")
    if len(buf) < end + 4 + length:
        return None, buf
    body = buf[end + 4:end + 4 + length]
    return Request(parts[0], parts[1], parts[2], headers, body), buf[end + 4 + length:]


def response(code: int, cseq: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """An RTSP/1.0 response with CSeq, Server, Date, the given headers and Content-Length when there is a body."""
    lines = [f"RTSP/1.0 {code} {REASONS[code]}", f"CSeq: {cseq}", "Server: store-agent-test-rtsp/1.0",
             f"Date: {email.utils.formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_transport(header: str) -> list[tuple[str, dict[str, str]]]:
    """The alternatives of a Transport header, in the client's order of preference.

    Example:
        >>> parse_transport("RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;client_port=5000-5001")
        [('RTP/AVP/TCP', {'unicast': '', 'interleaved': '0-1'}), ('RTP/AVP', {'unicast': '', 'client_port': '5000-5001'})]
    """
    out = []
    for spec in header.split(","):
        fields = [f.strip() for f in spec.split(";") if f.strip()]
        if fields:
            params = {}
            for item in fields[1:]:
                name, _, value = item.partition("=")
                params[name.strip().lower()] = value.strip()
            out.append((fields[0].upper(), params))
    return out


def port_range(text: str) -> tuple[int, int]:
    """``"5000-5001"`` → (5000, 5001); a single port ``"5000"`` → (5000, 5001)."""
    lo, _, hi = text.partition("-")
    return int(lo), int(hi) if hi else int(lo) + 1


@dataclass(eq=False)
class Client:
    """One RTSP TCP connection. ``send`` is shared by the RTSP replies and interleaved media (one lock)."""

    sock: socket.socket
    addr: tuple[str, int]
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    last_seen: float = field(default_factory=time.monotonic)

    def send(self, data: bytes) -> bool:
        try:
            with self.send_lock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


@dataclass(eq=False)
class Session:
    """One SETUP: media go interleaved on ``client`` (``channels``) or over UDP (``udp`` → ``udp_dest``)."""

    id: str
    client: Client
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    seq: int = field(default_factory=lambda: secrets.randbits(16))
    ts_base: int = field(default_factory=lambda: secrets.randbits(32))
    channels: tuple[int, int] | None = None
    udp: tuple[socket.socket, socket.socket] | None = None
    udp_dest: tuple[tuple[str, int], tuple[str, int]] | None = None
    playing: bool = False
    start_tick: int = 0
    packets: int = 0
    octets: int = 0
    last_sr: float = 0.0
    last_seen: float = field(default_factory=time.monotonic)

    def rtp_time(self, tick: int, fps: float) -> int:
        """The camera's sampling clock: exactly 90000 / fps per frame tick since SETUP, from a random base (it
        keeps running through PAUSE, like a live camera's)."""
        return (self.ts_base + round((tick - self.start_tick) * CLOCK_RATE / fps)) & 0xFFFFFFFF

    def send(self, packets: list[bytes], rtcp: bool = False) -> bool:
        if self.udp is not None and self.udp_dest is not None:
            sock, dest = (self.udp[1], self.udp_dest[1]) if rtcp else (self.udp[0], self.udp_dest[0])
            try:
                for packet in packets:
                    sock.sendto(packet, dest)
            except OSError:
                return False
            return True
        assert self.channels is not None
        channel = self.channels[1 if rtcp else 0]
        return self.client.send(b"".join(b"$" + bytes([channel]) + len(p).to_bytes(2, "big") + p for p in packets))

    def close(self) -> None:
        if self.udp is not None:
            for sock in self.udp:
                sock.close()
            self.udp = None


def udp_pair() -> tuple[socket.socket, socket.socket]:
    """An even RTP port and the odd RTCP port above it (RFC 3550 §11), or any two ports if that fails."""
    for _ in range(20):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
                return rtp, rtcp
            except OSError:
                rtcp.close()
        rtp.close()
    rtp, rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtcp.bind(("127.0.0.1", 0))
    return rtp, rtcp
