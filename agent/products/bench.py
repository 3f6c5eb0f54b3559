"""``store-agent bench scale``: stable weight → candidates published, end to end through the pty simulator.

A simulated scale (real protocol bytes on a pseudo-terminal, the real serial driver and stability detector)
feeds the weighing service; the tray camera is a still image; the gallery holds ``plus × per_plu`` entries
(random unit vectors, so the search cost matches a full gallery). The latency of each weighing runs from the
scale reading that completed the stability window to the candidates payload handed to the local bus.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config.products_models import ProductsConfig
from agent.products.rig import SimulatedScale
from agent.products.service import WeighingService
from agent.products.store import transaction
from agent.store import connect, open_store
from sync.outbox import Outbox


def _tray_image(path: Path, source: Path | None) -> Path:
    if source is not None:
        return source
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), image)
    return path


def bench_scale(model_dir: Path, *, mirror: Path | None = None, weighings: int = 20, protocol: str = "mt-sics",
                image: Path | None = None, plus: int = 100, per_plu: int = 20, threads: int = 2) -> dict[str, Any]:
    """Run ``weighings`` place/remove cycles; p50/p95 of stable → candidates in ms."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        db_path = open_store(work / "data")
        tray = _tray_image(work / "tray.png", image)
        cfg = ProductsConfig(cameras=[{"scale": "bench", "url": str(tray)}], threads=threads)
        outbox = Outbox(db_path, store_id="bench", boot_id="bench", priority_for=lambda s: 1, connect=connect)
        service = WeighingService(cfg, db_path=db_path, outbox=outbox, model_dir=model_dir, mirror=mirror)
        stop = threading.Event()
        worker = threading.Thread(target=service.run, args=(stop,), name="bench-products", daemon=True)
        worker.start()
        if not service.ready.wait(60):
            raise RuntimeError("the weighing service did not start")
        rng = np.random.default_rng(1)
        conn = connect(db_path)
        with transaction(conn):
            for p in range(plus):
                for v in rng.normal(size=(per_plu, service.recognizer.gallery.dim)).astype(np.float32):
                    service.repo.enrol(conn, f"{1000 + p}", v, source="bench", force=True)
        conn.close()
        try:
            with SimulatedScale(service.on_scale_event, scale="bench", protocol=protocol) as rig:
                done = 0
                for i in range(weighings):
                    seq = rig.last_seq
                    rig.place(0.2 + 0.05 * (i % 10))
                    if rig.wait_for("stable", after=seq, timeout=5) is None:
                        break
                    deadline = time.monotonic() + 5
                    while service.counts["candidates"] <= done and time.monotonic() < deadline:
                        time.sleep(0.005)
                    done = service.counts["candidates"]
                    seq = rig.last_seq
                    rig.clear()
                    rig.wait_for("removed", after=seq, timeout=5)
        finally:
            stop.set()
            worker.join(timeout=10)
        lat = np.asarray(service.latencies_ms, dtype=np.float64)
        return {"p50_stable_to_candidates_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "p95_stable_to_candidates_ms": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
                "weighings": int(lat.size), "max_stable_to_candidates_ms": round(float(lat.max()), 2) if lat.size
                else None, "protocol": protocol, "gallery_entries": plus * per_plu,
                "embedder": service.space()[0], "threads": threads}
