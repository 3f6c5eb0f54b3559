"""Toledo 8217 (9600 7E1), byte for byte as DESIGN.md §7.

Host → scale: single ASCII bytes, no terminator: ``W`` weight, ``Z`` zero, ``T`` tare, ``C`` clear tare.
Scale → host:

- weight, only when the weight is valid (no motion, in range, not below zero):
  ``STX d d d . d d d CR`` (gross) or ``STX d d d . d d d N CR`` (net), e.g. ``b"\\x02004.080\\r"``;
  the frame carries no unit: the scale's configured unit (kg by default) applies;
- status, otherwise and as the answer to ``Z``/``T``/``C``: ``STX ? s CR`` where ``s`` has bit 0 motion,
  1 over capacity, 2 negative (under zero), 3 outside zero capture range, 4 centre of zero, 5 net; bit 6 is
  always 1 so ``s`` is printable and never collides with STX or CR (e.g. ``b"\\x02?A\\r"`` = in motion).

Other bytes are ignored by the scale.

>>> p = Toledo8217()
>>> frames = p.parser().feed(b"\\x7f\\x02004.080\\r\\x02?A\\r")
>>> [p.decode(f).reading.weight_kg for f in frames], p.decode(frames[1]).reading.motion
([4.08, None], True)
"""

from __future__ import annotations

from devices.scale.protocol import Command, FrameParser, ScaleProtocol, SerialSettings
from devices.scale.reading import Reading, Reply, normalise_unit, to_kg

STX, CR = 0x02, 0x0D
REQUESTS: dict[str, bytes] = {"weight": b"W", "zero": b"Z", "tare": b"T", "clear_tare": b"C"}

MOTION, OVER, NEGATIVE, OUTSIDE_ZERO, CENTER_ZERO, NET = (1 << b for b in range(6))
STATUS_BASE = 0x40  # bit 6 always set
_DIGIT_POSITIONS = (1, 2, 3, 5, 6, 7)


def encode_weight(value: float, *, net: bool = False) -> bytes:
    """Device side: a weight frame for ``value`` (0 ≤ value ≤ 999.999, in the scale's unit)."""
    if not 0 <= value <= 999.999:
        raise ValueError(f"Toledo 8217 weight frames hold 000.000-999.999, not {value}")
    return bytes([STX]) + f"{value:07.3f}".encode("ascii") + (b"N" if net else b"") + bytes([CR])


def encode_status(bits: int) -> bytes:
    """Device side: a status frame for the given bit set (bits 0-5)."""
    return bytes([STX, ord("?"), STATUS_BASE | (bits & 0x3F), CR])


def match_frame(buf: bytes, i: int) -> int:
    """Framing rule for :class:`FrameParser` (see its ``Matcher`` contract)."""
    n = len(buf) - i
    if n < 2:
        return 0
    if buf[i + 1] == ord("?"):
        if n < 4:
            return 0
        return 4 if buf[i + 2] & 0x40 and buf[i + 2] < 0x80 and buf[i + 3] == CR else -1
    for k in range(1, 9):
        if k >= n:
            return 0
        c = buf[i + k]
        if k in _DIGIT_POSITIONS:
            ok = 0x30 <= c <= 0x39
        elif k == 4:
            ok = c == ord(".")
        else:  # k == 8: CR (gross) or N (net, then CR)
            if c == CR:
                return 9
            if c != ord("N"):
                return -1
            if n < 10:
                return 0
            return 10 if buf[i + 9] == CR else -1
        if not ok:
            return -1
    return -1


def decode_frame(frame: bytes, unit: str = "kg") -> Reply:
    """Decode a frame found by :func:`match_frame`."""
    unit = normalise_unit(unit)
    if frame[1] == ord("?"):
        s = frame[2]
        reading = Reading(weight_kg=None, unit=unit, net=bool(s & NET), motion=bool(s & MOTION),
                          zero=bool(s & CENTER_ZERO), overload=bool(s & OVER), underload=bool(s & NEGATIVE),
                          faults=("outside_zero_range",) if s & OUTSIDE_ZERO else (), raw=frame)
        return Reply("reading", reading=reading, raw=frame)
    value = float(frame[1:8].decode("ascii"))
    reading = Reading(weight_kg=to_kg(value, unit), value=value, unit=unit, net=frame[8] == ord("N"),
                      zero=value == 0.0, raw=frame)
    return Reply("reading", reading=reading, raw=frame)


class Toledo8217(ScaleProtocol):
    """Toledo 8217: demand mode only; weight frames carry no unit."""

    name = "toledo8217"
    serial = SerialSettings(baudrate=9600, bytesize=7, parity="E", stopbits=1)
    unit_in_frame = False

    def request(self, command: Command) -> bytes:
        return REQUESTS[command]

    def parser(self) -> FrameParser:
        return FrameParser(match_frame, bytes([STX]), max_frame=10)

    def decode(self, frame: bytes, unit: str = "kg") -> Reply:
        return decode_frame(frame, unit)

    def command_ok(self, command: Command, reply: Reply) -> bool:
        r = reply.reading
        if r is None or r.motion or r.overload:
            return False
        if command == "zero":
            return r.zero
        if command == "tare":
            return r.net
        if command == "clear_tare":
            return not r.net
        return True
