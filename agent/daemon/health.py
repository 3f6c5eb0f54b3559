"""Health telemetry: the box's own vital signs, published every ``health.interval_s`` on
``telemetry/health`` (priority 2: shed before events when the outbox is full)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from sync.outbox import Outbox

HEALTH_STREAM = "telemetry/health"


class HealthReporter:
    """Component that samples CPU, memory, disk and the agent's own state."""

    name = "health"

    def __init__(self, outbox: Outbox, *, data_dir: Path, interval_s: float,
                 components: Callable[[], list[dict[str, Any]]], boot_id: str, started_at: float) -> None:
        self.outbox = outbox
        self.data_dir = data_dir
        self.interval_s = interval_s
        self.components = components
        self.boot_id = boot_id
        self.started_at = started_at
        self.published = 0
        self._process = psutil.Process(os.getpid())

    def sample(self) -> dict[str, Any]:
        """One health reading."""
        disk = shutil.disk_usage(self.data_dir)
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            cpu = self._process.cpu_percent(None)
        return {
            "boot_id": self.boot_id,
            "uptime_s": round(time.time() - self.started_at, 1),
            "agent_cpu_percent": cpu,
            "agent_rss_mb": round(rss / 2**20, 1),
            "system_cpu_percent": psutil.cpu_percent(None),
            "system_memory_percent": psutil.virtual_memory().percent,
            "disk_free_mb": round(disk.free / 2**20, 1),
            "outbox_depth": self.outbox.depth(),
            "components": {c["name"]: c["state"] for c in self.components()},
        }

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.wait(self.interval_s):
                self.outbox.enqueue(HEALTH_STREAM, self.sample(), schema="health/1")
                self.published += 1
        finally:
            self.outbox.close()

    def status(self) -> dict[str, Any]:
        return {"published": self.published, "interval_s": self.interval_s}
