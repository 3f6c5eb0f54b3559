"""``store-agent bench esl``: rendering throughput, then N price changes delivered through the simulated
OpenEPaperLink AP with a transfer-failure rate, measured from the agent's own records.

The AP simulator runs as a separate process (``store-agent esl simulate-ap``), like a real AP on the LAN, so it
does not share the agent's interpreter. The agent side is the real ``esl-<gateway>`` component (websocket
events, polls, re-pushes) on a fresh SQLite store. Each label gets a new price; a label counts as *confirmed
within 2 cycles* when it confirmed within two check-in intervals of the gateway first accepting its content.

Figures: ``render_labels_per_s`` (devices.esl.render_batch, mixed label types, 2 processes),
``confirmed_fraction`` (within 2 cycles), ``confirmed_total`` (eventually; 1.0 = nothing lost),
``cycles_to_confirm_p99``, ``time_to_shelf_s`` (price change committed → label confirmed; p50/p99).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.config.device_models import EslGatewayConfig
from agent.esl.component import EslGatewayComponent, percentile
from agent.esl.state import LabelRow, save_labels
from agent.pricebook import PriceBook
from agent.pricebook.article import Article
from agent.store import connect, open_store


def start_simulator(labels: int, interval_s: float, failure_rate: float, seed: int,
                    failure_mode: str = "drop") -> tuple[subprocess.Popen, dict]:
    """``store-agent esl simulate-ap`` in a child process; returns it and its JSON banner."""
    cmd = [sys.executable, "-c", "from agent.cli.main import app; app()", "esl", "simulate-ap", "--port", "0",
           "--labels", str(labels), "--interval", str(interval_s), "--failure-rate", str(failure_rate),
           "--seed", str(seed), "--failure-mode", failure_mode, "--quiet-checkins", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        raise RuntimeError("the AP simulator did not start")
    return proc, json.loads(line)


def run_esl_bench(labels: int = 10_000, failure_rate: float = 0.05, interval_s: float = 5.0,
                  render_labels: int | None = None, timeout_s: float = 600.0, seed: int = 1,
                  failure_mode: str = "drop") -> dict[str, Any]:
    """Run the benchmark; see the module doc for the figures."""
    from devices.esl.render_batch import bench_render

    render_rate = bench_render(render_labels or labels, processes=2)
    proc, info = start_simulator(labels, interval_s, failure_rate, seed, failure_mode)
    workdir = Path(tempfile.mkdtemp(prefix="esl-bench-"))
    try:
        return {**_reconcile(info, labels, failure_rate, interval_s, timeout_s, workdir, render_rate),
                "failure_mode": failure_mode}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _reconcile(info: dict[str, Any], n: int, failure_rate: float, interval_s: float, timeout_s: float,
               workdir: Path, render_rate: float) -> dict[str, Any]:
    db = open_store(workdir)
    conn = connect(db, synchronous="NORMAL")
    now = time.time()
    book = PriceBook(conn)
    book.upsert([Article(str(100_000 + i), f"Article {i}", 1.0 + (i % 500) / 100, "piece") for i in range(n)],
                effective_at=now - 60)
    save_labels(conn, [LabelRow(mac=mac, gateway="bench", label_type="29bwr", plu=str(100_000 + i), updated_at=now)
                       for i, mac in enumerate(info["labels"])])
    cfg = EslGatewayConfig(name="bench", url=info["url"], checkin_interval_s=interval_s,
                           retry_timeout_s=3 * interval_s, poll_interval_s=max(30.0, 4 * interval_s),
                           reevaluate_s=3600.0, push_workers=4, request_timeout_s=10.0)
    component = EslGatewayComponent(cfg, db, None, step_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=component.run, args=(stop,), daemon=True)
    t0 = time.time()
    # The price change: every article gets a new price now (what the labels must show).
    book.upsert([Article(str(100_000 + i), f"Article {i}", 2.0 + (i % 700) / 100, "piece") for i in range(n)],
                effective_at=t0)
    thread.start()
    deadline = t0 + timeout_s
    while time.time() < deadline:
        time.sleep(0.5)
        if component.status().get("states", {}).get("idle") == n:
            break
    wall = time.time() - t0
    stop.set()
    thread.join(30)
    rows = conn.execute("SELECT desired_since, accepted_at, confirmed_at, pushes FROM esl_shelf_times"
                        " WHERE superseded = 0").fetchall()
    states = conn.execute("SELECT state, COUNT(*) FROM esl_labels GROUP BY state").fetchall()
    conn.close()
    confirmed = [r for r in rows if r[2] is not None]
    cycles = [(r[2] - r[1]) / interval_s for r in confirmed if r[1] is not None]
    shelf = [r[2] - r[0] for r in confirmed]
    within2 = sum(1 for c in cycles if c <= 2.0)
    return {
        "labels": n, "render_labels_per_s": render_rate,
        "confirmed_fraction": round(within2 / n, 5) if n else 0.0,
        "cycles_to_confirm_p99": _round(percentile(cycles, 0.99)),
        "time_to_shelf_s": {"p50": _round(percentile(shelf, 0.5)), "p99": _round(percentile(shelf, 0.99))},
        "confirmed_total": round(len(confirmed) / n, 5) if n else 0.0,
        "lost": n - len(confirmed),
        "failure_rate": failure_rate, "checkin_interval_s": interval_s, "wall_s": round(wall, 1),
        "pushes": sum(r[3] for r in rows), "max_pushes_per_label": max((r[3] for r in rows), default=0),
        "label_states": dict(states),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
