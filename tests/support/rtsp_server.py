"""A small RTSP 1.0 server (RFC 2326) on loopback that streams JPEG frames as RTP/JPEG (RFC 2435), with fault
controls for camera tests: a real network camera for FFmpeg/OpenCV, not a mock.

One stream at ``rtsp://127.0.0.1:PORT/<path>`` (one track, ``<path>/track0``). Methods: OPTIONS, DESCRIBE
(SDP ``m=video 0 RTP/AVP 26``), SETUP (``RTP/AVP/TCP;interleaved=0-1``, or ``RTP/AVP;unicast;client_port=a-b``
for UDP), PLAY (``RTP-Info``, ``Range``), PAUSE, TEARDOWN, GET_PARAMETER / SET_PARAMETER (keep-alive). Media:
payload type 26, 90 kHz wall-clock timestamps, Q = 255 with in-band quantisation tables, one RTCP sender report
per second per session. Frames are paced at ``fps`` by one broadcaster thread: every client sees the same live
stream, like a camera.

Fault controls: :meth:`RtspServer.stall` (connections stay open, no media), :meth:`RtspServer.resume`,
:meth:`RtspServer.drop` (close every client connection), :meth:`RtspServer.stop` / :meth:`RtspServer.start` (the
camera goes away and comes back on the same port), :meth:`RtspServer.restart`, :meth:`RtspServer.corrupt_next`
(random bytes instead of the scan data of the next n frames).

Run by hand: ``python -m tests.support.rtsp_server VIDEO --port 8554`` then ``ffplay rtsp://127.0.0.1:8554/stream``.
"""

from __future__ import annotations

import email.utils
import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

from tests.support.rtp_jpeg import CLOCK_RATE, JpegFrame, encode_frame, rtp_packets, sender_report

_METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 454: "Session Not Found",
            455: "Method Not Valid in This State", 459: "Aggregate Operation Not Allowed",
            461: "Unsupported Transport", 501: "Not Implemented", 505: "RTSP Version Not Supported"}


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    addr: tuple[str, int]
    send_lock: threading.Lock = field(default_factory=threading.Lock)

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
class _Session:
    id: str
    client: _Client
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    seq: int = field(default_factory=lambda: secrets.randbits(16))
    ts_base: int = field(default_factory=lambda: secrets.randbits(32))
    channels: tuple[int, int] | None = None  # TCP interleaved (rtp, rtcp)
    udp: tuple[socket.socket, socket.socket] | None = None
    udp_dest: tuple[tuple[str, int], tuple[str, int]] | None = None
    playing: bool = False
    start_tick: int = 0
    packets: int = 0
    octets: int = 0
    last_sr: float = 0.0

    def rtp_time(self, tick: int, fps: float) -> int:
        """The camera's sampling clock: exactly 90000 / fps per frame tick since PLAY."""
        return (self.ts_base + round((tick - self.start_tick) * CLOCK_RATE / fps)) & 0xFFFFFFFF

    def send(self, data: list[bytes], rtcp: bool = False) -> bool:
        if self.udp is not None and self.udp_dest is not None:
            sock, dest = (self.udp[1], self.udp_dest[1]) if rtcp else (self.udp[0], self.udp_dest[0])
            try:
                for packet in data:
                    sock.sendto(packet, dest)
            except OSError:
                return False
            return True
        assert self.channels is not None
        channel = self.channels[1 if rtcp else 0]
        return self.client.send(b"".join(b"$" + bytes([channel]) + len(p).to_bytes(2, "big") + p for p in data))

    def close(self) -> None:
        if self.udp is not None:
            for sock in self.udp:
                sock.close()
            self.udp = None


