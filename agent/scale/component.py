"""The ``scale-<name>`` component: runs one scale's driver, turns readings into events, publishes them.

Hook API for recognition (and anything else that reacts to the scale)::

    from agent.scale.component import ScaleComponent, ScaleEvent

    def on_event(event: ScaleEvent) -> None:      # runs on the scale's thread: return fast or hand off
        if event.kind == "stable":
            ...  # event.scale, event.weight_kg (kg, net if event.net), event.mono (time.monotonic() of the
                 # reading that completed the stable window: measure latency from here), event.ts (wall)

    ScaleComponent(cfg, outbox, listeners=[on_event])

In the daemon, ``Agent.scale_listeners`` maps each scale name to the list passed here (the same list object,
so listeners appended before or after the component starts are all called). Event kinds: ``placed``,
``stable``, ``removed``, ``overload``, ``negative``, ``zeroed``, ``tared``, ``tare_cleared``.
A listener that raises is logged and counted (``listener_errors``), never stops the scale.

``events/scale`` (to the cloud, at most ``max_events_per_minute``) carries
``{"scale", "event", "weight_kg", "net", "ts", "seq"}``. ``zero()``, ``tare()`` and ``clear_tare()`` may be
called from any thread (they raise :class:`devices.scale.driver.ScaleError` when the scale refuses).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from agent.config.device_models import ScaleConfig
from devices.scale.driver import DriverSettings, ScaleDriver, ScaleError
from devices.scale.reading import Reading, Reply
from devices.scale.stability import ScaleEvent, StabilityDetector, StabilitySettings
from sync.outbox import Outbox

__all__ = ["EVENT_STREAM", "ScaleComponent", "ScaleError", "ScaleEvent", "ScaleListener", "driver_settings"]

log = logging.getLogger(__name__)

EVENT_STREAM = "events/scale"
ScaleListener = Callable[[ScaleEvent], None]
_PUBLISHED = frozenset({"placed", "stable", "removed", "overload", "negative", "zeroed", "tared", "tare_cleared"})
_COMMAND_EVENTS = {"zero": "zeroed", "tare": "tared", "clear_tare": "tare_cleared"}


def driver_settings(cfg: ScaleConfig) -> DriverSettings:
    """The driver's settings for a configured scale."""
    return DriverSettings(port=cfg.port, protocol=cfg.protocol, baudrate=cfg.baudrate, bytesize=cfg.bytesize,
                          parity=cfg.parity, stopbits=cfg.stopbits, unit=cfg.unit,
                          poll_interval_s=cfg.poll_interval_s, continuous=cfg.continuous,
                          reply_timeout_s=cfg.reply_timeout_s)


class ScaleComponent:
    """Supervised component of one scale (see the module doc)."""

    def __init__(self, cfg: ScaleConfig, outbox: Outbox, *, listeners: list[ScaleListener] | None = None,
                 opener: Any = None) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.listeners = listeners if listeners is not None else []
        kwargs = {"opener": opener} if opener is not None else {}
        self.driver = ScaleDriver(driver_settings(cfg), self._on_reading, on_command=self._on_command, **kwargs)
        self.detector = StabilityDetector(
            StabilitySettings(window_s=cfg.stable_window_s, tolerance_kg=cfg.stable_tolerance_kg,
                              min_weight_kg=cfg.min_weight_kg), scale=cfg.name)
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self.event_counts: dict[str, int] = {}
        self.published = 0
        self.suppressed = 0
        self.listener_errors = 0
        self.last_event: ScaleEvent | None = None

    # -- supervisor interface ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Drive the scale until ``stop`` is set."""
        log.info("scale started", extra={"scale": self.cfg.name, "port": self.cfg.port,
                                         "protocol": self.cfg.protocol})
        try:
            self.driver.run(stop)
        finally:
            self.outbox.close()

    def status(self) -> dict[str, Any]:
        """Connection, counters, current weight, stability and event counts."""
        out = self.driver.status()
        d = self.detector
        out.update(scale=self.cfg.name, weight_kg=d.last_weight, loaded=d.loaded, stable=d.stable,
                   stable_weight_kg=None if d.stable_weight is None else round(d.stable_weight, 6),
                   events=dict(self.event_counts), published=self.published, suppressed=self.suppressed,
                   listener_errors=self.listener_errors)
        return out

    # -- commands (any thread) ---------------------------------------------------------------------
    def zero(self) -> None:
        """Zero the scale (empty platter, no motion)."""
        self.driver.command("zero")

    def tare(self) -> None:
        """Tare what lies on the scale (e.g. a container)."""
        self.driver.command("tare")

    def clear_tare(self) -> None:
        """Clear the tare."""
        self.driver.command("clear_tare")

    # -- internals (scale thread) ------------------------------------------------------------------
    def _on_reading(self, reading: Reading, t: float) -> None:
        for event in self.detector.update(reading, t):
            self._emit(event)

    def _on_command(self, command: str, ok: bool, reply: Reply | None) -> None:
        if ok and command in _COMMAND_EVENTS:
            weight = reply.reading.weight_kg if reply is not None and reply.reading is not None else None
            self._emit(self.detector.note_command(_COMMAND_EVENTS[command], time.monotonic(), weight))

    def _emit(self, event: ScaleEvent) -> None:
        self.last_event = event
        self.event_counts[event.kind] = self.event_counts.get(event.kind, 0) + 1
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the scale
                self.listener_errors += 1
                log.exception("scale listener failed", extra={"scale": self.cfg.name, "event": event.kind})
        if event.kind in _PUBLISHED:
            self._publish(event)

    def _publish(self, event: ScaleEvent) -> None:
        now = time.monotonic()
        while self._sent and now - self._sent[0] > 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.cfg.max_events_per_minute:
            self.suppressed += 1
            return
        self._sent.append(now)
        self.outbox.enqueue(EVENT_STREAM, event.to_dict(), event_ts=event.ts)
        self.published += 1
