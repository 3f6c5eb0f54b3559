"""A simulated self-service scale wired to a listener: pty simulator → real serial driver → stability detector
→ ``listener(event)``. Used by ``store-agent bench scale``, the end-to-end test and anywhere a scale is needed
without hardware; the bytes on the pseudo-terminal are the real protocol's.

Example:
    >>> events = []
    >>> with SimulatedScale(events.append, protocol="mt-sics") as rig:   # doctest: +SKIP
    ...     rig.place(0.412); rig.wait_for("stable", timeout=3)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from devices.scale.driver import DriverSettings, ScaleDriver
from devices.scale.sim.pty_sim import ScaleSimulator
from devices.scale.stability import ScaleEvent, StabilityDetector, StabilitySettings


class SimulatedScale:
    """One simulated scale named ``scale`` whose events go to ``listener`` (on the driver's thread)."""

    def __init__(self, listener: Callable[[ScaleEvent], Any], *, scale: str = "s1", protocol: str = "mt-sics",
                 poll_interval_s: float = 0.05, window_s: float = 0.3, tolerance_kg: float = 0.002) -> None:
        self.scale = scale
        self.listener = listener
        self.sim = ScaleSimulator(protocol, motion_jitter_kg=0.0)
        self.protocol = protocol
        self.poll_interval_s = poll_interval_s
        self.detector = StabilityDetector(StabilitySettings(window_s=window_s, tolerance_kg=tolerance_kg),
                                          scale=scale)
        self.events: list[ScaleEvent] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.driver: ScaleDriver | None = None

    def start(self) -> SimulatedScale:
        port = self.sim.start()
        self.driver = ScaleDriver(DriverSettings(port=port, protocol=self.protocol,
                                                 poll_interval_s=self.poll_interval_s), self._on_reading)
        self._thread = threading.Thread(target=self.driver.run, args=(self._stop,), name=f"rig-{self.scale}",
                                        daemon=True)
        self._thread.start()
        return self

    def _on_reading(self, reading: Any, t: float) -> None:
        for event in self.detector.update(reading, t):
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
            self.listener(event)

    def place(self, weight_kg: float) -> None:
        """Put ``weight_kg`` on the platter (settles at once; the detector needs its window to call it stable)."""
        self.sim.set_weight(weight_kg)

    def clear(self) -> None:
        """Empty the platter."""
        self.sim.set_weight(0.0)

    def wait_for(self, kind: str, *, after: int = 0, timeout: float = 5.0) -> ScaleEvent | None:
        """The first event of ``kind`` with ``seq > after``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((e for e in self.events if e.kind == kind and e.seq > after), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._cond.wait(remaining)

    @property
    def last_seq(self) -> int:
        with self._cond:
            return self.events[-1].seq if self.events else 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self.sim.stop()

    def __enter__(self) -> SimulatedScale:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
