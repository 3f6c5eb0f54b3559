"""Driver figures over real pseudo-terminals (``store-agent bench scale-link``): request→reading round trip
(as fast as the pty, and with the character times of a 9600 baud line),
readings under injected garbage and cut-short frames, time to recover after an unplug, time from the end of
motion to the ``stable`` event."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from devices.scale import get_protocol
from devices.scale.driver import DriverSettings, ScaleDriver
from devices.scale.link import ScaleLink
from devices.scale.reading import Reading
from devices.scale.sim import Faults, ScaleSimulator
from devices.scale.stability import StabilityDetector, StabilitySettings


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else 0.0


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.002)
    return cond()


def _run_driver(sim: ScaleSimulator, on_reading: Callable[[Reading, float], None], **kw: Any):
    settings = DriverSettings(port=sim.path, protocol=sim.protocol, poll_interval_s=kw.pop("poll", 0.02),
                              reply_timeout_s=kw.pop("timeout", 0.1), reconnect_min_s=0.05, reconnect_max_s=0.5)
    driver = ScaleDriver(settings, on_reading)
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)
    thread.start()
    return driver, stop, thread


def round_trip(protocol: str, polls: int, line_baudrate: int = 0) -> dict[str, Any]:
    """Back-to-back weight requests on one open port (``line_baudrate``: simulate the wire's char times)."""
    with ScaleSimulator(protocol, line_baudrate=line_baudrate) as sim:
        sim.set_weight(0.412)
        link = ScaleLink(sim.path, get_protocol(protocol))
        link.open()
        times = []
        t_all = time.perf_counter()
        for _ in range(polls):
            t0 = time.perf_counter()
            reply = link.transact("weight", 0.5)
            if reply is not None:
                times.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - t_all
        link.close()
    return {"p50_ms": _pct(times, 0.5), "p95_ms": _pct(times, 0.95), "max_ms": _pct(times, 1.0),
            "answered": len(times), "polls": polls, "polls_per_s": round(polls / elapsed, 1)}


def under_faults(protocol: str, seconds: float, garbage_rate: float, partial_rate: float) -> dict[str, Any]:
    """Poll for ``seconds`` while the scale prefixes garbage to and cuts short some replies."""
    readings: list[Reading] = []
    with ScaleSimulator(protocol, faults=Faults(garbage_rate=garbage_rate, partial_rate=partial_rate),
                        seed=1) as sim:
        sim.set_weight(1.234)
        expected = None
        driver, stop, thread = _run_driver(sim, lambda r, t: readings.append(r))
        time.sleep(seconds)
        stop.set()
        thread.join(3)
        stats = dict(sim.stats)
    weights = [r.weight_kg for r in readings if r.weight_kg is not None]
    expected = statistics.mode(weights) if weights else None
    c = driver.counters
    return {"readings": len(readings), "wrong_weights": sum(w != expected for w in weights),
            "garbage_bytes_sent": stats["garbage_bytes"], "partial_frames_sent": stats["partial_frames"],
            "garbage_bytes_counted": c.garbage_bytes, "timeouts": c.timeouts, "reconnects": c.reconnects}


def recovery(protocol: str, unplugged_s: float, tmp_link: str) -> dict[str, Any]:
    """Unplug for ``unplugged_s``; time from the new pty appearing to the first reading from it."""
    from pathlib import Path

    seen: list[float] = []
    with ScaleSimulator(protocol, link=Path(tmp_link)) as sim:
        sim.set_weight(0.5)
        driver, stop, thread = _run_driver(sim, lambda r, t: seen.append(t))
        _wait(lambda: len(seen) >= 3, 3)
        sim.unplug()
        _wait(lambda: not driver.connected, 3)
        time.sleep(unplugged_s)
        sim.replug()
        t_replug = time.monotonic()
        ok = _wait(lambda: bool(seen) and seen[-1] > t_replug, 10)
        stop.set()
        thread.join(3)
    return {"recovered": ok, "replug_to_reading_ms": round((seen[-1] - t_replug) * 1000, 1) if ok else None,
            "disconnects": driver.counters.disconnects, "reconnects": driver.counters.reconnects}


def stable_latency(protocol: str, window_s: float, trials: int) -> dict[str, Any]:
    """Time from the scale's last motion report to the ``stable`` event (≈ window + one poll)."""
    out = []
    with ScaleSimulator(protocol) as sim:
        for i in range(trials):
            det = StabilityDetector(StabilitySettings(window_s=window_s))
            stable_at: list[float] = []

            def feed(r: Reading, t: float, det: StabilityDetector = det, stable_at: list[float] = stable_at) -> None:
                stable_at.extend(e.mono for e in det.update(r, t) if e.kind == "stable")

            sim.set_weight(0.3 + 0.1 * i, motion=True)
            driver, stop, thread = _run_driver(sim, feed)
            time.sleep(0.3)
            sim.set_weight(0.3 + 0.1 * i)
            t_settled = time.monotonic()
            _wait(lambda: bool(stable_at), 5)
            stop.set()
            thread.join(3)
            if stable_at:
                out.append((stable_at[0] - t_settled) * 1000)
    return {"window_ms": window_s * 1000, "p50_ms": _pct(out, 0.5), "max_ms": _pct(out, 1.0), "trials": len(out)}


def run_link_bench(protocols: tuple[str, ...] = ("toledo8217", "mt-sics", "scp01"), *, polls: int = 300,
                   fault_seconds: float = 3.0, garbage_rate: float = 0.3, partial_rate: float = 0.1,
                   workdir: str = "/tmp") -> dict[str, Any]:
    """All figures for each protocol."""
    result: dict[str, Any] = {}
    for p in protocols:
        result[p] = {
            "round_trip": round_trip(p, polls),
            "round_trip_9600": round_trip(p, max(10, polls // 10), line_baudrate=9600),
            "faults": under_faults(p, fault_seconds, garbage_rate, partial_rate),
            "recovery": recovery(p, 0.5, f"{workdir}/scale-bench-{p}-{time.monotonic_ns()}"),
            "stable": stable_latency(p, 0.5, 3),
        }
    return {"protocols": result, "garbage_rate": garbage_rate, "partial_rate": partial_rate}
