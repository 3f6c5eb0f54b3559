"""Weight scripts for the simulator: what lies on the platter over time.

A script is a list of steps ``(t seconds from start, weight kg, motion)``; each holds until the next. Text
form, one step per line (``#`` comments)::

    0.0  0.000
    1.0  0.300  motion
    1.4  0.412
    4.0  0.000  motion
    4.2  0.000

or JSON: ``[{"t": 0, "weight_kg": 0.0}, {"t": 1.0, "weight_kg": 0.3, "motion": true}, ...]``, or an object
``{"loop": true, "steps": [...]}``.

>>> s = WeightScript.parse("0 0\\n1 0.3 motion\\n1.4 0.412")
>>> s.at(0.5), s.at(1.2), s.at(9)
((0.0, False), (0.3, True), (0.412, False))
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    """From ``t`` on, ``weight_kg`` lies on the scale; ``motion`` while it is being put down or lifted."""

    t: float
    weight_kg: float
    motion: bool = False


class WeightScript:
    """Steps sorted by time; ``loop`` repeats the script after its last step (+ 1 s)."""

    def __init__(self, steps: Sequence[Step], *, loop: bool = False) -> None:
        if not steps:
            raise ValueError("a weight script needs at least one step")
        self.steps = sorted(steps, key=lambda s: s.t)
        self.loop = loop
        self._times = [s.t for s in self.steps]

    @property
    def duration(self) -> float:
        """Time of the last step."""
        return self._times[-1]

    def at(self, t: float) -> tuple[float, bool]:
        """``(weight_kg, motion)`` at ``t`` seconds from the start."""
        if self.loop and t > self.duration:
            t = t % (self.duration + 1.0)
        i = bisect.bisect_right(self._times, t) - 1
        step = self.steps[max(i, 0)] if i >= 0 else Step(0.0, 0.0)
        return step.weight_kg, step.motion

    @classmethod
    def parse(cls, text: str) -> WeightScript:
        """Parse the text or JSON form (see the module doc); ``ValueError`` names the bad line."""
        stripped = text.strip()
        if stripped.startswith(("[", "{")):
            data = json.loads(stripped)
            loop = False
            if isinstance(data, dict):
                loop, data = bool(data.get("loop", False)), data.get("steps", [])
            return cls([Step(float(d["t"]), float(d["weight_kg"]), bool(d.get("motion", False))) for d in data],
                       loop=loop)
        steps = []
        for n, line in enumerate(text.splitlines(), 1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("motion", "stable")):
                raise ValueError(f"script line {n}: expected 't weight_kg [motion]', got {line!r}")
            try:
                steps.append(Step(float(parts[0]), float(parts[1]), len(parts) == 3 and parts[2] == "motion"))
            except ValueError:
                raise ValueError(f"script line {n}: numbers expected, got {line!r}") from None
        return cls(steps)

    @classmethod
    def load(cls, path: Path) -> WeightScript:
        """Read a script file."""
        return cls.parse(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def weighings(cls, weights: Sequence[float], *, start_s: float = 0.5, settle_s: float = 0.4,
                  hold_s: float = 2.0, gap_s: float = 1.0, loop: bool = False) -> WeightScript:
        """A customer putting each weight down (motion for ``settle_s``), leaving it ``hold_s``, lifting it."""
        steps = [Step(0.0, 0.0)]
        t = start_s
        for w in weights:
            steps += [Step(t, 0.6 * w, True), Step(t + settle_s / 2, 1.05 * w, True), Step(t + settle_s, w)]
            t += settle_s + hold_s
            steps += [Step(t, 0.3 * w, True), Step(t + 0.1, 0.0)]
            t += 0.1 + gap_s
        return cls(steps, loop=loop)
