"""RTP payload format for JPEG (RFC 2435) and the RTCP sender report (RFC 3550), for the test RTSP server.

Pure functions over bytes, so they are checked without sockets:

* :func:`parse_jpeg` splits a baseline JFIF (what ``cv2.imencode(".jpg", …)`` writes) into what RFC 2435
  carries: type (0 = 4:2:2, 1 = 4:2:0), size in 8-pixel blocks, the quantisation tables of the DQT segments
  (sent in-band with Q = 255) and the entropy-coded scan data (between the SOS header and EOI).
* :func:`rtp_packets` fragments one frame into RTP packets (payload type 26, 90 kHz clock, fragment offsets,
  the marker bit on the last packet of the frame).
* :func:`sender_report` builds a compound RTCP packet: SR + SDES CNAME.

RFC 2435 assumes the standard Huffman tables of ITU T.81 Annex K.3: libjpeg (and so OpenCV) writes them unless
``IMWRITE_JPEG_OPTIMIZE`` is on, which the server never sets.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, replace

import numpy as np

PAYLOAD_TYPE = 26
CLOCK_RATE = 90_000
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


class JpegError(ValueError):
    """The JPEG cannot be carried as RTP/JPEG type 0/1 (progressive, not YCbCr 4:2:x, 16-bit tables, …)."""


@dataclass(frozen=True, slots=True)
class JpegFrame:
    """One frame as RFC 2435 carries it.

    Attributes:
        type: 0 (Y 2x1, 4:2:2) or 1 (Y 2x2, 4:2:0); +64 when restart markers are used.
        width8, height8: image size in 8-pixel blocks, rounded up (1–255 each).
        qtables: luma then chroma table, 64 bytes each, in the zig-zag order of the DQT segment.
        scan: entropy-coded data of the single scan, without the EOI marker.
        restart_interval: MCUs between restart markers (0: none).
    """

    type: int
    width8: int
    height8: int
    qtables: bytes
    scan: bytes
    restart_interval: int = 0

    def corrupted(self, rng: np.random.Generator) -> JpegFrame:
        """The same frame with its scan data replaced by random bytes of the same length."""
        return replace(self, scan=rng.integers(0, 256, len(self.scan), dtype=np.uint8).tobytes())


def encode_frame(image: np.ndarray, quality: int = 85) -> JpegFrame:
    """Encode a BGR image as baseline 4:2:0 JPEG with OpenCV and split it for RTP/JPEG."""
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise JpegError("cv2.imencode failed")
    return parse_jpeg(buf.tobytes())


def parse_jpeg(data: bytes) -> JpegFrame:
    """Split a baseline, 3-component, 8-bit-table JPEG into the fields RFC 2435 sends.

    Raises:
        JpegError: anything RTP/JPEG type 0/1 cannot express.
    """
    if data[:2] != b"\xff\xd8":
        raise JpegError("not a JPEG (no SOI)")
    tables: dict[int, bytes] = {}
    sof: tuple[int, int, list[tuple[int, int, int]]] | None = None
    restart = 0
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise JpegError(f"marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack_from("!H", data, pos + 2)[0]
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xDB:
            _read_dqt(segment, tables)
        elif marker in (0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            raise JpegError(f"only baseline JPEG (SOF0) can be sent, got SOF{marker - 0xC0}")
        elif marker == 0xC0:
            sof = _read_sof(segment)
        elif marker == 0xDD:
            restart = struct.unpack_from("!H", segment)[0]
        elif marker == 0xDA:
            scan = data[pos + 2 + length:]
            if scan.endswith(b"\xff\xd9"):
                scan = scan[:-2]
            return _frame(sof, tables, scan, restart)
        pos += 2 + length
    raise JpegError("no SOS segment")


def _read_dqt(segment: bytes, tables: dict[int, bytes]) -> None:
    i = 0
    while i < len(segment):
        precision, table_id = segment[i] >> 4, segment[i] & 0x0F
        if precision:
            raise JpegError("16-bit quantisation tables are not supported")
        tables[table_id] = segment[i + 1:i + 65]
        i += 65


def _read_sof(segment: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    bits, height, width, count = struct.unpack_from("!BHHB", segment)
    if bits != 8 or count != 3:
        raise JpegError(f"need 8-bit, 3-component YCbCr, got {bits} bits, {count} components")
    comps = [(segment[6 + 3 * k], segment[7 + 3 * k], segment[8 + 3 * k]) for k in range(3)]
    return width, height, comps


def _frame(sof: tuple[int, int, list[tuple[int, int, int]]] | None, tables: dict[int, bytes], scan: bytes,
           restart: int) -> JpegFrame:
    if sof is None:
        raise JpegError("no SOF0 segment before the scan")
    width, height, comps = sof
    sampling = [c[1] for c in comps]
    if sampling[1:] != [0x11, 0x11] or sampling[0] not in (0x21, 0x22):
        raise JpegError(f"sampling factors {[hex(s) for s in sampling]} are not RTP/JPEG type 0 or 1")
    if [c[2] for c in comps] != [0, 1, 1] or 0 not in tables or 1 not in tables:
        raise JpegError("luma must use quantisation table 0 and both chroma components table 1")
    if not 0 < width <= 2040 or not 0 < height <= 2040:
        raise JpegError(f"{width}x{height}: RTP/JPEG carries at most 2040x2040")
    kind = 0 if sampling[0] == 0x21 else 1
    return JpegFrame(type=kind + (64 if restart else 0), width8=(width + 7) // 8, height8=(height + 7) // 8,
                     qtables=tables[0] + tables[1], scan=scan, restart_interval=restart)


def rtp_packets(frame: JpegFrame, *, seq: int, timestamp: int, ssrc: int, max_payload: int = 1400) -> list[bytes]:
    """The RTP packets of one frame: sequence numbers ``seq, seq+1, …`` (mod 2^16), one timestamp, the marker
    bit on the last. The first packet carries the quantisation table header (Q = 255: tables in-band)."""
    packets: list[bytes] = []
    offset = 0
    while True:
        main = struct.pack("!BBBBBBBB", 0, (offset >> 16) & 0xFF, (offset >> 8) & 0xFF, offset & 0xFF,
                           frame.type, 255, frame.width8, frame.height8)
        extra = b""
        if frame.restart_interval:
            extra += struct.pack("!HH", frame.restart_interval, 0xFFFF)  # F=1, L=1, count=0x3FFF: whole frame
        if offset == 0:
            extra += struct.pack("!BBH", 0, 0, len(frame.qtables)) + frame.qtables
        room = max_payload - len(main) - len(extra)
        chunk = frame.scan[offset:offset + room]
        last = offset + len(chunk) >= len(frame.scan)
        header = struct.pack("!BBHII", 0x80, (0x80 if last else 0) | PAYLOAD_TYPE, (seq + len(packets)) & 0xFFFF,
                             timestamp & 0xFFFFFFFF, ssrc)
        packets.append(header + main + extra + chunk)
        offset += len(chunk)
        if last:
            return packets


def sender_report(*, ssrc: int, rtp_timestamp: int, packets: int, octets: int, cname: str,
                  now: float | None = None) -> bytes:
    """Compound RTCP packet: Sender Report (no report blocks) followed by SDES with a CNAME item."""
    now = time.time() if now is None else now
    ntp = now + _NTP_EPOCH_OFFSET
    ntp_sec = int(ntp)
    ntp_frac = int((ntp - ntp_sec) * (1 << 32)) & 0xFFFFFFFF
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, ntp_sec & 0xFFFFFFFF, ntp_frac,
                     rtp_timestamp & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    name = cname.encode()[:255]
    item = struct.pack("!BB", 1, len(name)) + name + b"\x00"  # CNAME, then the end-of-list null
    item += b"\x00" * (-len(item) % 4)  # the chunk (SSRC + items) ends on a 32-bit boundary
    sdes = struct.pack("!BBHI", 0x81, 202, (8 + len(item)) // 4 - 1, ssrc) + item
    return sr + sdes
