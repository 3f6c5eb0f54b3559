"""The test RTSP camera itself, checked byte by byte against the RFCs with a raw socket (no FFmpeg): RTP/JPEG
fragmentation (RFC 2435), RTCP sender reports (RFC 3550), the RTSP 1.0 exchange and its errors (RFC 2326),
session expiry. The camera tests in test_rtsp_source.py rely on this server being a faithful camera."""

from __future__ import annotations

import socket
import struct
import time

import cv2
import numpy as np
import pytest

from tests.support.rtp_jpeg import JpegError, encode_frame, parse_jpeg, rtp_packets, sender_report
from tests.support.rtsp_protocol import ProtocolError, Request, next_message
from tests.support.rtsp_server import RtspServer

pytestmark = pytest.mark.timeout(60)


def _textured(width: int = 320, height: int = 240) -> np.ndarray:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _jpeg(image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85, *params])
    assert ok
    return buf.tobytes()


def _header_through_sos(data: bytes) -> bytes:
    """The JPEG's bytes up to the end of the SOS header (what an RFC 2435 receiver rebuilds from the tables)."""
    pos = 2
    while True:
        marker, length = data[pos + 1], struct.unpack_from("!H", data, pos + 2)[0]
        pos += 2 + length
        if marker == 0xDA:
            return data[:pos]


