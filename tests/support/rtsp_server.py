"""A small RTSP 1.0 server (RFC 2326) on loopback that streams JPEG frames as RTP/JPEG (RFC 2435), with fault
controls for camera tests: a real network camera for FFmpeg/OpenCV, not a mock.

One stream at ``rtsp://127.0.0.1:PORT/<path>`` (one track, ``<path>/track0``). Methods: OPTIONS, DESCRIBE
(SDP ``m=video 0 RTP/AVP 26``), SETUP (``RTP/AVP/TCP;interleaved=0-1``, or ``RTP/AVP;unicast;client_port=a-b``
for UDP), PLAY (``RTP-Info``, ``Range``), PAUSE, TEARDOWN, GET_PARAMETER / SET_PARAMETER (keep-alive). Media:
payload type 26, a 90 kHz clock that advances exactly 1/fps per frame (a camera's sampling clock), Q = 255 with
in-band quantisation tables, one RTCP sender report per second per session. Frames are paced at ``fps`` by one
broadcaster thread: every client sees the same live stream, like a camera. A session that hears nothing from its
client (requests naming it, or interleaved RTCP) for its ``timeout`` is expired, as RFC 2326 §12.37 allows.

Fault controls: :meth:`RtspServer.stall` (connections stay open, no media), :meth:`RtspServer.resume`,
:meth:`RtspServer.drop` (close every client connection), :meth:`RtspServer.stop` / :meth:`RtspServer.start` (the
camera goes away and comes back on the same port), :meth:`RtspServer.restart`, :meth:`RtspServer.corrupt_next`
(random bytes instead of the scan data of the next n frames), :meth:`RtspServer.lose_next` (packet loss).
Message framing and session state are in :mod:`tests.support.rtsp_protocol`, RTP/JPEG in
:mod:`tests.support.rtp_jpeg`.

Run by hand: ``python -m tests.support.rtsp_server VIDEO --port 8554`` then ``ffplay rtsp://127.0.0.1:8554/stream``.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

import numpy as np

from tests.support.rtp_jpeg import JpegFrame, encode_frame, rtp_packets, sender_report
from tests.support.rtsp_protocol import (METHODS, Client, Interleaved, ProtocolError, Request, Session,
                                         next_message, parse_transport, port_range, response, udp_pair)


class RtspServer:
    """An RTSP camera on ``127.0.0.1`` serving ``frames`` (BGR images) in a loop at ``fps``.

    Attributes (read by tests): ``frames_sent`` (frames sent to at least one playing session), ``corrupted_sent``,
    ``lost`` (frames whose first packet was withheld), ``connections`` (TCP connections accepted), ``requests``
    (Counter of RTSP methods received), ``transports`` (Counter of ``"tcp"``/``"udp"`` sessions set up),
    ``expired`` (sessions ended by their timeout), ``bad_requests`` (400 replies).
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
        self.expired = 0
        self.bad_requests = 0
        self._corrupt_pending = 0
        self._lose_pending = 0
        self._tick = 0
        self._stalled = threading.Event()
        self._alive = threading.Event()
        self._lock = threading.Lock()
        self._clients: set[Client] = set()
        self._sessions: dict[str, Session] = {}
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
            self._expire(now)
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
                # the k-th garbage frame is always the same bytes: what the decoder makes of it is reproducible
                frame = frame.corrupted(np.random.default_rng([7, self.corrupted_sent]))
                self.corrupted_sent += 1
            self.frames_sent += 1
            self.lost += lose
            for session in playing:
                self._send_frame(session, frame, tick, now, lose)

    def _send_frame(self, session: Session, frame: JpegFrame, tick: int, now: float, lose: bool) -> None:
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
            client = Client(sock, addr)
            with self._lock:
                self._clients.add(client)
                self.connections += 1
            threading.Thread(target=self._client_loop, args=(client,), name="rtsp-client", daemon=True).start()

    def _client_loop(self, client: Client) -> None:
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
                while buf:
                    try:
                        message, buf = next_message(buf)
                    except ProtocolError:
                        self.bad_requests += 1
                        client.send(response(400, "0"))
                        return
                    if message is None:
                        break
                    if isinstance(message, Interleaved):
                        client.last_seen = time.monotonic()  # RTCP receiver reports keep sessions alive
                    elif not client.send(self._handle(client, message)):
                        return
        except OSError:
            pass
        finally:
            self._forget(client)

    def _handle(self, client: Client, req: Request) -> bytes:
        cseq = req.headers.get("cseq")
        if cseq is None:
            self.bad_requests += 1
            return response(400, "0")
        self.requests[req.method] += 1
        if req.version != "RTSP/1.0":
            return response(505, cseq)
        if req.method not in METHODS:
            return response(501, cseq, {"Public": ", ".join(METHODS)})
        path = urlsplit(req.uri).path.strip("/") if req.uri != "*" else ""
        if req.method == "OPTIONS":
            return response(200, cseq, {"Public": ", ".join(METHODS)})
        if req.method == "DESCRIBE":
            if path != self.path:
                return response(404, cseq)
            base = f"rtsp://127.0.0.1:{self.port}/{self.path}/"
            return response(200, cseq, {"Content-Base": base, "Content-Type": "application/sdp"}, self._sdp())
        if req.method == "SETUP":
            return self._setup(client, cseq, path, req.headers)
        session = self._session(req.headers)
        if session is None:
            if req.method in ("GET_PARAMETER", "SET_PARAMETER") and "session" not in req.headers:
                return response(200, cseq)
            return response(454, cseq)
        extra = {"Session": f"{session.id};timeout={self.session_timeout_s}"}
        if req.method == "PLAY":
            track = f"rtsp://127.0.0.1:{self.port}/{self.path}/track0"
            rtptime = session.rtp_time(self._tick, self.fps)
            extra.update({"Range": "npt=0.000-", "RTP-Info": f"url={track};seq={session.seq};rtptime={rtptime}"})
            # the reply goes out before the first RTP packet, and names that packet's sequence number
            client.send(response(200, cseq, extra))
            session.playing = True
            return b""
        elif req.method == "PAUSE":
            session.playing = False
        elif req.method == "TEARDOWN":
            self._end(session)
        return response(200, cseq, extra)

    def _setup(self, client: Client, cseq: str, path: str, headers: dict[str, str]) -> bytes:
        if path not in (self.path, f"{self.path}/track0"):
            return response(404, cseq)
        existing = self._session(headers)
        if "session" in headers and existing is None:
            return response(454, cseq)
        if existing is not None and existing.playing:
            return response(455, cseq)
        # Transport lists alternatives by preference: take the first one this server can serve.
        for profile, params in parse_transport(headers.get("transport", "")):
            session = existing or Session(secrets.token_hex(8), client, start_tick=self._tick)
            try:
                if profile == "RTP/AVP/TCP":
                    lo, hi = port_range(params.get("interleaved", "0-1"))
                    session.channels = (lo, hi)
                    transport = f"RTP/AVP/TCP;unicast;interleaved={lo}-{hi};ssrc={session.ssrc:08X}"
                elif profile in ("RTP/AVP", "RTP/AVP/UDP") and "multicast" not in params and "client_port" in params:
                    lo, hi = port_range(params["client_port"])
                    session.close()
                    session.udp = udp_pair()
                    ports = (session.udp[0].getsockname()[1], session.udp[1].getsockname()[1])
                    session.udp_dest = ((client.addr[0], lo), (client.addr[0], hi))
                    transport = (f"RTP/AVP;unicast;client_port={lo}-{hi};server_port={ports[0]}-{ports[1]};"
                                 f"ssrc={session.ssrc:08X}")
                else:
                    continue
            except ValueError:
                self.bad_requests += 1
                return response(400, cseq)
            with self._lock:
                self._sessions[session.id] = session
            self.transports["udp" if session.udp is not None else "tcp"] += 1
            return response(200, cseq, {"Transport": transport,
                                        "Session": f"{session.id};timeout={self.session_timeout_s}"})
        return response(461, cseq)

    def _session(self, headers: dict[str, str]) -> Session | None:
        """The session a request names (its liveness is refreshed), or None."""
        sid = headers.get("session", "").split(";")[0].strip()
        with self._lock:
            session = self._sessions.get(sid)
        if session is not None:
            session.last_seen = time.monotonic()
        return session

    def _sdp(self) -> bytes:
        width, height = self.size
        return "\r\n".join([
            "v=0", f"o=- {secrets.randbits(31)} 1 IN IP4 127.0.0.1", "s=store-agent test camera",
            "c=IN IP4 0.0.0.0", "t=0 0", "a=control:*", "a=range:npt=0-",
            "m=video 0 RTP/AVP 26", "a=rtpmap:26 JPEG/90000", f"a=framerate:{self.fps:g}",
            f"a=x-dimensions:{width},{height}", "a=control:track0", ""]).encode()

    def _end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
        session.playing = False
        session.close()

    def _expire(self, now: float) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            heard = max(session.last_seen, session.client.last_seen if session.udp is None else 0.0)
            if now - heard > self.session_timeout_s:
                self.expired += 1
                self._end(session)

    def _forget(self, client: Client) -> None:
        with self._lock:
            self._clients.discard(client)
            gone = [s for s in self._sessions.values() if s.client is client]
            for session in gone:
                self._sessions.pop(session.id, None)
        for session in gone:
            session.close()
        client.close()


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
