"""Device side of each protocol: what a real scale answers to each request, byte for byte.

A responder is fed the bytes the host sent (in any chunks) and returns the complete replies; ``tick(now)``
produces unsolicited output (MT-SICS continuous mode, a deferred ``S``). The weighing state (zero, tare,
capacity, motion) is shared by all protocols in :class:`ScaleState`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from devices.scale import mtsics, scp01, toledo8217
from devices.scale.reading import UNIT_TO_KG


@dataclass
class ScaleState:
    """The weighing cell and its indicator. ``gross_kg`` is what lies on the platter (set by the script)."""

    gross_kg: float = 0.0
    motion: bool = False
    zero_offset_kg: float = 0.0
    tare_kg: float = 0.0
    capacity_kg: float = 15.0
    unit: str = "kg"
    resolution_kg: float = 0.001

    @property
    def net_kg(self) -> float:
        """What the display shows, in kg (gross minus zero offset minus tare), rounded to the resolution."""
        raw = self.gross_kg - self.zero_offset_kg - self.tare_kg
        return round(round(raw / self.resolution_kg) * self.resolution_kg, 6)

    @property
    def overload(self) -> bool:
        """Over capacity (display blanked)."""
        return self.gross_kg - self.zero_offset_kg > self.capacity_kg

    @property
    def underload(self) -> bool:
        """Under zero by more than the indicator can show (-2 % of capacity)."""
        return self.gross_kg - self.zero_offset_kg < -0.02 * self.capacity_kg

    @property
    def at_zero(self) -> bool:
        """Centre of zero: within a quarter division."""
        return abs(self.gross_kg - self.zero_offset_kg - self.tare_kg) < self.resolution_kg / 4

    @property
    def in_zero_range(self) -> bool:
        """Zeroing allowed: within ±2 % of capacity of the power-up zero."""
        return abs(self.gross_kg) <= 0.02 * self.capacity_kg

    def display(self, unit: str | None = None) -> float:
        """Net weight in ``unit`` (default: the scale's unit)."""
        return self.net_kg / UNIT_TO_KG[unit or self.unit]

    def zero(self) -> str:
        """Try to zero: ``"ok"``, ``"motion"`` or ``"range"``."""
        if self.motion:
            return "motion"
        if not self.in_zero_range:
            return "range"
        self.zero_offset_kg, self.tare_kg = self.gross_kg, 0.0
        return "ok"

    def tare(self) -> str:
        """Try to tare what lies on the scale: ``"ok"``, ``"motion"``, ``"over"`` or ``"range"`` (≤ 0)."""
        if self.motion:
            return "motion"
        if self.overload:
            return "over"
        if self.gross_kg - self.zero_offset_kg <= 0:
            return "range"
        self.tare_kg = self.gross_kg - self.zero_offset_kg
        return "ok"


class Responder(ABC):
    """One protocol's device behaviour."""

    def __init__(self, state: ScaleState) -> None:
        self.state = state
        self._buf = b""

    @abstractmethod
    def feed(self, data: bytes, now: float) -> list[bytes]:
        """Requests in, replies out."""

    def tick(self, now: float) -> list[bytes]:
        """Unsolicited output due at ``now``."""
        return []

    def _lines(self, data: bytes, terminator: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while terminator in self._buf:
            line, self._buf = self._buf.split(terminator, 1)
            out.append(line)
        if len(self._buf) > 256:  # a host spewing junk without terminators
            self._buf = b""
        return out


class Toledo8217Responder(Responder):
    """Single-byte commands; weight only when valid, otherwise the status byte."""

    def _status_bits(self) -> int:
        s = self.state
        return ((toledo8217.MOTION if s.motion else 0) | (toledo8217.OVER if s.overload else 0)
                | (toledo8217.NEGATIVE if s.net_kg < 0 else 0)
                | (toledo8217.OUTSIDE_ZERO if not s.in_zero_range else 0)
                | (toledo8217.CENTER_ZERO if s.at_zero else 0) | (toledo8217.NET if s.tare_kg else 0))

    def _weight(self) -> bytes:
        s = self.state
        if s.motion or s.overload or s.net_kg < 0:
            return toledo8217.encode_status(self._status_bits())
        try:
            return toledo8217.encode_weight(round(s.display(), 3), net=bool(s.tare_kg))
        except ValueError:  # beyond 999.999 in this unit
            return toledo8217.encode_status(self._status_bits() | toledo8217.OVER)

    def feed(self, data: bytes, now: float) -> list[bytes]:
        out = []
        for byte in data:
            c = chr(byte & 0x7F)
            if c == "W":
                out.append(self._weight())
            elif c in "ZTC":
                if c == "Z":
                    self.state.zero()
                elif c == "T":
                    self.state.tare()
                else:
                    self.state.tare_kg = 0.0
                out.append(toledo8217.encode_status(self._status_bits()))
        return out


class Scp01Responder(Responder):
    """CR-terminated commands W, S, Z, T; anything else gets ``LF ? CR ETX``."""

    def _status(self) -> bytes:
        s = self.state
        return scp01.status_bytes(motion=s.motion, zero=s.at_zero, under=s.underload, over=s.overload,
                                  net=True if s.tare_kg else None)

    def _weight(self) -> bytes:
        s = self.state
        unit = s.unit.upper()
        if s.overload:
            return scp01.encode_weight(None, unit, status=self._status(), display="^" * 7)
        if s.underload:
            return scp01.encode_weight(None, unit, status=self._status(), display="_" * 7)
        return scp01.encode_weight(s.display(), unit, status=self._status())

    def feed(self, data: bytes, now: float) -> list[bytes]:
        out = []
        for line in self._lines(data, b"\r"):
            cmd = line.strip(b"\n ").upper()
            if cmd == b"W":
                out.append(self._weight())
            elif cmd in (b"S", b"Z", b"T"):
                if cmd == b"Z":
                    self.state.zero()
                elif cmd == b"T":
                    self.state.tare()
                out.append(scp01.encode_status(self._status()))
            else:
                out.append(scp01.UNKNOWN)
        return out


class MtSicsResponder(Responder):
    """CR LF-terminated MT-SICS commands; ``SIR`` streams every ``interval_s``; ``S`` waits for stability."""

    def __init__(self, state: ScaleState, *, serial_number: str = "0123456789", interval_s: float = 0.1,
                 stable_timeout_s: float = 2.0) -> None:
        super().__init__(state)
        self.serial_number = serial_number
        self.interval_s = interval_s
        self.stable_timeout_s = stable_timeout_s
        self.continuous = False
        self._next_stream = 0.0
        self._pending_s: float | None = None

    @property
    def decimals(self) -> int:
        """Digits after the point for the scale's unit (1 g readability)."""
        return 0 if self.state.unit == "g" else 3

    def _weight(self, *, require_stable: bool = False) -> bytes:
        s = self.state
        if s.overload:
            return mtsics.encode_status("S", "+")
        if s.underload:
            return mtsics.encode_status("S", "-")
        return mtsics.encode_weight(s.display(), s.unit, stable=not s.motion, decimals=self.decimals)

    def _command(self, cmd: bytes, now: float) -> bytes | None:
        s = self.state
        if cmd == b"SI":
            return self._weight()
        if cmd == b"S":
            if s.motion and not s.overload:
                self._pending_s = now + self.stable_timeout_s
                return None
            return self._weight()
        if cmd == b"SIR":
            self.continuous = True
            self._next_stream = now + self.interval_s
            return self._weight()
        if cmd == b"Z":
            result = s.zero()
            return mtsics.encode_status("Z", {"ok": "A", "motion": "I"}.get(
                result, "+" if s.gross_kg > s.zero_offset_kg else "-"))
        if cmd == b"T":
            result = s.tare()
            if result == "ok":
                return mtsics.encode_weight(s.tare_kg / UNIT_TO_KG[s.unit], s.unit, decimals=self.decimals,
                                            command="T")
            return mtsics.encode_status("T", {"motion": "I", "over": "+"}.get(result, "-"))
        if cmd == b"TAC":
            s.tare_kg = 0.0
            return mtsics.encode_status("TAC", "A")
        if cmd in (b"@", b"I4"):
            if cmd == b"@":
                s.tare_kg = 0.0
            return mtsics.encode_status("I4", f'A "{self.serial_number}"')
        if cmd.split(b" ", 1)[0] in (b"S", b"SI", b"SIR", b"Z", b"T", b"TAC", b"I4"):
            return mtsics.encode_status("", "EL")  # known command, arguments it does not take
        return mtsics.encode_status("", "ES")

    def feed(self, data: bytes, now: float) -> list[bytes]:
        out = []
        for line in self._lines(data, b"\r\n"):
            if any(b > 0x7E or (b < 0x20) for b in line):
                out.append(mtsics.encode_status("", "ET"))
                continue
            self.continuous = self.continuous and line == b"SIR"  # any other command ends SIR
            self._pending_s = None
            reply = self._command(line, now)
            if reply is not None:
                out.append(reply)
        return out

    def tick(self, now: float) -> list[bytes]:
        out = []
        if self._pending_s is not None:
            if not self.state.motion:
                self._pending_s = None
                out.append(self._weight())
            elif now >= self._pending_s:
                self._pending_s = None
                out.append(mtsics.encode_status("S", "I"))
        if self.continuous and now >= self._next_stream:
            self._next_stream = max(self._next_stream + self.interval_s, now)
            out.append(self._weight())
        return out


def make_responder(protocol: str, state: ScaleState, **kwargs: object) -> Responder:
    """The responder for ``protocol`` (``mt-sics`` accepts ``serial_number``/``interval_s``)."""
    if protocol == "toledo8217":
        return Toledo8217Responder(state)
    if protocol == "scp01":
        return Scp01Responder(state)
    if protocol == "mt-sics":
        return MtSicsResponder(state, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown scale protocol {protocol!r}")
