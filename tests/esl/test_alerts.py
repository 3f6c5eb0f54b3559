"""Cold-chain alarms (median of a fridge group, delay, hysteresis), battery-low and label-offline alerts."""

from __future__ import annotations

from agent.esl.alerts import AlertMonitor, FridgeRule
from agent.esl.state import LabelRow


def fridge(temps: list[float], now: float, group: str = "dairy") -> list[LabelRow]:
    return [LabelRow(mac=f"M{i}", gateway="gw", label_type="29bwr", fridge_group=group, temperature_c=t,
                     last_seen=now, battery_mv=3000) for i, t in enumerate(temps)]


def monitor() -> AlertMonitor:
    return AlertMonitor([FridgeRule("dairy", max_c=5.0, alarm_after_s=60.0, hysteresis_c=1.0)],
                        battery_low_mv=2600, offline_after_s=300.0)


def test_alarm_fires_only_after_the_delay_and_clears_with_hysteresis() -> None:
    m = monitor()
    assert m.evaluate(fridge([7, 7, 8], 0), 0) == []  # above, but not for 60 s yet
    assert m.evaluate(fridge([7, 7, 8], 59), 59) == []
    raised = m.evaluate(fridge([7, 7, 8], 60), 60)
    assert [(c.kind, c.subject, c.active) for c in raised] == [("cold_chain", "dairy", True)]
    assert raised[0].detail["median_c"] == 7 and raised[0].detail["above_since"] == 0
    assert m.evaluate(fridge([4.5, 4.5, 4.5], 70), 70) == []  # below threshold but inside the hysteresis band
    cleared = m.evaluate(fridge([3.5, 3.9, 3.0], 80), 80)
    assert [(c.subject, c.active) for c in cleared] == [("dairy", False)]


def test_a_dip_resets_the_delay_and_one_bad_sensor_does_not_alarm() -> None:
    m = monitor()
    m.evaluate(fridge([7, 7, 7], 0), 0)
    m.evaluate(fridge([4, 4, 4], 30), 30)  # back in range: the delay starts over
    assert m.evaluate(fridge([7, 7, 7], 80), 80) == []
    m.evaluate(fridge([4, 4, 4], 90), 90)
    assert [c for t in (100, 200, 300) for c in m.evaluate(fridge([30, 4, 4], t), t)] == []  # median 4 °C


def test_battery_low_and_offline_alerts_raise_once_and_clear() -> None:
    m = monitor()
    row = LabelRow(mac="A", gateway="gw", label_type="29bwr", battery_mv=2500, last_seen=0.0)
    assert [(c.kind, c.active) for c in m.evaluate([row], 10)] == [("battery_low", True)]
    assert m.evaluate([row], 20) == []  # no repeat while it stays low
    row.battery_mv = 2900
    assert [(c.kind, c.active) for c in m.evaluate([row], 30)] == [("battery_low", False)]
    assert [(c.kind, c.active) for c in m.evaluate([row], 301)] == [("label_offline", True)]
    row.last_seen = 305.0
    assert [(c.kind, c.active) for c in m.evaluate([row], 306)] == [("label_offline", False)]


def test_active_alarms_survive_a_restart() -> None:
    m = AlertMonitor([FridgeRule("dairy", 5.0, 60.0, 1.0)], battery_low_mv=2600, offline_after_s=300,
                     active={"cold_chain:dairy": 100.0})
    assert m.evaluate(fridge([8, 8], 200), 200) == []  # still active: not raised a second time
    assert [c.active for c in m.evaluate(fridge([2, 2], 210), 210)] == [False]


def test_a_battery_hovering_at_the_threshold_does_not_flap() -> None:
    m = monitor()
    row = LabelRow(mac="B", gateway="gw", label_type="29bwr", battery_mv=2590, last_seen=0.0)
    assert [(c.kind, c.active) for c in m.evaluate([row], 1)] == [("battery_low", True)]
    changes = []
    for t, mv in enumerate([2610, 2595, 2650, 2599, 2690], start=2):  # sags and recovers around 2600 mV
        row.battery_mv = mv
        changes += m.evaluate([row], t)
    assert changes == []
    row.battery_mv = 2700  # clearly recovered (new cells)
    assert [(c.kind, c.active) for c in m.evaluate([row], 10)] == [("battery_low", False)]