def test_rtp_jpeg_fragments_carry_the_tables_and_scan_of_the_jpeg() -> None:
    image = _textured()
    data = _jpeg(image)
    frame = parse_jpeg(data)
    assert (frame.type, frame.width8, frame.height8, frame.restart_interval) == (1, 40, 30, 0)  # 4:2:0, 320x240
    packets = rtp_packets(frame, seq=65534, timestamp=123456, ssrc=0xCAFE, max_payload=1000)
    assert len(packets) >= 3 and all(len(p) <= 12 + 1000 for p in packets)
    scan = b""
    for i, packet in enumerate(packets):
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
        assert (b0, b1 & 0x7F, ts, ssrc) == (0x80, 26, 123456, 0xCAFE)  # V=2, no padding/extension/CSRC, PT 26
        assert seq == (65534 + i) & 0xFFFF  # wraps
        assert bool(b1 & 0x80) == (i == len(packets) - 1)  # marker: last packet of the frame
        tspec, off_hi, off_lo, kind, q, w8, h8 = struct.unpack_from("!BBHBBBB", packet, 12)
        assert (tspec, kind, q, w8, h8) == (0, 1, 255, 40, 30)
        assert (off_hi << 16 | off_lo) == len(scan)  # fragment offset = bytes of scan data before this packet
        body = packet[20:]
        if i == 0:
            mbz, precision, length = struct.unpack_from("!BBH", body)
            assert (mbz, precision, length) == (0, 0, 128)
            assert body[4:132] == frame.qtables
            body = body[132:]
        scan += body
    assert scan == frame.scan and not scan.endswith(b"\xff\xd9")
    # a receiver that rebuilds the header around the reassembled scan gets the very same picture
    rebuilt = cv2.imdecode(np.frombuffer(_header_through_sos(data) + scan + b"\xff\xd9", np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(rebuilt, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert frame.qtables[:64] in data and frame.qtables[64:] in data  # the DQT tables, in their zig-zag order


def test_jpegs_that_rtp_jpeg_cannot_carry_are_refused() -> None:
    image = _textured()
    with pytest.raises(JpegError, match="sampling"):
        parse_jpeg(_jpeg(image, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444))
    with pytest.raises(JpegError, match="baseline"):
        parse_jpeg(_jpeg(image, cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    with pytest.raises(JpegError, match="3-component"):
        parse_jpeg(_jpeg(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)))
    with pytest.raises(JpegError):
        parse_jpeg(b"\x89PNG....")
    # restart markers (DRI) are signalled as type 65 with a restart header
    frame = parse_jpeg(_jpeg(image, cv2.IMWRITE_JPEG_RST_INTERVAL, 4))
    assert frame.type == 65 and frame.restart_interval == 4
    first = rtp_packets(frame, seq=0, timestamp=0, ssrc=1)[0]
    assert struct.unpack_from("!HH", first, 20) == (4, 0xFFFF)


def test_rtcp_sender_report_and_cname_lengths() -> None:
    packet = sender_report(ssrc=7, rtp_timestamp=90_000, packets=10, octets=5000, cname="cam@h", now=0.0)
    assert len(packet) % 4 == 0
    b0, pt, length, ssrc, ntp_sec, _, rtp_ts, count, octets = struct.unpack_from("!BBHIIIIII", packet)
    assert (b0, pt, length, ssrc, rtp_ts, count, octets) == (0x80, 200, 6, 7, 90_000, 10, 5000)
    assert ntp_sec == 2_208_988_800  # the UNIX epoch on the NTP timescale
    sdes = packet[28:]
    b0, pt, length, ssrc = struct.unpack_from("!BBHI", sdes)
    assert (b0, pt, ssrc) == (0x81, 202, 7) and (length + 1) * 4 == len(sdes)
    assert sdes[8:10] == b"\x01\x05" and sdes[10:15] == b"cam@h"


def test_next_message_frames_requests_and_interleaved_data() -> None:
    buf = b"$\x01\x00\x03abcSET_PARAMETER rtsp://h/s RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 5\r\n\r\nhel"
    first, rest = next_message(buf)
    assert first is not None and not isinstance(first, Request) and (first.channel, first.data) == (1, b"abc")
    assert next_message(rest) == (None, rest)  # the body is not complete yet
    request, rest = next_message(rest + b"lo")
    assert isinstance(request, Request) and request.body == b"hello" and request.headers["cseq"] == "4"
    assert rest == b""
    with pytest.raises(ProtocolError):
        next_message(b"GARBAGE\r\n\r\n")
    with pytest.raises(ProtocolError):
        next_message(b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n")


def _rtp_ts(packet: bytes) -> int:
    return struct.unpack_from("!I", packet, 4)[0]


class _RawClient:
    """Just enough of an RTSP client to drive the server by hand."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3.0)
        self.buf = b""
        self.cseq = 0
        self.media: list[tuple[int, bytes]] = []

    def request(self, method: str, uri: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}"] + [f"{k.replace('_', '-')}: {v}"
                                                                      for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        code, headers, body = self.reply()
        assert headers["cseq"] == str(self.cseq)  # every reply echoes its request's CSeq
        return code, headers, body

    def reply(self) -> tuple[int, dict[str, str], bytes]:
        while True:
            head = self.buf.split(b"\r\n\r\n", 1)[0] if not self.buf.startswith(b"$") else b""
            if head and b"\r\n\r\n" in self.buf:
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", 0))
                total = len(head) + 4 + length
                if len(self.buf) >= total:
                    body, self.buf = self.buf[len(head) + 4:total], self.buf[total:]
                    return int(lines[0].split(" ")[1]), headers, body
            if self.buf.startswith(b"$") and len(self.buf) >= 4:
                size = int.from_bytes(self.buf[2:4], "big")
                if len(self.buf) >= 4 + size:
                    self.media.append((self.buf[1], self.buf[4:4 + size]))
                    self.buf = self.buf[4 + size:]
                    continue
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buf += data

    def read_media(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            if not data:
                break
            self.buf += data
            while self.buf.startswith(b"$") and len(self.buf) >= 4:
                size = int.from_bytes(self.buf[2:4], "big")
                if len(self.buf) < 4 + size:
                    break
                self.media.append((self.buf[1], self.buf[4:4 + size]))
                self.buf = self.buf[4 + size:]
        self.sock.settimeout(3.0)


def test_rtsp_exchange_by_rfc_2326_over_a_raw_socket() -> None:
    with RtspServer([_textured()], fps=25) as server:
        client = _RawClient(server.port)
        code, headers, _ = client.request("OPTIONS", "*")
        assert code == 200 and "GET_PARAMETER" in headers["public"] and "DESCRIBE" in headers["public"]
        assert client.request("DESCRIBE", f"rtsp://127.0.0.1:{server.port}/nothing")[0] == 404
        code, headers, sdp = client.request("DESCRIBE", server.url, Accept="application/sdp")
        assert code == 200 and headers["content-type"] == "application/sdp"
        assert headers["content-base"] == server.url + "/" and int(headers["content-length"]) == len(sdp)
        lines = sdp.decode().split("\r\n")
        assert lines[0] == "v=0" and "m=video 0 RTP/AVP 26" in lines and "a=control:track0" in lines
        track = server.url + "/track0"
        assert client.request("SETUP", track, Transport="RTP/AVP;multicast")[0] == 461
        code, headers, _ = client.request("SETUP", track, Transport="RTP/AVP/TCP;unicast;interleaved=2-3")
        assert code == 200 and "interleaved=2-3" in headers["transport"]
        session = headers["session"].split(";")[0]
        assert len(session) >= 8 and headers["session"].endswith(";timeout=60")
        assert client.request("PLAY", server.url, Session="not-a-session")[0] == 454
        code, headers, _ = client.request("PLAY", server.url, Session=session, Range="npt=0.000-")
        assert code == 200 and headers["range"].startswith("npt=0")
        info = dict(p.split("=", 1) for p in headers["rtp-info"].split(";"))
        assert info["url"] == track
        client.read_media(1.3)
        assert client.request("GET_PARAMETER", server.url, Session=session)[0] == 200
        rtp = [data for channel, data in client.media if channel == 2]
        assert client.request("PAUSE", server.url, Session=session)[0] == 200
        client.read_media(0.3)
        paused = len(client.media)
        client.read_media(0.3)
        assert len(client.media) == paused  # nothing while paused
        assert client.request("PLAY", server.url, Session=session)[0] == 200
        client.read_media(0.3)
        resumed = [data for channel, data in client.media[paused:] if channel == 2]
        before_pause = [data for channel, data in client.media[:paused] if channel == 2]
        gap = (_rtp_ts(resumed[0]) - _rtp_ts(before_pause[-1])) & 0xFFFFFFFF
        assert 0.5 * 90_000 <= gap < 5 * 90_000  # the clock ran on through the pause (0.6 s)
        assert client.request("TEARDOWN", server.url, Session=session)[0] == 200
        rtcp = [data for channel, data in client.media if channel == 3]
        assert {channel for channel, _ in client.media} == {2, 3}
        first_seq, first_ts = struct.unpack_from("!HI", rtp[0], 2)
        assert first_seq == int(info["seq"])  # RTP-Info names the first packet the client gets
        assert ((first_ts - int(info["rtptime"])) & 0xFFFFFFFF) % 3600 == 0  # and the clock it starts from
        frame_ts = list(dict.fromkeys(_rtp_ts(p) for p in rtp))  # one timestamp per frame, in order
        steps = {(b - a) & 0xFFFFFFFF for a, b in zip(frame_ts, frame_ts[1:])}
        assert len(frame_ts) >= 25 and steps == {3600}  # 90 kHz / 25 fps, no frame skipped
        assert all(struct.unpack_from("!B", p, 1)[0] == 200 for p in rtcp) and len(rtcp) >= 1  # sender reports
        before = len(client.media)
        client.read_media(0.3)
        assert len(client.media) == before  # nothing after TEARDOWN
        client.sock.sendall(b"NONSENSE\r\n\r\n")
        assert client.reply()[0] == 400
        assert server.bad_requests == 1
        client.sock.close()


def test_a_session_without_keep_alive_expires() -> None:
    with RtspServer([_textured()], fps=25, session_timeout_s=1) as server:
        client = _RawClient(server.port)
        assert client.request("DESCRIBE", server.url)[0] == 200
        code, headers, _ = client.request("SETUP", server.url + "/track0", Transport="RTP/AVP/TCP;interleaved=0-1")
        session = headers["session"].split(";")[0]
        assert client.request("PLAY", server.url, Session=session)[0] == 200
        client.read_media(1.8)  # silent client: no RTCP, no requests
        assert server.expired == 1
        assert client.request("GET_PARAMETER", server.url, Session=session)[0] == 454
        client.sock.close()
