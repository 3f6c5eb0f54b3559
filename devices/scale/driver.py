"""Keep a scale talking: poll it (or read its continuous output), survive garbage, timeouts and unplugging.

``ScaleDriver.run(stop)`` blocks until ``stop`` is set. Every reading goes to ``on_reading(reading, t_mono)``
on the driver's thread. A port that cannot be opened is retried with exponential backoff; a read/write error
(unplugged USB adapter, closed pseudo-terminal) or ``max_timeouts`` unanswered requests in a row close the port
and reopen it. Counters (frames, garbage bytes, timeouts, disconnects, reconnects…) survive reconnects.
Commands (zero, tare, clear tare) are queued from any thread and executed between polls.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from devices.scale import get_protocol
from devices.scale.link import Counters, Opener, ScaleLink
from devices.scale.protocol import Command
from devices.scale.reading import Reading, Reply, normalise_unit

log = logging.getLogger(__name__)

ReadingCallback = Callable[[Reading, float], None]
CommandCallback = Callable[[str, bool, Reply | None], None]


class ScaleError(RuntimeError):
    """A command could not be carried out (scale offline, no answer, refused or unsupported)."""


class _LinkLost(Exception):
    pass


@dataclass(frozen=True)
class DriverSettings:
    """How to reach and poll one scale. ``None`` serial fields take the protocol's defaults."""

    port: str
    protocol: str
    baudrate: int | None = None
    bytesize: int | None = None
    parity: str | None = None
    stopbits: float | None = None
    unit: str = "kg"
    poll_interval_s: float = 0.1
    continuous: bool = False
    reply_timeout_s: float = 0.5
    max_timeouts: int = 3
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 5.0


@dataclass
class _Pending:
    command: Command
    done: threading.Event
    ok: bool = False
    error: str = ""


