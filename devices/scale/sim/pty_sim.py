"""A scale on a pseudo-terminal: a real tty the driver opens like ``/dev/ttyUSB0``, answered byte for byte
by the protocol's responder, with faults on demand.

>>> sim = ScaleSimulator("mt-sics")
>>> port = sim.start()
>>> import serial
>>> with serial.Serial(port, timeout=1) as s:
...     _ = s.write(b"SI\\r\\n"); s.readline()
b'S S    0.000 kg\\r\\n'
>>> sim.stop()

Faults: ``garbage_rate`` (chance that 1-8 random bytes precede a reply), ``partial_rate`` (chance that only a
prefix of a reply is sent), ``drop_rate`` (chance that a request goes unanswered), ``delay_s`` (latency before
each reply), ``mute()`` (stop answering), ``unplug()``/``replug()`` (close the pty and make a new one; with
``link`` set, the symlink moves to the new pty like ``/dev/serial/by-id`` does), and automatic
``disconnect_every_s``/``disconnect_for_s``. ``line_baudrate`` adds the time characters take on a real line.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.scale import get_protocol
from devices.scale.parity import add_parity, strip_parity
from devices.scale.reading import normalise_unit
from devices.scale.sim.devices import ScaleState, make_responder
from devices.scale.sim.script import WeightScript

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Fault injection settings (rates are probabilities in 0..1)."""

    garbage_rate: float = 0.0
    partial_rate: float = 0.0
    drop_rate: float = 0.0
    delay_s: float = 0.0
    disconnect_every_s: float = 0.0
    disconnect_for_s: float = 1.0


