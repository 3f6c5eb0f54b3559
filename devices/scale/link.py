"""One open serial port speaking one scale protocol: send requests, collect and decode the frames.

pyserial does the line settings (7E1 for Toledo 8217 and SCP-01, 8N1 for MT-SICS). Where the OS refuses a
On a pseudo-terminal (the simulator) the kernel has no UART (some refuse ``PARENB``, others ignore it), so
7-bit protocols are opened 8N1 there and parity is done in software (:mod:`devices.scale.parity`): what an 8N1
receiver sees of a 7E1 line, so the bytes stay faithful and parity errors are still caught.
"""

from __future__ import annotations

import os
import select
import termios
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import serial

from devices.scale.parity import add_parity, strip_parity
from devices.scale.protocol import Command, ScaleProtocol
from devices.scale.reading import Reply

Opener = Callable[..., Any]


@dataclass
class Counters:
    """What the link saw since the driver started (survives reconnects)."""

    requests: int = 0
    frames: int = 0
    readings: int = 0
    garbage_bytes: int = 0
    #: Frames that were started but never completed (dropped at the next request or on close).
    partial_frames: int = 0
    parity_errors: int = 0
    timeouts: int = 0
    errors: int = 0
    disconnects: int = 0
    reconnects: int = 0

    def to_dict(self) -> dict[str, int]:
        """Plain dict for status/JSON."""
        return asdict(self)


def is_pseudo_terminal(port: str) -> bool:
    """``port`` (or what its symlink points to) is a Unix98 pseudo-terminal slave."""
    real = os.path.realpath(port)
    if real.startswith("/dev/pts/"):
        return True
    try:
        return 136 <= os.major(os.stat(real).st_rdev) <= 143
    except OSError:
        return False


class ScaleLink:
    """A serial port opened with ``protocol``'s settings (each overridable). Not thread-safe: one owner."""

    def __init__(self, port: str, protocol: ScaleProtocol, *, baudrate: int | None = None,
                 bytesize: int | None = None, parity: str | None = None, stopbits: float | None = None,
                 unit: str = "kg", counters: Counters | None = None, opener: Opener = serial.Serial,
                 exclusive: bool = True) -> None:
        self.port = port
        self.protocol = protocol
        d = protocol.serial
        self.settings = {"baudrate": baudrate or d.baudrate, "bytesize": bytesize or d.bytesize,
                         "parity": parity or d.parity, "stopbits": stopbits or d.stopbits}
        self.unit = unit
        self.counters = counters or Counters()
        self._opener = opener
        self._exclusive = exclusive
        self._ser: Any = None
        self.soft_parity: str | None = None
        self.parser = protocol.parser()

    @property
    def is_open(self) -> bool:
        """The port is open."""
        return self._ser is not None

    def open(self) -> None:
        """Open the port; raises ``serial.SerialException`` (or ``OSError``) when it is missing or busy."""
        self.close()
        self.soft_parity = None
        settings = dict(self.settings)
        if settings["parity"] != "N" and is_pseudo_terminal(self.port):
            settings.update(bytesize=8, parity="N")
            self.soft_parity = self.settings["parity"]
        try:
            self._ser = self._opener(self.port, timeout=0, write_timeout=1.0, exclusive=self._exclusive,
                                     **settings)
        except termios.error as exc:
            raise OSError(f"cannot set {self.port} to {self.describe()}: {exc}") from None
        self.parser = self.protocol.parser()

    def describe(self) -> str:
        """Line settings as ``9600 7E1`` (``+ software parity`` when the OS could not do it)."""
        st = self.settings
        text = f"{st['baudrate']} {st['bytesize']}{st['parity']}{st['stopbits']}"
        return text + (" (software parity)" if self.soft_parity else "")

    def close(self) -> None:
        """Close the port (never raises); a held partial frame counts as garbage."""
        if self._ser is not None:
            self._drop_partial()
            try:
                self._ser.close()
            except (OSError, serial.SerialException):
                pass
            self._ser = None

    def _drop_partial(self) -> None:
        dropped = self.parser.reset()
        self.counters.garbage_bytes += dropped
        self.counters.partial_frames += dropped > 0

    def send(self, data: bytes) -> None:
        """Write ``data`` and wait until it left."""
        if self.soft_parity:
            data = add_parity(data, self.soft_parity)
        self._ser.write(data)
        self._ser.flush()

    def read_frames(self, timeout_s: float) -> list[Reply]:
        """Decoded replies of the first bytes that complete a frame within ``timeout_s`` ([] on timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            ready, _, _ = select.select([self._ser.fileno()], [], [], remaining)
            if not ready:
                return []
            data = self._ser.read(max(1, self._ser.in_waiting))
            if not data:
                continue
            if self.soft_parity:
                data, bad = strip_parity(data, self.soft_parity)
                self.counters.parity_errors += bad
                self.counters.garbage_bytes += bad
            garbage = self.parser.garbage_bytes
            frames = self.parser.feed(data)
            self.counters.garbage_bytes += self.parser.garbage_bytes - garbage
            if frames:
                self.counters.frames += len(frames)
                replies = []
                for frame in frames:
                    try:
                        replies.append(self.protocol.decode(frame, self.unit))
                    except ValueError:  # framing accepted it but its content makes no sense: garbage
                        self.counters.garbage_bytes += len(frame)
                if not replies:
                    continue
                self.counters.errors += sum(r.kind == "error" for r in replies)
                self.counters.readings += sum(r.kind == "reading" for r in replies)
                return replies

    def transact(self, command: Command, timeout_s: float,
                 on_other: Callable[[Reply], None] | None = None) -> Reply | None:
        """Send ``command`` and return its answer, or ``None`` (counted as a timeout) if none came in time.

        Frames that are not the answer (continuous readings, late answers) go to ``on_other``.
        """
        request = self.protocol.request(command)
        self._drop_partial()
        self.counters.requests += 1
        self.send(request)
        deadline = time.monotonic() + timeout_s
        while True:
            replies = self.read_frames(deadline - time.monotonic())
            if not replies:
                self.counters.timeouts += 1
                return None
            answer = None
            for reply in replies:
                if answer is None and self.protocol.answers(command, reply):
                    answer = reply
                elif on_other is not None:
                    on_other(reply)
            if answer is not None:
                return answer