class ScaleDriver:
    """Runs one scale on the calling thread; see the module doc."""

    def __init__(self, settings: DriverSettings, on_reading: ReadingCallback | None = None, *,
                 on_command: CommandCallback | None = None, opener: Opener = serial.Serial) -> None:
        self.settings = settings
        self.protocol = get_protocol(settings.protocol)
        normalise_unit(settings.unit)  # ValueError now rather than on the first frame
        if settings.continuous and not self.protocol.continuous_supported:
            raise ValueError(f"protocol {settings.protocol} has no continuous output; poll it instead")
        self.on_reading = on_reading
        self.on_command = on_command
        self.counters = Counters()
        self._opener = opener
        self._commands: queue.Queue[_Pending] = queue.Queue()
        self.connected = False
        self.last_error = ""
        self.last_reading: Reading | None = None
        self.last_reading_at: float | None = None

    # -- public, any thread ------------------------------------------------------------------------
    def command(self, command: Command, timeout_s: float = 3.0) -> None:
        """Ask the scale to ``zero``, ``tare`` or ``clear_tare``; raises :class:`ScaleError` unless it did."""
        if command == "weight":
            raise ValueError("weight is polled by the driver; read last_reading instead")
        self.protocol.request(command)  # ValueError now if the protocol has no such command
        if not self.connected:
            raise ScaleError(f"scale on {self.settings.port} is not connected")
        pending = _Pending(command, threading.Event())
        self._commands.put(pending)
        if not pending.done.wait(timeout_s):
            raise ScaleError(f"{command}: no answer within {timeout_s} s")
        if not pending.ok:
            raise ScaleError(f"{command}: {pending.error or 'refused by the scale'}")

    def status(self) -> dict[str, Any]:
        """Connection, counters and the last reading."""
        r = self.last_reading
        return {"port": self.settings.port, "protocol": self.settings.protocol, "connected": self.connected,
                "last_error": self.last_error, "counters": self.counters.to_dict(),
                "reading": r.to_dict() if r else None,
                "reading_age_s": None if self.last_reading_at is None
                else round(time.monotonic() - self.last_reading_at, 3)}

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Connect, poll and reconnect until ``stop`` is set."""
        s = self.settings
        backoff = s.reconnect_min_s
        had_link = False
        link = ScaleLink(s.port, self.protocol, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity,
                         stopbits=s.stopbits, unit=s.unit, counters=self.counters, opener=self._opener)
        while not stop.is_set():
            try:
                link.open()
            except (OSError, serial.SerialException, ValueError) as exc:
                self._set_error(f"cannot open {s.port}: {exc}")
                self._fail_pending("scale offline")
                stop.wait(backoff)
                backoff = min(backoff * 2, s.reconnect_max_s)
                continue
            if had_link:
                self.counters.reconnects += 1
                log.info("scale reconnected", extra={"port": s.port, "reconnects": self.counters.reconnects})
            had_link = True
            self.connected = True
            try:
                self._serve(link, stop)
                backoff = s.reconnect_min_s
            except (OSError, serial.SerialException, _LinkLost) as exc:
                self.counters.disconnects += 1
                self._set_error(f"link lost: {exc}")
                self._fail_pending("link lost")
                stop.wait(backoff)
                backoff = min(backoff * 2, s.reconnect_max_s) if isinstance(exc, _LinkLost) else s.reconnect_min_s
            finally:
                self.connected = False
                self._close(link)
        self._fail_pending("driver stopped")

    def _close(self, link: ScaleLink) -> None:
        stop_bytes = self.protocol.continuous_stop() if self.settings.continuous else None
        if stop_bytes and link.is_open:
            try:
                link.send(stop_bytes)
            except (OSError, serial.SerialException):
                pass
        link.close()

    def _set_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("scale: %s", message, extra={"port": self.settings.port})
        self.last_error = message

    def _deliver(self, reply: Reply) -> None:
        if reply.kind == "reading" and reply.reading is not None:
            now = time.monotonic()
            self.last_reading, self.last_reading_at = reply.reading, now
            if self.on_reading is not None:
                self.on_reading(reply.reading, now)

    def _serve(self, link: ScaleLink, stop: threading.Event) -> None:
        s = self.settings
        misses = 0
        if s.continuous:
            link.send(self.protocol.continuous_start())
        next_poll = time.monotonic()
        while not stop.is_set():
            self._run_commands(link)
            if s.continuous:
                replies = link.read_frames(s.reply_timeout_s)
                if not replies:
                    self.counters.timeouts += 1
                    link.send(self.protocol.continuous_start())  # a reset scale stops streaming: ask again
                for reply in replies:
                    self._deliver(reply)
                got = bool(replies)
            else:
                reply = link.transact("weight", s.reply_timeout_s, on_other=self._deliver)
                if reply is not None:
                    self._deliver(reply)
                got = reply is not None
            misses = 0 if got else misses + 1
            if misses >= s.max_timeouts:
                raise _LinkLost(f"no answer to {misses} requests in a row")
            if got:
                self.last_error = ""
            if not s.continuous:
                next_poll = max(next_poll + s.poll_interval_s, time.monotonic())
                stop.wait(max(0.0, next_poll - time.monotonic()))

    def _run_commands(self, link: ScaleLink) -> None:
        while True:
            try:
                pending = self._commands.get_nowait()
            except queue.Empty:
                return
            reply = None
            pending.error = "link lost"
            try:
                reply = link.transact(pending.command, self.settings.reply_timeout_s * 2, on_other=self._deliver)
                pending.ok = reply is not None and self.protocol.command_ok(pending.command, reply)
                pending.error = "" if pending.ok else ("no answer" if reply is None
                                                        else f"refused ({reply.code or reply.kind})")
            finally:
                pending.done.set()
            if reply is not None and reply.kind == "reading":
                self._deliver(reply)
            if self.on_command is not None:
                self.on_command(pending.command, pending.ok, reply)
            if self.settings.continuous:
                link.send(self.protocol.continuous_start())

    def _fail_pending(self, reason: str) -> None:
        while True:
            try:
                pending = self._commands.get_nowait()
            except queue.Empty:
                return
            pending.ok, pending.error = False, reason
            pending.done.set()