class ScaleSimulator:
    """See the module doc. ``script`` drives the weight; without one, :meth:`set_weight` does."""

    def __init__(self, protocol: str, *, script: WeightScript | None = None, faults: Faults | None = None,
                 unit: str | None = None, capacity_kg: float = 15.0, link: Path | None = None, seed: int = 0,
                 continuous_interval_s: float = 0.1, motion_jitter_kg: float = 0.003,
                 serial_number: str = "0123456789", line_baudrate: int = 0) -> None:
        self.protocol = protocol
        self.script = script
        self.faults = faults or Faults()
        default_unit = "lb" if protocol == "scp01" else "kg"
        unit = normalise_unit(unit or default_unit)
        if unit not in ("kg", "lb", "g"):
            raise ValueError(f"the simulated scale shows kg, lb or g, not {unit!r}")
        self.state = ScaleState(capacity_kg=capacity_kg, unit=unit)
        kwargs: dict[str, Any] = ({"serial_number": serial_number, "interval_s": continuous_interval_s}
                                  if protocol == "mt-sics" else {})
        self.responder = make_responder(protocol, self.state, **kwargs)
        self.link = Path(link) if link else None
        self.line_parity = get_protocol(protocol).serial.parity
        #: 7-bit protocols carry their parity bit in bit 7 on the pty (see devices.scale.parity).
        self.wire_parity: str | None = None
        self.motion_jitter_kg = motion_jitter_kg
        #: When > 0, bytes take as long as on a real line at this rate (10 bits per character for 7E1 and
        #: 8N1): requests arrive and replies leave one character time apart. 0 = as fast as the pty.
        self.line_baudrate = line_baudrate
        self._line_free_at = 0.0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._manual: tuple[float, bool] | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._pts = ""
        self._queue: list[tuple[float, bytes]] = []
        self._mute_until = 0.0
        self._replug_at: float | None = None
        self._next_disconnect: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.stats = {"requests": 0, "replies": 0, "garbage_bytes": 0, "partial_frames": 0, "dropped": 0,
                      "disconnects": 0, "overflow_bytes": 0}

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """What to open: the symlink when ``link`` is set, else the current ``/dev/pts/N``."""
        return str(self.link) if self.link else self._pts

    @property
    def plugged(self) -> bool:
        """The pseudo-terminal exists."""
        return self._master is not None

    def start(self) -> str:
        """Create the pty and start answering; returns :attr:`path`."""
        self._t0 = time.monotonic()
        self._open_pty()
        if self.faults.disconnect_every_s > 0:
            self._next_disconnect = self._t0 + self.faults.disconnect_every_s
        self._thread = threading.Thread(target=self._run, name=f"scale-sim-{self.protocol}", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        """Stop and remove the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._close_pty()

    def __enter__(self) -> ScaleSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (any thread) ----------------------------------------------------------------------
    def set_weight(self, weight_kg: float, motion: bool = False) -> None:
        """Put ``weight_kg`` on the platter (overrides the script from now on)."""
        with self._lock:
            self._manual = (weight_kg, motion)

    def restart_script(self, script: WeightScript | None = None) -> None:
        """Play ``script`` (or the current one) from its beginning now."""
        with self._lock:
            if script is not None:
                self.script = script
            self._manual = None
            self._t0 = time.monotonic()

    def mute(self, seconds: float) -> None:
        """Stop answering (requests are read and ignored) for ``seconds``."""
        self._mute_until = time.monotonic() + seconds

    def inject(self, data: bytes, *, raw: bool = False) -> None:
        """Send bytes now (e.g. a crafted partial frame); ``raw`` skips the wire parity."""
        with self._lock:
            if self.wire_parity and not raw:
                data = add_parity(data, self.wire_parity)
            self._queue.append((0.0, data))

    def unplug(self, replug_after_s: float | None = None) -> None:
        """Close the pty as if the cable were pulled; optionally plug back in after ``replug_after_s``."""
        with self._lock:
            self._close_pty()
            self.stats["disconnects"] += 1
            self._replug_at = None if replug_after_s is None else time.monotonic() + replug_after_s

    def replug(self) -> None:
        """Create a fresh pty (new ``/dev/pts/N``; the symlink follows)."""
        with self._lock:
            self._replug_at = None
            if self._master is None:
                self._open_pty()

    # -- internals ---------------------------------------------------------------------------------
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self.wire_parity = None if self.line_parity == "N" else self.line_parity
        os.set_blocking(master, False)
        self._master, self._slave, self._pts = master, slave, os.ttyname(slave)
        self.responder._buf = b""
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self._pts)
            tmp.replace(self.link)

    def _close_pty(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        self._queue.clear()

    def _update_state(self, now: float) -> None:
        if self._manual is not None:
            weight, motion = self._manual
        elif self.script is not None:
            weight, motion = self.script.at(now - self._t0)
        else:
            weight, motion = self.state.gross_kg, self.state.motion
        if motion:
            weight += self._rng.uniform(-self.motion_jitter_kg, self.motion_jitter_kg) + 0.02 * weight * (
                self._rng.random() - 0.5)
        self.state.gross_kg, self.state.motion = weight, motion

    def _char_time(self, n: int) -> float:
        return n * 10 / self.line_baudrate if self.line_baudrate else 0.0

    def _schedule(self, replies: list[bytes], now: float) -> None:
        f = self.faults
        for reply in replies:
            if now < self._mute_until or (f.drop_rate and self._rng.random() < f.drop_rate):
                self.stats["dropped"] += 1
                continue
            if self.wire_parity:
                reply = add_parity(reply, self.wire_parity)
            if f.garbage_rate and self._rng.random() < f.garbage_rate:
                junk = bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 8)))
                self.stats["garbage_bytes"] += len(junk)
                reply = junk + reply
            if f.partial_rate and self._rng.random() < f.partial_rate:
                reply = reply[: self._rng.randint(1, len(reply) - 1)]
                self.stats["partial_frames"] += 1
            start = max(now + f.delay_s, self._line_free_at)
            self._line_free_at = start + self._char_time(len(reply))
            self._queue.append((self._line_free_at, reply))
            self.stats["replies"] += 1

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except BlockingIOError:
            self.stats["overflow_bytes"] += len(data)
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                self._auto_disconnect(now)
                master = self._master
            if master is None:
                self._stop.wait(0.01)
                continue
            with self._lock:
                next_due = min((due for due, _ in self._queue), default=now + 0.005)
            try:
                ready, _, _ = select.select([master], [], [], min(0.005, max(0.0, next_due - now)))
            except (OSError, ValueError):
                continue
            with self._lock:
                if self._master != master:
                    continue
                now = time.monotonic()
                self._update_state(now)
                if ready:
                    try:
                        data = os.read(master, 1024)
                    except OSError:  # EIO: nobody has the tty open right now
                        data = b""
                    if data and self.wire_parity:
                        data, _ = strip_parity(data, self.wire_parity)
                    if data:
                        self.stats["requests"] += 1
                        self._schedule(self.responder.feed(data, now), now + self._char_time(len(data)))
                self._schedule(self.responder.tick(now), now)
                due = [item for item in self._queue if item[0] <= now]
                self._queue = [item for item in self._queue if item[0] > now]
                for _, data in due:
                    self._write(data)

    def _auto_disconnect(self, now: float) -> None:
        if self._replug_at is not None and now >= self._replug_at:
            self._replug_at = None
            self._open_pty()
        if self._next_disconnect is not None and now >= self._next_disconnect and self._master is not None:
            self._close_pty()
            self.stats["disconnects"] += 1
            self._replug_at = now + self.faults.disconnect_for_s
            self._next_disconnect = now + self.faults.disconnect_every_s + self.faults.disconnect_for_s

