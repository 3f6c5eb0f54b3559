"""The shape every scale protocol module fills in: serial settings, requests, an incremental frame parser and
a decoder. Protocol modules are pure (bytes in, values out) so they are tested without a port.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from devices.scale.reading import Reply

Command = Literal["weight", "zero", "tare", "clear_tare"]

#: ``match(buf, i)`` → length of a complete valid frame starting at ``buf[i]``, 0 when the bytes so far may
#: still become one (wait for more), -1 when no frame starts there.
Matcher = Callable[[bytes, int], int]


class FrameParser:
    """Incremental framer: ``feed(bytes)`` returns the complete valid frames found so far.

    Bytes that cannot start or belong to a valid frame are skipped and counted in ``garbage_bytes``; a frame
    cut short and followed by another frame is garbage too. Nothing here can turn garbage into a weight: a
    frame is emitted only when it matches the protocol's grammar completely.
    """

    def __init__(self, match: Matcher, start_bytes: bytes, max_frame: int) -> None:
        self._match = match
        self._starts = frozenset(start_bytes)
        self._max = max_frame
        self._buf = b""
        self.frames = 0
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frames they completed, oldest first."""
        buf = self._buf + data
        out: list[bytes] = []
        i = 0
        n = len(buf)
        while i < n:
            if buf[i] not in self._starts:
                i += 1
                self.garbage_bytes += 1
                continue
            length = self._match(buf, i)
            if length > 0:
                out.append(buf[i:i + length])
                i += length
            elif length == 0 and n - i < self._max:
                break
            else:
                i += 1
                self.garbage_bytes += 1
        self._buf = buf[i:]
        self.frames += len(out)
        return out

    @property
    def pending(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buf)

    def reset(self) -> int:
        """Drop a held partial frame (after a timeout) and count it as garbage; returns how many bytes."""
        dropped = len(self._buf)
        self.garbage_bytes += dropped
        self._buf = b""
        return dropped


@dataclass(frozen=True)
class SerialSettings:
    """Line settings a protocol uses by default (pyserial names: bytesize 7/8, parity 'N'/'E'/'O')."""

    baudrate: int
    bytesize: int
    parity: str
    stopbits: int


class ScaleProtocol(ABC):
    """One wire protocol. Subclasses are stateless; one instance per protocol lives in ``PROTOCOLS``."""

    name: str
    serial: SerialSettings
    #: The protocol can stream readings without being asked (MT-SICS ``SIR``).
    continuous_supported: bool = False
    #: Frames carry the unit; when False the configured unit applies (Toledo 8217).
    unit_in_frame: bool = True

    @abstractmethod
    def request(self, command: Command) -> bytes:
        """Bytes the host sends for ``command``; ``ValueError`` if the protocol has no such command."""

    @abstractmethod
    def parser(self) -> FrameParser:
        """A fresh incremental frame parser for replies of this protocol."""

    @abstractmethod
    def decode(self, frame: bytes, unit: str = "kg") -> Reply:
        """Decode one complete frame from ``parser()``; ``unit`` applies when frames carry none."""

    def answers(self, command: Command, reply: Reply) -> bool:
        """Whether ``reply`` is the device's answer to ``command`` (readings answer ``weight``)."""
        if reply.kind == "error":
            return True
        if command == "weight":
            return reply.kind == "reading"
        return self._answers_command(command, reply)

    def _answers_command(self, command: Command, reply: Reply) -> bool:
        return reply.kind in ("reading", "ack")

    def command_ok(self, command: Command, reply: Reply) -> bool:
        """Whether the device carried out ``command`` according to its answer."""
        if reply.kind == "error" or not reply.ok:
            return False
        if reply.kind == "reading" and reply.reading is not None:
            r = reply.reading
            return not (r.motion or r.overload)
        return True

    def continuous_start(self) -> bytes | None:
        """Bytes that switch the scale to streaming readings, or ``None`` when it cannot."""
        return None

    def continuous_stop(self) -> bytes | None:
        """Bytes that stop streaming."""
        return None
