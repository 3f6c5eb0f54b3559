"""``store-agent bench identity-service``: what one track decision costs end to end (faiss search + encrypted
SQLite writes + outbox event), how long an alert takes to reach a webhook, and how fast ``identity.delete`` takes
effect — over a real store in a temporary directory, with synthetic identities (no face data).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.identity_models import IdentityConfig
from agent.identity import repository as repo
from agent.identity.alerts import AlertDispatcher
from agent.identity.audit import enrol
from agent.identity.crypto import EmbeddingCipher
from sync.sqlite import transaction

DIM = 128


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _noisy(rng: np.random.Generator, base: np.ndarray, noise: float = 0.8) -> np.ndarray:
    g = rng.standard_normal(base.shape).astype(np.float32)
    return base + noise * g / np.linalg.norm(g)


class _Hook(BaseHTTPRequestHandler):
    arrivals: list[float] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).arrivals.append(time.perf_counter())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _populate(db_path: Path, cipher: EmbeddingCipher, n: int, rng: np.random.Generator) -> np.ndarray:
    from agent.store import connect

    people = _unit(rng, n)
    conn = connect(db_path)
    now = time.time()
    with transaction(conn):
        for i, vec in enumerate(people):
            repo.insert_identity(conn, cipher, identity_id=f"v{i:08d}", gallery="visitor", embeddings=[(vec, 1.0)],
                                 last_seen=now, now=now)
    conn.close()
    return people


def run_service_bench(sizes: list[int], *, decisions: int = 100, seed: int = 0) -> dict[str, Any]:
    """Mean ms per decision (new and returning faces) per gallery size, alert→webhook and delete latencies."""
    from agent.identity.service import IdentityService
    from agent.store import open_store
    from sync.envelope import new_msg_id
    from sync.outbox import Outbox

    rng = np.random.default_rng(seed)
    cipher = EmbeddingCipher(os.urandom(32))
    out: dict[str, Any] = {"observe_ms": {}, "load_s": {}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for size in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-identity-") as tmp:
                db_path = open_store(Path(tmp))
                people = _populate(db_path, cipher, size, rng)
                outbox = Outbox(db_path, store_id="bench", boot_id=new_msg_id(), priority_for=lambda s: 1)
                t0 = time.perf_counter()
                svc = IdentityService(IdentityConfig(), db_path, cipher, outbox,
                                      alerts=AlertDispatcher(bus=None, webhook_url=url, webhook_timeout_s=2.0))
                out["load_s"][str(size)] = round(time.perf_counter() - t0, 2)
                ts = time.time() + 7200  # a later visit: returning faces open a new visit (worst case)
                new_ms, ret_ms = [], []
                for i in range(decisions):
                    t = time.perf_counter()
                    svc.observe("bench", 2 * i, _unit(rng, 1)[0], 0.9, ts)
                    new_ms.append(1000 * (time.perf_counter() - t))
                    t = time.perf_counter()
                    svc.observe("bench", 2 * i + 1, _noisy(rng, people[i % size]), 0.9, ts)
                    ret_ms.append(1000 * (time.perf_counter() - t))
                out["observe_ms"][str(size)] = {"new": round(statistics.mean(new_ms), 2),
                                                "returning": round(statistics.mean(ret_ms), 2),
                                                "index": svc.galleries.galleries["visitor"].kind}
                if size == sizes[-1]:
                    out.update(_alert_and_delete(svc, rng, ts))
                svc.close()
                outbox.close()
    finally:
        server.shutdown()
        server.server_close()
    return out


def _alert_and_delete(svc: Any, rng: np.random.Generator, ts: float) -> dict[str, Any]:
    alert_ms = []
    for i in range(10):
        face = _unit(rng, 1)[0]
        with transaction(svc.conn):
            enrol(svc.conn, svc.cipher, identity_id=f"wl-{i}", gallery="watchlist", kind="theft", embeddings=[face],
                  actor="bench", now=ts)
        svc.reload([f"wl-{i}"])
        before = len(_Hook.arrivals)
        t = time.perf_counter()
        svc.observe("bench", 10_000 + i, _noisy(rng, face), 0.9, ts)
        while len(_Hook.arrivals) == before and time.perf_counter() - t < 5:
            time.sleep(0.0005)
        alert_ms.append(1000 * (_Hook.arrivals[-1] - t) if len(_Hook.arrivals) > before else float("nan"))
    from agent.identity.audit import forget

    delete_ms = []
    for i in range(10):
        t = time.perf_counter()
        with transaction(svc.conn):
            forget(svc.conn, f"wl-{i}", actor="bench", now=ts)
        svc.reload([f"wl-{i}"])
        delete_ms.append(1000 * (time.perf_counter() - t))
    return {"alert_to_webhook_ms": round(statistics.mean(alert_ms), 2),
            "delete_ms": round(statistics.mean(delete_ms), 2)}


def main_json(sizes: list[int], decisions: int) -> str:
    """The bench result as one JSON line."""
    return json.dumps(run_service_bench(sizes, decisions=decisions))
