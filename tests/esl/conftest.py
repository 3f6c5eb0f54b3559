"""Fixtures of the shelf-label gateway tests: a real SQLite store, the OpenEPaperLink AP simulator on loopback
with fast check-ins, and a reconciler wired to both with the product renderer."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.esl.content import default_renderer
from agent.esl.reconciler import Reconciler, ReconcilerSettings
from agent.esl.state import save_links
from agent.pricebook import PriceBook
from agent.pricebook.article import Article
from agent.store import connect, open_store
from devices.esl.backends.openepaperlink import OpenEPaperLinkBackend
from devices.esl.model import HW_TYPES
from devices.esl.sim.oepl_ap import OeplApSimulator

HW_TYPE_NAMES = {k: v.name for k, v in HW_TYPES.items()}


def macs(n: int, prefix: str = "0000AABBCC") -> list[str]:
    return [f"{prefix}{i:06X}" for i in range(n)]


def articles(n: int, base: float = 1.0) -> list[Article]:
    return [Article(str(1000 + i), f"Item {i}", round(base + i / 100, 2), "piece") for i in range(n)]


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return open_store(tmp_path / "agent")


@pytest.fixture
def conn(db: Path) -> Iterator[sqlite3.Connection]:
    c = connect(db)
    yield c
    c.close()


@pytest.fixture
def ap_factory() -> Iterator[Callable[..., OeplApSimulator]]:
    started: list[OeplApSimulator] = []

    def make(**kw: object) -> OeplApSimulator:
        kw.setdefault("interval_s", 0.1)
        ap = OeplApSimulator(**kw).start()  # type: ignore[arg-type]
        started.append(ap)
        return ap

    yield make
    for ap in started:
        ap.stop()


class Driver:
    """Runs a reconciler against a simulator the way the component does (events + polls), in the test thread."""

    def __init__(self, conn: sqlite3.Connection, ap: OeplApSimulator, **settings: object) -> None:
        self.ap = ap
        self.backend = OpenEPaperLinkBackend(ap.url, timeout_s=2.0)
        settings.setdefault("retry_timeout_s", 2.0)
        self.rec = Reconciler(conn, "gw", self.backend, default_renderer(),
                              ReconcilerSettings(**settings), hw_types=HW_TYPE_NAMES)  # type: ignore[arg-type]
        self.book = PriceBook(conn)
        self.stop = threading.Event()
        self.reports: list = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._events, daemon=True)
        self.thread.start()

    def _events(self) -> None:
        while not self.stop.is_set():
            try:
                for ev in self.backend.events(self.stop):
                    if ev.report is not None:
                        with self.lock:
                            self.reports.append(ev.report)
            except Exception:
                self.stop.wait(0.1)

    def discover(self) -> None:
        for report in self.backend.labels():
            self.rec.on_report(report)
        self.rec.flush()

    def link(self, mac_to_plu: dict[str, str]) -> None:
        for mac, plu in mac_to_plu.items():
            self.rec.labels[mac].plu = plu
        save_links(self.rec.conn, [self.rec.labels[m] for m in mac_to_plu])

    def step(self, poll: bool = False) -> None:
        with self.lock:
            reports, self.reports = self.reports, []
        for report in reports:
            self.rec.on_report(report)
        if poll:
            try:
                for report in self.backend.labels():
                    self.rec.on_report(report)
            except Exception:
                pass
        self.rec.push_due()
        self.rec.flush()

    def run_until(self, predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        n = 0
        while time.monotonic() < deadline:
            self.step(poll=n % 20 == 0)
            if predicate():
                return True
            n += 1
            time.sleep(0.02)
        return predicate()

    def states(self) -> dict[str, int]:
        return self.rec.summary()["states"]

    def close(self) -> None:
        self.stop.set()
        self.rec.close()
