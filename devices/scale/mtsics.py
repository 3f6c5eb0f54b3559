"""Mettler-Toledo MT-SICS (9600 8N1, every line ends CR LF), as DESIGN.md §7.

Host → scale: ``SI`` weight now (stable or not), ``S`` stable weight, ``SIR`` weight now and repeat (the
continuous mode; any other command stops it), ``Z`` zero, ``T`` tare, ``TAC`` clear tare, ``@`` reset,
``I4`` serial number — each followed by CR LF.
Scale → host (CR LF after each):

- ``S S     4.08 kg`` — second field ``S`` stable, ``D`` dynamic (in motion); ``S +`` overload, ``S -``
  underload; ``S I`` command not executable now (busy, or no stable weight in time);
- ``Z A`` zeroed / ``Z I`` not now / ``Z +`` ``Z -`` outside the zero range; ``T S   0.120 kg`` tare taken /
  ``T I`` ``T +`` ``T -``; ``TAC A``; ``I4 A "0123456789"`` (also the answer to ``@``);
- errors: ``ES`` syntax (unknown command), ``ET`` transmission (parity/framing), ``EL`` logical (bad argument).

The weight field is right-aligned; the simulator pads it to 8 characters as DESIGN.md shows, and the parser
accepts any padding (real balances use 10).

>>> p = MtSics()
>>> [p.decode(f).reading.weight_kg for f in p.parser().feed(b"\\xffS S     4.08 kg\\r\\nS D   412 g\\r\\n")]
[4.08, 0.412]
"""

from __future__ import annotations

import re

from devices.scale.protocol import Command, FrameParser, ScaleProtocol, SerialSettings
from devices.scale.reading import Reading, Reply, weight_in_kg

EOL = b"\r\n"
REQUESTS: dict[str, bytes] = {"weight": b"SI\r\n", "stable_weight": b"S\r\n", "zero": b"Z\r\n",
                              "tare": b"T\r\n", "clear_tare": b"TAC\r\n", "reset": b"@\r\n",
                              "serial": b"I4\r\n", "continuous": b"SIR\r\n"}
_COMMAND_OF = {"weight": "S", "zero": "Z", "tare": "T", "clear_tare": "TAC"}
MAX_LINE = 64

_VALUE = r"(?P<val>-?\d+(?:\.\d+)?) (?P<unit>[A-Za-z]{1,3})"
_LINES = [
    re.compile(rb"(?P<cmd>S|T) (?P<st>[SD]) +" + _VALUE.encode()),
    re.compile(rb"(?P<cmd>S|T|Z|ZI|TAC) (?P<st>[AI+\-])"),
    re.compile(rb'(?P<cmd>I4) (?P<st>A) "(?P<text>[^"\r\n]{0,32})"'),
    re.compile(rb"(?P<code>ES|ET|EL)"),
]


def encode_weight(value: float, unit: str = "kg", *, stable: bool = True, decimals: int = 3,
                  width: int = 8, command: str = "S") -> bytes:
    """Device side: a weight line, e.g. ``encode_weight(4.08, decimals=2) == b"S S     4.08 kg\\r\\n"``."""
    text = f"{value:.{decimals}f}"
    return f"{command} {'S' if stable else 'D'} {text:>{width}} {unit}".encode("ascii") + EOL


def encode_status(command: str, status: str) -> bytes:
    """Device side: a short answer such as ``Z A``, ``S +``, ``TAC A`` or an error code (``ES``)."""
    return (f"{command} {status}" if command else status).encode("ascii") + EOL


def match_frame(buf: bytes, i: int) -> int:
    """Framing rule for :class:`FrameParser`: a whole line that matches one of the reply grammars."""
    end = buf.find(EOL, i, i + MAX_LINE + 2)
    if end < 0:
        return 0 if len(buf) - i < MAX_LINE + 2 else -1
    line = buf[i:end]
    return end + 2 - i if any(rx.fullmatch(line) for rx in _LINES) else -1


def decode_frame(frame: bytes, unit: str = "kg") -> Reply:
    """Decode a line found by :func:`match_frame` (``unit`` is unused: MT-SICS lines carry theirs)."""
    line = frame[:-2]
    for rx in _LINES:
        m = rx.fullmatch(line)
        if m is None:
            continue
        groups = m.groupdict()
        if groups.get("code"):
            return Reply("error", code=groups["code"].decode(), ok=False, raw=frame)
        cmd, st = groups["cmd"].decode(), groups["st"].decode()
        if groups.get("val") is not None:
            value = float(groups["val"])
            kg, u, faults = weight_in_kg(value, groups["unit"].decode())
            reading = Reading(weight_kg=kg, value=value, unit=u, motion=st == "D", zero=value == 0.0,
                              faults=faults, raw=frame)
            kind = "reading" if cmd == "S" else "ack"
            return Reply(kind, reading=reading, command=cmd, code=f"{cmd} {st}", raw=frame)
        if cmd == "S" and st in "+-":
            reading = Reading(weight_kg=None, overload=st == "+", underload=st == "-", raw=frame)
            return Reply("reading", reading=reading, command=cmd, code=f"S {st}", raw=frame)
        text = groups["text"].decode("ascii", "replace") if groups.get("text") is not None else ""
        return Reply("ack", command=cmd, ok=st == "A", code=f"{cmd} {st}", text=text, raw=frame)
    raise ValueError(f"not an MT-SICS reply: {frame!r}")


class MtSics(ScaleProtocol):
    """MT-SICS level 0/1 subset used by retail and bench scales; ``SIR`` gives continuous output."""

    name = "mt-sics"
    serial = SerialSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1)
    continuous_supported = True

    def request(self, command: Command) -> bytes:
        return REQUESTS[command]

    def parser(self) -> FrameParser:
        return FrameParser(match_frame, b"SZTIE", max_frame=MAX_LINE + 2)

    def decode(self, frame: bytes, unit: str = "kg") -> Reply:
        return decode_frame(frame, unit)

    def answers(self, command: Command, reply: Reply) -> bool:
        return reply.kind == "error" or reply.command == _COMMAND_OF[command]

    def command_ok(self, command: Command, reply: Reply) -> bool:
        return reply.kind != "error" and reply.ok

    def continuous_start(self) -> bytes:
        return REQUESTS["continuous"]

    def continuous_stop(self) -> bytes:
        return REQUESTS["reset"]
