"""End to end over real pseudo-terminals: driver ↔ simulator for each protocol, with faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devices.scale.driver import DriverSettings, ScaleDriver, ScaleError
from devices.scale.reading import Reading, to_kg
from devices.scale.sim import Faults, ScaleSimulator

PROTOCOLS = ["toledo8217", "mt-sics", "scp01"]


def expected_kg(protocol: str, kg: float) -> float:
    # SCP-01 simulator runs in lb with 0.01 lb display resolution
    return to_kg(round(kg / 0.45359237, 2), "lb") if protocol == "scp01" else kg


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@contextmanager
def running(sim: ScaleSimulator, **kw) -> Iterator[tuple[ScaleDriver, list[Reading]]]:
    readings: list[Reading] = []
    settings = DriverSettings(port=sim.path, protocol=sim.protocol, poll_interval_s=kw.pop("poll", 0.03),
                              reply_timeout_s=kw.pop("timeout", 0.2), reconnect_min_s=0.05, reconnect_max_s=0.3,
                              **kw)
    driver = ScaleDriver(settings, lambda r, t: readings.append(r))
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield driver, readings
    finally:
        stop.set()
        thread.join(3)
        assert not thread.is_alive()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_driver_reads_the_weight_and_tares(protocol: str) -> None:
    with ScaleSimulator(protocol) as sim:
        sim.set_weight(0.412)
        with running(sim, timeout=1.0) as (driver, readings):
            assert wait_until(lambda: len(readings) >= 3)
            assert readings[-1].weight_kg == pytest.approx(expected_kg(protocol, 0.412), abs=1e-6)
            driver.command("tare")
            assert wait_until(lambda: readings[-1].weight_kg == 0.0)
            assert readings[-1].net or protocol == "mt-sics"  # MT-SICS lines carry no net flag
            sim.set_weight(5.0)
            with pytest.raises(ScaleError):
                driver.command("zero")  # 5 kg is outside the ±2 % zero range: refused by the scale
            sim.set_weight(0.1)
            driver.command("zero")
            assert wait_until(lambda: readings[-1].weight_kg == 0.0 and not readings[-1].net)
            c = driver.counters
            assert c.garbage_bytes == 0 and c.timeouts == 0 and c.frames == c.requests


def test_toledo8217_in_motion_reports_status_only() -> None:
    with ScaleSimulator("toledo8217") as sim:
        sim.set_weight(0.8, motion=True)
        with running(sim) as (_, readings):
            assert wait_until(lambda: len(readings) >= 3)
            assert all(r.weight_kg is None and r.motion for r in readings)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_and_partial_frames_are_counted_and_never_misread(protocol: str) -> None:
    faults = Faults(garbage_rate=0.4, partial_rate=0.15)
    with ScaleSimulator(protocol, faults=faults, seed=7) as sim:
        sim.set_weight(1.234)
        with running(sim, timeout=0.1) as (driver, readings):
            assert wait_until(lambda: len(readings) >= 40 and sim.stats["partial_frames"] >= 3, timeout=15)
    want = expected_kg(protocol, 1.234)
    assert all(r.weight_kg == pytest.approx(want, abs=1e-6) for r in readings)
    c = driver.counters
    assert c.garbage_bytes > 0 and c.timeouts >= 1
    assert c.partial_frames >= 1  # a cut-short reply is held, then dropped at the next request
    assert sim.stats["garbage_bytes"] > 0


@pytest.mark.parametrize("protocol", ["mt-sics", "scp01"])
def test_unplug_replug_reconnects_on_the_same_path(protocol: str, tmp_path: Path) -> None:
    with ScaleSimulator(protocol, link=tmp_path / "ttyUSB-scale") as sim:
        sim.set_weight(0.5)
        with running(sim) as (driver, readings):
            assert wait_until(lambda: len(readings) >= 3)
            first_pts = sim._pts
            sim.unplug(replug_after_s=0.6)
            assert wait_until(lambda: not driver.connected, timeout=2)
            n = len(readings)
            assert wait_until(lambda: driver.connected and len(readings) > n + 3, timeout=5)
            c = driver.counters
            assert c.disconnects >= 1 and c.reconnects >= 1
            assert sim._pts != first_pts or Path(sim.path).exists()
            assert readings[-1].weight_kg == pytest.approx(expected_kg(protocol, 0.5), abs=1e-6)


def test_a_scale_that_stops_answering_times_out_and_recovers() -> None:
    with ScaleSimulator("toledo8217") as sim:
        sim.set_weight(0.3)
        with running(sim, timeout=0.1) as (driver, readings):
            assert wait_until(lambda: len(readings) >= 2)
            sim.mute(0.8)
            assert wait_until(lambda: driver.counters.timeouts >= 3, timeout=3)
            n = len(readings)
            assert wait_until(lambda: len(readings) > n + 2, timeout=4)
            assert driver.counters.reconnects >= 1 and driver.last_error == ""


def test_missing_port_backs_off_then_connects() -> None:
    missing = "/nonexistent/ttyUSB9"
    driver = ScaleDriver(DriverSettings(port=missing, protocol="mt-sics", reconnect_min_s=0.05,
                                        reconnect_max_s=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(0.4)
    stop.set()
    thread.join(2)
    assert not driver.connected and "cannot open" in driver.last_error
    with pytest.raises(ScaleError):
        driver.command("zero")


def test_mtsics_continuous_output_needs_no_polling() -> None:
    with ScaleSimulator("mt-sics", continuous_interval_s=0.05) as sim:
        sim.set_weight(0.75)
        with running(sim, continuous=True) as (driver, readings):
            assert wait_until(lambda: len(readings) >= 15)
            assert sim.stats["requests"] <= 2  # one SIR (maybe split), then it streams
            assert readings[-1].weight_kg == 0.75
            driver.command("tare")
            assert wait_until(lambda: readings[-1].weight_kg == 0.0)  # streaming resumed after the command


def test_simulated_line_timing_at_9600_baud() -> None:
    from devices.scale.bench import round_trip

    fast = round_trip("toledo8217", 20)
    slow = round_trip("toledo8217", 5, line_baudrate=9600)
    # 'W' (1 character) + STX ddd.ddd CR (9 characters), 10 bits each at 9600 bit/s = 10.4 ms
    assert slow["answered"] == 5 and slow["p50_ms"] >= 10.4
    assert fast["answered"] == 20 and fast["p50_ms"] < slow["p50_ms"]


def test_odd_frames_from_the_scale_never_stop_the_driver() -> None:
    with ScaleSimulator("mt-sics") as sim:
        sim.set_weight(0.2)
        with running(sim) as (driver, readings):
            assert wait_until(lambda: len(readings) >= 2)
            sim.inject(b"S S    2.000 ct\r\nES\r\n\x00\xff\xfeS S 12")  # carats, an error, noise, a fragment
            n = len(readings)
            assert wait_until(lambda: len(readings) > n + 5)
            assert any(r.faults == ("unknown_unit:ct",) for r in readings)
            assert readings[-1].weight_kg == 0.2 and driver.connected


def test_bad_settings_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="unit"):
        ScaleDriver(DriverSettings(port="/dev/null", protocol="toledo8217", unit="stone"))
    with pytest.raises(ValueError, match="continuous"):
        ScaleDriver(DriverSettings(port="/dev/null", protocol="scp01", continuous=True))
    with pytest.raises(ValueError, match="protocol"):
        ScaleDriver(DriverSettings(port="/dev/null", protocol="cas"))


def test_delayed_and_dropped_replies() -> None:
    from devices.scale import get_protocol
    from devices.scale.link import ScaleLink

    with ScaleSimulator("scp01", faults=Faults(delay_s=0.05, drop_rate=0.3), seed=3) as sim:
        sim.set_weight(0.5)
        link = ScaleLink(sim.path, get_protocol("scp01"))
        link.open()
        times, answers = [], 0
        for _ in range(12):
            t0 = time.monotonic()
            reply = link.transact("weight", 0.3)
            if reply is not None:
                answers += 1
                times.append(time.monotonic() - t0)
        link.close()
    dropped = sim.stats["dropped"]
    assert dropped >= 1 and answers == 12 - dropped and link.counters.timeouts == dropped
    assert min(times) >= 0.05  # never faster than the scale's delay
