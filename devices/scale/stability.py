"""Turn a stream of readings into the few events a self-service scale cares about.

``placed`` when something first weighs at least ``min_weight_kg``; ``stable`` when the scale reports no motion
*and* every reading for ``window_s`` stayed within ``±tolerance_kg`` (once per plateau: adding an item makes a
new ``stable`` after it settles); ``removed`` when the weight has stayed below ``min_weight_kg`` for
``window_s``. ``overload`` and ``negative`` are reported once on entering those states and suppress ``stable``;
``zeroed``/``tared``/``tare_cleared`` come from :meth:`StabilityDetector.note_command` and re-arm the detector.

>>> d = StabilityDetector(StabilitySettings(window_s=0.5, tolerance_kg=0.002, min_weight_kg=0.01))
>>> kinds = []
>>> for t, w, motion in [(0, 0.0, False), (0.1, 0.30, True), (0.2, 0.41, True), (0.3, 0.412, False),
...                      (0.5, 0.413, False), (0.8, 0.412, False), (1.0, 0.0, False), (1.6, 0.0, False)]:
...     kinds += [e.kind for e in d.update(Reading(weight_kg=w, motion=motion), t)]
>>> kinds
['placed', 'stable', 'removed']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from devices.scale.reading import Reading

EventKind = Literal["placed", "stable", "removed", "overload", "negative", "zeroed", "tared", "tare_cleared"]


@dataclass(frozen=True)
class StabilitySettings:
    """When a weight counts as stable, and what counts as "something on the scale"."""

    window_s: float = 0.5
    tolerance_kg: float = 0.002
    min_weight_kg: float = 0.010


@dataclass(frozen=True)
class ScaleEvent:
    """One event of a scale. ``mono`` is the ``time.monotonic()`` of the reading that caused it (latency
    measurements start there); ``ts`` is wall-clock seconds."""

    kind: EventKind
    weight_kg: float | None
    ts: float
    mono: float
    net: bool = False
    scale: str = ""
    seq: int = 0
    reading: Reading | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-able form (what ``events/scale`` carries)."""
        return {"scale": self.scale, "event": self.kind, "weight_kg": self.weight_kg, "net": self.net,
                "ts": round(self.ts, 3), "seq": self.seq}


class StabilityDetector:
    """Stateful, single-threaded: feed every reading with its monotonic time to :meth:`update`."""

    def __init__(self, settings: StabilitySettings, *, scale: str = "",
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.scale = scale
        self._wall = wall
        self._seq = 0
        self.loaded = False
        self.last_weight: float | None = None
        self.stable_weight: float | None = None
        self._overload = False
        self._negative = False
        self._below_since: float | None = None
        self._run_start: float | None = None
        self._run_ref = 0.0
        self._run_sum = 0.0
        self._run_n = 0

    @property
    def stable(self) -> bool:
        """A ``stable`` event was emitted for the current plateau and nothing moved since."""
        return self.stable_weight is not None and self._run_start is not None

    def _event(self, kind: EventKind, weight: float | None, t: float, reading: Reading | None) -> ScaleEvent:
        self._seq += 1
        return ScaleEvent(kind, None if weight is None else round(weight, 6), self._wall(), t,
                          net=bool(reading and reading.net), scale=self.scale, seq=self._seq, reading=reading)

    def _break_run(self) -> None:
        self._run_start = None

    def update(self, reading: Reading, t: float) -> list[ScaleEvent]:
        """Feed one reading taken at monotonic time ``t``; return the events it causes (usually none)."""
        s = self.settings
        events: list[ScaleEvent] = []
        if reading.overload:
            if not self._overload:
                events.append(self._event("overload", None, t, reading))
            self._overload = True
            self._break_run()
            return events
        self._overload = False
        w = reading.weight_kg
        negative = reading.underload or (w is not None and w < -s.tolerance_kg)
        if negative and not self._negative:
            events.append(self._event("negative", w, t, reading))
        self._negative = negative
        if w is None and not negative:  # status only (e.g. Toledo 8217 in motion): nothing to measure
            self._break_run()
            return events
        self.last_weight = w
        above = not negative and w is not None and w >= s.min_weight_kg
        if above:
            self._below_since = None
            if not self.loaded:
                self.loaded = True
                self.stable_weight = None
                events.append(self._event("placed", w, t, reading))
        elif self.loaded:
            if self._below_since is None:
                self._below_since = t
            if t - self._below_since >= s.window_s:
                self.loaded = False
                self.stable_weight = None
                self._below_since = None
                events.append(self._event("removed", w, t, reading))
        if w is None or reading.motion or negative:
            self._break_run()
            return events
        if self._run_start is None or abs(w - self._run_ref) > s.tolerance_kg:
            self._run_start, self._run_ref, self._run_sum, self._run_n = t, w, w, 1
            if s.window_s > 0:
                return events
        else:
            self._run_sum += w
            self._run_n += 1
        if above and t - self._run_start >= s.window_s:
            mean = self._run_sum / self._run_n
            if self.stable_weight is None or abs(mean - self.stable_weight) > s.tolerance_kg:
                self.stable_weight = mean
                events.append(self._event("stable", mean, t, reading))
        return events

    def note_command(self, kind: Literal["zeroed", "tared", "tare_cleared"], t: float,
                     weight_kg: float | None = None) -> ScaleEvent:
        """Record that the scale was zeroed/tared: the display jumps, so start over without a ``removed``."""
        self.loaded = False
        self.stable_weight = None
        self._below_since = None
        self._negative = False
        self._break_run()
        return self._event(kind, weight_kg, t, None)