class RtspServer:
    """An RTSP camera on ``127.0.0.1`` serving ``frames`` (BGR images) in a loop at ``fps``.

    Attributes (read by tests): ``frames_sent`` (frames sent to at least one playing session), ``corrupted_sent``,
    ``lost`` (frames whose first packet was withheld), ``connections`` (TCP connections accepted), ``requests``
    (Counter of RTSP methods received), ``transports`` (Counter of ``"tcp"``/``"udp"`` sessions set up).
    """

    def __init__(self, frames: Sequence[np.ndarray], *, fps: float = 25.0, port: int = 0, path: str = "stream",
                 quality: int = 85, session_timeout_s: int = 60, max_payload: int = 1400) -> None:
        if not frames:
            raise ValueError("at least one frame is needed")
        self.jpegs: list[JpegFrame] = [encode_frame(f, quality) for f in frames]
        self.size = (frames[0].shape[1], frames[0].shape[0])
        self.fps = fps
        self.port = port
        self.path = path.strip("/")
        self.session_timeout_s = session_timeout_s
        self.max_payload = max_payload
        self.frames_sent = 0
        self.corrupted_sent = 0
        self.lost = 0
        self.connections = 0
        self.requests: Counter[str] = Counter()
        self.transports: Counter[str] = Counter()
        self._rng = np.random.default_rng(7)
        self._corrupt_pending = 0
        self._lose_pending = 0
        self._tick = 0
        self._stalled = threading.Event()
        self._alive = threading.Event()
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._sessions: dict[str, _Session] = {}
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_video(cls, path: str | os.PathLike, *, max_frames: int | None = None, **kwargs: object) -> RtspServer:
        """Serve the frames of a video file (any format OpenCV reads), at the file's frame rate by default."""
        import cv2

        cap = cv2.VideoCapture(os.fspath(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        frames: list[np.ndarray] = []
        while max_frames is None or len(frames) < max_frames:
            ok, image = cap.read()
            if not ok:
                break
            frames.append(image)
        cap.release()
        kwargs.setdefault("fps", fps)
        return cls(frames, **kwargs)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.path}"

    # ------------------------------------------------------------------ lifecycle and faults
    def start(self) -> RtspServer:
        """Listen (on the same port as before after a stop) and start streaming."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._alive.set()
        self._threads = [threading.Thread(target=self._accept_loop, name="rtsp-accept", daemon=True),
                         threading.Thread(target=self._broadcast_loop, name="rtsp-media", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; threads end. ``start()`` serves again."""
        self._alive.clear()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop()

    def restart(self, down_s: float = 0.0) -> None:
        """``stop()``, wait ``down_s``, ``start()`` on the same port."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def drop(self) -> None:
        """Close every client connection (a network cut or a camera reboot); the server keeps listening."""
        with self._lock:
            clients, self._clients = self._clients, set()
            sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            session.close()
        for client in clients:
            client.close()

    def stall(self) -> None:
        """Stop sending media; connections stay open and RTSP requests are still answered."""
        self._stalled.set()

    def resume(self) -> None:
        """End a stall."""
        self._stalled.clear()

    def corrupt_next(self, n: int = 1) -> None:
        """Send random bytes instead of the entropy-coded data of the next ``n`` frames (headers stay valid)."""
        with self._lock:
            self._corrupt_pending += n

    def lose_next(self, n: int = 1) -> None:
        """Withhold the first RTP packet of each of the next ``n`` frames (packet loss; sequence numbers skip):
        the client must discard the rest of those frames."""
        with self._lock:
            self._lose_pending += n

    @property
    def clients(self) -> int:
        """Open client connections."""
        with self._lock:
            return len(self._clients)

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ media
    def _broadcast_loop(self) -> None:
        """One frame per tick of 1/fps. Late ticks are sent at once with their own timestamps (a camera's clock
        does not slip when the network is slow); more than a second behind, the schedule restarts."""
        interval = 1.0 / self.fps
        start = time.monotonic() - self._tick * interval
        while self._alive.is_set():
            now = time.monotonic()
            delay = start + self._tick * interval - now
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            if delay < -1.0:
                start = now - self._tick * interval
            tick = self._tick
            self._tick += 1
            if self._stalled.is_set():
                continue
            frame = self.jpegs[tick % len(self.jpegs)]
            with self._lock:
                playing = [s for s in self._sessions.values() if s.playing]
                corrupt = bool(playing) and self._corrupt_pending > 0
                self._corrupt_pending -= corrupt
                lose = bool(playing) and self._lose_pending > 0
                self._lose_pending -= lose
            if not playing:
                continue
            if corrupt:
                frame = frame.corrupted(self._rng)
                self.corrupted_sent += 1
            self.frames_sent += 1
            self.lost += lose
            for session in playing:
                self._send_frame(session, frame, tick, now, lose)

    def _send_frame(self, session: _Session, frame: JpegFrame, tick: int, now: float, lose: bool) -> None:
        rtp_ts = session.rtp_time(tick, self.fps)
        packets = rtp_packets(frame, seq=session.seq, timestamp=rtp_ts, ssrc=session.ssrc,
                              max_payload=self.max_payload)
        session.seq = (session.seq + len(packets)) & 0xFFFF
        sent = packets[1:] if lose else packets
        ok = session.send(sent)
        session.packets += len(sent)
        session.octets += sum(len(p) - 12 for p in sent)
        if ok and now - session.last_sr >= 1.0:
            session.last_sr = now
            ok = session.send([sender_report(ssrc=session.ssrc, rtp_timestamp=rtp_ts, packets=session.packets,
                                             octets=session.octets, cname="camera@127.0.0.1")], rtcp=True)
        if not ok and session.udp is None:
            self._forget(session.client)

    # ------------------------------------------------------------------ RTSP
    def _accept_loop(self) -> None:
        while self._alive.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                sock, addr = listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(2.0)  # a client that stops reading cannot block the broadcaster for long
            client = _Client(sock, addr)
            with self._lock:
                self._clients.add(client)
                self.connections += 1
            threading.Thread(target=self._client_loop, args=(client,), name="rtsp-client", daemon=True).start()

    def _client_loop(self, client: _Client) -> None:
        buf = b""
        try:
            while self._alive.is_set():
                try:
                    data = client.sock.recv(65536)
                except (TimeoutError, socket.timeout):
                    continue
                if not data:
                    break
                buf += data
                buf = self._consume(client, buf)
                if buf is None:
                    break
        except OSError:
            pass
        finally:
            self._forget(client)

    def _consume(self, client: _Client, buf: bytes) -> bytes | None:
        """Handle every complete message in ``buf``; return the rest (None: close the connection)."""
        while buf:
            if buf[0] == 0x24:  # '$': interleaved RTCP from the client (receiver reports): read and ignore
                if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                    return buf
                buf = buf[4 + int.from_bytes(buf[2:4], "big"):]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return buf if len(buf) < 65536 else None
            head = buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(buf) < end + 4 + length:
                return buf
            buf = buf[end + 4 + length:]
            reply = self._handle(client, head[0], headers)
            if not client.send(reply):
                return None
        return buf

    def _handle(self, client: _Client, request_line: str, headers: dict[str, str]) -> bytes:
        parts = request_line.split(" ")
        if len(parts) != 3 or "cseq" not in headers:
            return _response(400, headers.get("cseq", "0"))
        method, uri, version = parts
        cseq = headers["cseq"]
        self.requests[method] += 1
        if version != "RTSP/1.0":
            return _response(505, cseq)
        if method not in _METHODS:
            return _response(501, cseq, {"Public": ", ".join(_METHODS)})
        path = urlsplit(uri).path.strip("/") if uri != "*" else ""
        if method == "OPTIONS":
            return _response(200, cseq, {"Public": ", ".join(_METHODS)})
        if method == "DESCRIBE":
            if path != self.path:
                return _response(404, cseq)
            sdp = self._sdp().encode()
            base = f"rtsp://127.0.0.1:{self.port}/{self.path}/"
            return _response(200, cseq, {"Content-Base": base, "Content-Type": "application/sdp"}, sdp)
        if method == "SETUP":
            return self._setup(client, cseq, path, headers)
        session = self._session(headers)
        if session is None:
            if method in ("GET_PARAMETER", "SET_PARAMETER") and "session" not in headers:
                return _response(200, cseq)
            return _response(454, cseq)
        extra = {"Session": f"{session.id};timeout={self.session_timeout_s}"}
        if method == "PLAY":
            if not session.playing:
                session.start_tick = self._tick
                session.playing = True
            track = f"rtsp://127.0.0.1:{self.port}/{self.path}/track0"
            rtptime = session.rtp_time(self._tick, self.fps)
            extra.update({"Range": "npt=0.000-", "RTP-Info": f"url={track};seq={session.seq};rtptime={rtptime}"})
        elif method == "PAUSE":
            session.playing = False
        elif method == "TEARDOWN":
            with self._lock:
                self._sessions.pop(session.id, None)
            session.playing = False
            session.close()
        return _response(200, cseq, extra)

    def _setup(self, client: _Client, cseq: str, path: str, headers: dict[str, str]) -> bytes:
        if path not in (self.path, f"{self.path}/track0"):
            return _response(404, cseq)
        existing = self._session(headers)
        if "session" in headers and existing is None:
            return _response(454, cseq)
        if existing is not None and existing.playing:
            return _response(455, cseq)
        # Transport lists alternatives by preference (comma separated): take the first one we can serve.
        for spec in headers.get("transport", "").split(","):
            params = dict(_param(p) for p in spec.strip().split(";")[1:])
            profile = spec.strip().split(";")[0].upper()
            session = existing or _Session(secrets.token_hex(8), client)
            if profile == "RTP/AVP/TCP":
                lo, hi = (int(x) for x in params.get("interleaved", "0-1").split("-"))
                session.channels = (lo, hi)
                transport = f"RTP/AVP/TCP;unicast;interleaved={lo}-{hi};ssrc={session.ssrc:08X}"
            elif profile in ("RTP/AVP", "RTP/AVP/UDP") and "multicast" not in params and "client_port" in params:
                lo, hi = (int(x) for x in params["client_port"].split("-"))
                session.udp = _udp_pair()
                ports = (session.udp[0].getsockname()[1], session.udp[1].getsockname()[1])
                session.udp_dest = ((client.addr[0], lo), (client.addr[0], hi))
                transport = (f"RTP/AVP;unicast;client_port={lo}-{hi};server_port={ports[0]}-{ports[1]};"
                             f"ssrc={session.ssrc:08X}")
            else:
                continue
            with self._lock:
                self._sessions[session.id] = session
            self.transports["udp" if session.udp is not None else "tcp"] += 1
            return _response(200, cseq, {"Transport": transport,
                                         "Session": f"{session.id};timeout={self.session_timeout_s}"})
        return _response(461, cseq)

    def _session(self, headers: dict[str, str]) -> _Session | None:
        sid = headers.get("session", "").split(";")[0].strip()
        with self._lock:
            return self._sessions.get(sid)

    def _sdp(self) -> str:
        width, height = self.size
        return "\r\n".join([
            "v=0", f"o=- {secrets.randbits(31)} 1 IN IP4 127.0.0.1", "s=store-agent test camera",
            "c=IN IP4 127.0.0.1", "t=0 0", "a=control:*", "a=range:npt=0-",
            "m=video 0 RTP/AVP 26", "a=rtpmap:26 JPEG/90000", f"a=framerate:{self.fps:g}",
            f"a=x-dimensions:{width},{height}", "a=control:track0", ""])

    def _forget(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)
            gone = [s for s in self._sessions.values() if s.client is client]
            for session in gone:
                self._sessions.pop(session.id, None)
        for session in gone:
            session.close()
        client.close()


def _param(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name.strip().lower(), value.strip()


def _udp_pair() -> tuple[socket.socket, socket.socket]:
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


def _response(code: int, cseq: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"RTSP/1.0 {code} {_REASONS[code]}", f"CSeq: {cseq}", "Server: store-agent-test-rtsp/1.0",
             f"Date: {email.utils.formatdate(usegmt=True)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def main() -> None:  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video")
    parser.add_argument("--port", type=int, default=8554)
    args = parser.parse_args()
    with RtspServer.from_video(args.video, port=args.port) as server:
        print(server.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
