"""Cold chain and label health: fridge-group temperature alarms with a delay and hysteresis, battery-low and
label-offline alerts. Pure logic over label rows; the component persists alarms and sends them to the cloud.

A fridge group's temperature is the median of its labels' latest readings (labels silent for longer than
``offline_after_s`` do not vote), so one faulty sensor neither raises nor hides an alarm. The alarm fires when
the median has stayed above ``max_c`` for ``alarm_after_min`` minutes and clears once it drops below
``max_c - hysteresis_c``. A battery-low alert clears ``BATTERY_HYSTERESIS_MV`` above its threshold.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.esl.state import LabelRow


#: A battery-low alert clears only once the label reports this much above the threshold (no flapping).
BATTERY_HYSTERESIS_MV = 100


@dataclass(frozen=True, slots=True)
class FridgeRule:
    name: str
    max_c: float
    alarm_after_s: float
    hysteresis_c: float


@dataclass(slots=True)
class AlarmChange:
    """An alarm raised (``active``) or cleared; ``key`` = ``kind:subject``."""

    kind: str  # cold_chain | battery_low | label_offline
    subject: str
    active: bool
    at: float
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


class AlertMonitor:
    """Evaluates alarms; ``active`` (key → since) is the persisted state, ``above_since`` the pending delays."""

    def __init__(self, rules: list[FridgeRule], *, battery_low_mv: int, offline_after_s: float,
                 active: dict[str, float] | None = None) -> None:
        self.rules = {r.name: r for r in rules}
        self.battery_low_mv = battery_low_mv
        self.offline_after_s = offline_after_s
        self.active: dict[str, float] = dict(active or {})
        self.above_since: dict[str, float] = {}

    def group_readings(self, labels: Iterable[LabelRow], now: float) -> dict[str, dict[str, Any]]:
        """Per fridge group: median/min/max of fresh readings and how many labels voted."""
        temps: dict[str, list[float]] = {}
        for row in labels:
            if (row.fridge_group and row.temperature_c is not None and row.last_seen is not None
                    and now - row.last_seen <= self.offline_after_s):
                temps.setdefault(row.fridge_group, []).append(row.temperature_c)
        return {g: {"group": g, "median_c": statistics.median(v), "min_c": min(v), "max_c": max(v), "labels": len(v)}
                for g, v in temps.items()}

    def evaluate(self, labels: list[LabelRow], now: float) -> list[AlarmChange]:
        """Alarm changes since the last call."""
        changes: list[AlarmChange] = []
        readings = self.group_readings(labels, now)
        for name, rule in self.rules.items():
            reading = readings.get(name)
            if reading is None:
                continue
            key = f"cold_chain:{name}"
            median = reading["median_c"]
            detail = {**reading, "threshold_c": rule.max_c, "hysteresis_c": rule.hysteresis_c}
            if key in self.active:
                if median < rule.max_c - rule.hysteresis_c:
                    changes.append(self._set(AlarmChange("cold_chain", name, False, now, detail)))
                    self.above_since.pop(key, None)
            elif median > rule.max_c:
                since = self.above_since.setdefault(key, now)
                if now - since >= rule.alarm_after_s:
                    changes.append(self._set(AlarmChange("cold_chain", name, True, now,
                                                         {**detail, "above_since": since})))
            else:
                self.above_since.pop(key, None)
        for row in labels:
            # Cell voltage sags with cold and with each radio burst: once low, it must recover past a band.
            limit = self.battery_low_mv + (BATTERY_HYSTERESIS_MV if f"battery_low:{row.mac}" in self.active else 0)
            low = row.battery_mv is not None and row.battery_mv < limit
            changes += self._flag("battery_low", row.mac, low, now, {"battery_mv": row.battery_mv, "plu": row.plu,
                                                                      "threshold_mv": self.battery_low_mv})
            offline = row.last_seen is not None and now - row.last_seen > self.offline_after_s
            changes += self._flag("label_offline", row.mac, offline, now, {"last_seen": row.last_seen,
                                                                           "plu": row.plu})
        return changes

    def _flag(self, kind: str, subject: str, on: bool, now: float, detail: dict[str, Any]) -> list[AlarmChange]:
        if on == (f"{kind}:{subject}" in self.active):
            return []
        return [self._set(AlarmChange(kind, subject, on, now, detail))]

    def _set(self, change: AlarmChange) -> AlarmChange:
        if change.active:
            self.active[change.key] = change.at
        else:
            self.active.pop(change.key, None)
        return change
