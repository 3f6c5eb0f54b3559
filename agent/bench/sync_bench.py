"""``store-agent bench sync``: outbox enqueue latency under live draining, backlog drain rate, memory.

Phase 1 offers ``rate`` msg/s of single-message ``enqueue`` calls (the worst case: one fsync each) while the
sync client drains to the broker, and reports latency percentiles and the CPU the process used (cores).
Phase 2 builds an offline backlog of ``backlog`` messages, then connects and times the drain; RSS is
sampled throughout and its growth over the phase-1 baseline reported.
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from agent.broker import LocalBroker
from agent.config import parse_broker_url
from agent.store import connect, open_store
from sync.client import SyncClient
from sync.envelope import new_msg_id
from sync.outbox import Outbox, OutboxItem
from sync.settings import SyncSettings

_BODY = {"kind": "bench", "camera": "entrance-1", "in": 3, "out": 2, "occupancy": 17.5, "zones": [1, 2, 3]}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _RssSampler(threading.Thread):
    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.peak = process.memory_info().rss
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.1):
            self.peak = max(self.peak, self.process.memory_info().rss)


def run_sync_bench(*, rate: float = 500.0, backlog: int = 100_000, seconds: float = 10.0,
                   broker_url: str | None = None, workdir: Path | None = None) -> dict[str, Any]:
    """Run both phases and return the figures (keys are a stable contract)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="store-agent-bench-"))
    broker = None
    if broker_url is None:
        broker = LocalBroker(workdir=workdir).start()
        broker_url = broker.url
    address = parse_broker_url(broker_url)
    db = open_store(workdir / "agent")
    outbox = Outbox(db, store_id="bench-store", boot_id=new_msg_id(), priority_for=lambda s: 1,
                    max_messages=10 * max(backlog, 1), connect=connect)
    settings = SyncSettings(host=address.host, port=address.port, require_cloud_ack=False,
                            drain_rate_msgs_per_s=0, client_id="store-agent-bench")
    process = psutil.Process(os.getpid())
    try:
        latencies, cpu_cores, achieved = _latency_phase(outbox, settings, rate, seconds, process)
        drain_rate, rss_growth = _backlog_phase(outbox, settings, backlog, process)
    finally:
        outbox.close()
        if broker is not None:
            broker.stop()
    latencies.sort()
    return {
        "enqueue_p50_ms": round(_percentile(latencies, 0.50), 3),
        "enqueue_p99_ms": round(_percentile(latencies, 0.99), 3),
        "enqueue_max_ms": round(latencies[-1], 3) if latencies else None,
        "offered_rate": rate,
        "achieved_rate": round(achieved, 1),
        "cpu_cores": round(cpu_cores, 3),
        "backlog": backlog,
        "drain_msgs_per_s": round(drain_rate, 1),
        "rss_growth_mb": round(rss_growth, 1),
        "broker": broker_url,
    }


def _latency_phase(outbox: Outbox, settings: SyncSettings, rate: float, seconds: float,
                   process: psutil.Process) -> tuple[list[float], float, float]:
    client = SyncClient(settings, outbox, None, store_id="bench-store", boot_id=outbox.boot_id)
    stop = threading.Event()
    sync_thread = threading.Thread(target=client.run, args=(stop,), daemon=True)
    sync_thread.start()
    _wait(lambda: client.status()["connected"], 10)
    latencies: list[float] = []
    interval = 1.0 / rate
    cpu0 = process.cpu_times()
    t0 = time.perf_counter()
    next_at = t0
    end = t0 + seconds
    while (now := time.perf_counter()) < end:
        if now < next_at:
            time.sleep(next_at - now)
        start = time.perf_counter()
        outbox.enqueue("telemetry/bench", _BODY)
        latencies.append((time.perf_counter() - start) * 1000)
        next_at += interval
    wall = time.perf_counter() - t0
    cpu1 = process.cpu_times()
    _wait(lambda: outbox.depth() == 0, 30)
    stop.set()
    sync_thread.join(10)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return latencies, cpu / wall, len(latencies) / wall


def _backlog_phase(outbox: Outbox, settings: SyncSettings, backlog: int,
                   process: psutil.Process) -> tuple[float, float]:
    gc.collect()
    baseline = process.memory_info().rss
    sampler = _RssSampler(process)
    sampler.start()
    batch = [OutboxItem("telemetry/bench", _BODY)] * 500
    for start in range(0, backlog, 500):
        outbox.enqueue_many(batch[: min(500, backlog - start)])
    client = SyncClient(settings, outbox, None, store_id="bench-store", boot_id=outbox.boot_id)
    stop = threading.Event()
    t0 = time.perf_counter()
    sync_thread = threading.Thread(target=client.run, args=(stop,), daemon=True)
    sync_thread.start()
    _wait(lambda: outbox.depth() == 0, 600, interval=0.05)
    elapsed = time.perf_counter() - t0
    stop.set()
    sync_thread.join(10)
    sampler.stop_event.set()
    sampler.join(1)
    return backlog / elapsed, (sampler.peak - baseline) / 2**20


def _wait(predicate, timeout_s: float, interval: float = 0.1) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
