"""NCI / Weigh-Tronix SCP-01, also CAS PD-II "ECR type 2" (9600 7E1), as DESIGN.md §7.

Host → scale: ``W CR`` weight, ``S CR`` status, ``Z CR`` zero, ``T CR`` tare (where the scale has it).
Scale → host:

- weight: ``LF 0001.26LB CR LF s1 s2 [s3] CR ETX`` — the weight field as displayed (minus sign included; over
  and under capacity show ``^``/``_`` instead of digits), a 2-letter unit, then the status bytes;
- status (answer to ``S``, ``Z``, ``T``): ``LF s1 s2 [s3] CR ETX``;
- unknown command: ``LF ? CR ETX``.

Status bytes have bits 4 and 5 always 1 (so ``0x30`` = all clear). s1: bit 0 motion, 1 at zero, 2 RAM error,
3 EEPROM error, 6 always 0. s2: bit 0 under capacity, 1 over capacity, 2 ROM error, 3 faulty calibration,
6 = another status byte follows. Optional s3: bits 0-1 range, 2 net weight, 3 initial zero error.

>>> p = Scp01()
>>> r = p.decode(p.parser().feed(b"\\n0001.26LB\\r\\n10\\r\\x03")[0]).reading
>>> r.weight_kg, r.unit, r.motion, r.zero
(0.5715264, 'lb', True, False)
"""

from __future__ import annotations

import re

from devices.scale.protocol import Command, FrameParser, ScaleProtocol, SerialSettings
from devices.scale.reading import Reading, Reply, normalise_unit, weight_in_kg

LF, CR, ETX = 0x0A, 0x0D, 0x03
REQUESTS: dict[str, bytes] = {"weight": b"W\r", "status": b"S\r", "zero": b"Z\r", "tare": b"T\r"}
UNKNOWN = b"\n?\r\x03"
MAX_FRAME = 24

S1_MOTION, S1_ZERO, S1_RAM, S1_EEPROM = 1, 2, 4, 8
S2_UNDER, S2_OVER, S2_ROM, S2_CAL, MORE = 1, 2, 4, 8, 0x40
S3_NET, S3_INIT_ZERO = 4, 8
_BASE = 0x30

_STATUS = rb"(?P<st>[0-?][0-?p-\x7f]{1,2})"
_WEIGHT_RX = re.compile(rb"\n(?P<field>[0-9 .\-^_]{1,9})(?P<unit>[A-Za-z]{1,2})\r\n" + _STATUS + rb"\r\x03")
_STATUS_RX = re.compile(rb"\n" + _STATUS + rb"\r\x03")


def status_bytes(*, motion: bool = False, zero: bool = False, under: bool = False, over: bool = False,
                 net: bool | None = None) -> bytes:
    """Device side: s1 s2 (and s3 when ``net`` is given) for the given conditions."""
    s1 = _BASE | (S1_MOTION if motion else 0) | (S1_ZERO if zero else 0)
    s2 = _BASE | (S2_UNDER if under else 0) | (S2_OVER if over else 0)
    if net is None:
        return bytes([s1, s2])
    return bytes([s1, s2 | MORE, _BASE | (S3_NET if net else 0)])


def encode_weight(value: float | None, unit: str = "LB", *, status: bytes = b"00", int_digits: int = 4,
                  decimals: int = 2, display: str | None = None) -> bytes:
    """Device side: a weight frame; ``display`` overrides the field (e.g. ``"^^^^^^^"`` when over capacity)."""
    width = int_digits + decimals + 1
    field = display if display is not None else f"{value:0{width}.{decimals}f}"
    return b"\n" + field.encode("ascii") + unit.encode("ascii") + b"\r\n" + status + b"\r\x03"


def encode_status(status: bytes) -> bytes:
    """Device side: a status frame."""
    return b"\n" + status + b"\r\x03"


def _status_ok(st: bytes) -> bool:
    # s1 never announces more bytes; s2 announces s3 exactly when three are present.
    return len(st) == 3 if st[1] & MORE else len(st) == 2


def match_frame(buf: bytes, i: int) -> int:
    """Framing rule for :class:`FrameParser`: LF … ETX matching a weight, status or ``?`` frame."""
    end = buf.find(bytes([ETX]), i, i + MAX_FRAME)
    if end < 0:
        return 0 if len(buf) - i < MAX_FRAME else -1
    frame = buf[i:end + 1]
    if frame == UNKNOWN:
        return len(frame)
    m = _WEIGHT_RX.fullmatch(frame) or _STATUS_RX.fullmatch(frame)
    return len(frame) if m is not None and _status_ok(m.group("st")) else -1


def _flags(st: bytes) -> dict:
    s1, s2 = st[0], st[1]
    s3 = st[2] if len(st) > 2 else _BASE
    faults = tuple(name for bit, byte, name in ((S1_RAM, s1, "ram"), (S1_EEPROM, s1, "eeprom"),
                                               (S2_ROM, s2, "rom"), (S2_CAL, s2, "calibration"),
                                               (S3_INIT_ZERO, s3, "initial_zero")) if byte & bit)
    return {"motion": bool(s1 & S1_MOTION), "zero": bool(s1 & S1_ZERO), "underload": bool(s2 & S2_UNDER),
            "overload": bool(s2 & S2_OVER), "net": bool(s3 & S3_NET), "faults": faults}


def decode_frame(frame: bytes, unit: str = "kg") -> Reply:
    """Decode a frame found by :func:`match_frame` (the frame's own unit wins over ``unit``)."""
    if frame == UNKNOWN:
        return Reply("error", ok=False, code="?", raw=frame)
    m = _WEIGHT_RX.fullmatch(frame)
    if m is None:
        m = _STATUS_RX.fullmatch(frame)
        reading = Reading(weight_kg=None, unit=normalise_unit(unit), raw=frame, **_flags(m.group("st")))
        return Reply("reading", reading=reading, code="status", raw=frame)
    try:
        value: float | None = float(m.group("field").replace(b" ", b""))
    except ValueError:  # ^^^^ / ____: out of range, no weight
        value = None
    kg, u, unit_faults = weight_in_kg(value, m.group("unit").decode())
    flags = _flags(m.group("st"))
    flags["faults"] += unit_faults
    reading = Reading(weight_kg=kg, value=value, unit=u, raw=frame, **flags)
    return Reply("reading", reading=reading, code="weight", raw=frame)


class Scp01(ScaleProtocol):
    """SCP-01 / ECR type 2: demand mode; weights answered in motion too, with the motion bit set."""

    name = "scp01"
    serial = SerialSettings(baudrate=9600, bytesize=7, parity="E", stopbits=1)

    def request(self, command: Command) -> bytes:
        if command not in REQUESTS:
            raise ValueError(f"SCP-01 has no {command!r} command")
        return REQUESTS[command]

    def parser(self) -> FrameParser:
        return FrameParser(match_frame, bytes([LF]), max_frame=MAX_FRAME)

    def decode(self, frame: bytes, unit: str = "kg") -> Reply:
        return decode_frame(frame, unit)

    def command_ok(self, command: Command, reply: Reply) -> bool:
        r = reply.reading
        if r is None or not reply.ok or r.motion or r.overload:
            return False
        return r.zero if command == "zero" else True
