"""``store-agent bench scale``: stable weight → candidates published, end to end through the pty simulator.

A simulated scale (real protocol bytes on a pseudo-terminal, the real serial driver and stability detector)
feeds the weighing service; the tray camera is a still image; the gallery holds ``plus × per_plu`` entries
(random unit vectors, so the search cost matches a full gallery). The latency of each weighing runs from the
scale reading that completed the stability window to the candidates payload **received by a subscriber of the
local bus** through a throwaway local broker (mosquitto; ``measured_at = "subscriber"``). Without a broker it
stops where the payload is handed to the bus (``measured_at = "publish"``).
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
from agent.products.gallery import Gallery
from agent.products.store import GalleryRepository
from sync.sqlite import transaction
from agent.store import connect, open_store
from sync.outbox import Outbox


def _tray_image(path: Path, source: Path | None) -> Path:
    if source is not None:
        return source
    rng = np.random.default_rng(0)
    image = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), image)
    return path


def _bus_pair(work: Path) -> tuple[Any, Any, Any, list[float]]:
    """(broker, agent-side bus, screen-side bus, arrival latencies in ms) or Nones when no broker starts."""
    from agent.broker import BrokerUnavailable, start_local_broker
    from agent.config import parse_broker_url
    from sync.local_bus import LocalBus

    try:
        (work / "broker").mkdir(parents=True, exist_ok=True)
        broker = start_local_broker(work / "broker")
    except BrokerUnavailable:
        return None, None, None, []
    address = parse_broker_url(broker.url)
    arrivals: list[float] = []
    kw = {"topic_prefix": "store/bench/local", "protocol": broker.protocol}
    screen = LocalBus(address.host, address.port, client_id="bench-screen", **kw)
    screen.subscribe("scale/bench/candidates",
                     lambda suffix, payload: arrivals.append((time.time() - float(payload["ts"])) * 1000.0))
    agent_bus = LocalBus(address.host, address.port, client_id="bench-agent", **kw)
    for bus in (screen, agent_bus):
        bus.start()
    deadline = time.monotonic() + 10
    while not (screen.connected and agent_bus.connected) and time.monotonic() < deadline:
        time.sleep(0.02)
    return broker, agent_bus, screen, arrivals


def bench_scale(model_dir: Path, *, mirror: Path | None = None, weighings: int = 20, protocol: str = "mt-sics",
                image: Path | None = None, plus: int = 100, per_plu: int = 20, threads: int = 2,
                use_broker: bool = True) -> dict[str, Any]:
    """Run ``weighings`` place/remove cycles; p50/p95 of stable → candidates in ms."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        broker, agent_bus, screen, arrivals = _bus_pair(work) if use_broker else (None, None, None, [])
        db_path = open_store(work / "data")
        tray = _tray_image(work / "tray.png", image)
        cfg = ProductsConfig(cameras=[{"scale": "bench", "url": str(tray)}], threads=threads)
        outbox = Outbox(db_path, store_id="bench", boot_id="bench", priority_for=lambda s: 1, connect=connect)
        service = WeighingService(cfg, db_path=db_path, outbox=outbox, model_dir=model_dir, mirror=mirror,
                                  local_bus=agent_bus)
        stop = threading.Event()
        worker = threading.Thread(target=service.run, args=(stop,), name="bench-products", daemon=True)
        worker.start()
        if not service.ready.wait(60):
            raise RuntimeError("the weighing service did not start")
        rng = np.random.default_rng(1)
        conn = connect(db_path)
        repo = GalleryRepository(Gallery(service.recognizer.gallery.dim), service.repo.space)
        with transaction(conn):
            for p in range(plus):
                for v in rng.normal(size=(per_plu, repo.gallery.dim)).astype(np.float32):
                    repo.enrol(conn, f"{1000 + p}", v, source="bench", force=True)
        conn.close()
        service.reload_gallery()
        deadline = time.monotonic() + 30
        while len(service.recognizer.gallery) != plus * per_plu and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            with SimulatedScale(service.on_scale_event, scale="bench", protocol=protocol) as rig:
                done = 0
                for i in range(weighings):
                    seq = rig.last_seq
                    rig.place(0.2 + 0.05 * (i % 10))
                    if rig.wait_for("stable", after=seq, timeout=5) is None:
                        break
                    deadline = time.monotonic() + 5
                    while ((service.counts["candidates"] <= done or (screen is not None and len(arrivals) <= done))
                           and time.monotonic() < deadline):
                        time.sleep(0.005)
                    done = service.counts["candidates"]
                    seq = rig.last_seq
                    rig.clear()
                    rig.wait_for("removed", after=seq, timeout=5)
        finally:
            stop.set()
            worker.join(timeout=10)
            for bus in (screen, agent_bus):
                if bus is not None:
                    bus.close()
            if broker is not None:
                broker.stop()
        lat = np.asarray(arrivals if screen is not None else service.latencies_ms, dtype=np.float64)
        return {"p50_stable_to_candidates_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "p95_stable_to_candidates_ms": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
                "weighings": int(lat.size), "max_stable_to_candidates_ms": round(float(lat.max()), 2) if lat.size
                else None, "measured_at": "subscriber" if screen is not None else "publish",
                "publish_p95_ms": round(float(np.percentile(service.latencies_ms, 95)), 2)
                if service.latencies_ms else None, "protocol": protocol, "gallery_entries": plus * per_plu,
                "embedder": service.space()[0], "threads": threads}
