"""Helpers for the sync fault tests (broker outage, half-open link, backlog quota).

A steady-rate producer thread over a real ``Outbox``, the sync client's status, and read-only views of the
reference cloud's SQLite database. Nothing here fakes product code.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sync.outbox import Outbox, OutboxItem


class Producer:
    """Enqueues ``batch`` messages every ``period_s`` on ``stream`` from its own thread (its own SQLite
    connection), keeping every returned ``msg_id`` in order. ``rate = batch / period_s``."""

    def __init__(self, outbox: Outbox, stream: str, *, batch: int = 10, period_s: float = 0.05) -> None:
        self.outbox = outbox
        self.stream = stream
        self.batch = batch
        self.period_s = period_s
        self.ids: list[str] = []
        self.errors: list[BaseException] = []
        self.max_enqueue_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"producer-{stream}", daemon=True)
        self._n = 0

    def start(self) -> Producer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> list[str]:
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "producer did not stop"
        assert not self.errors, f"producer failed: {self.errors[0]!r}"
        return self.ids

    def halt(self, timeout_s: float = 10.0) -> None:
        """Stop without checking (for ``finally`` blocks)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                items = []
                for _ in range(self.batch):
                    self._n += 1
                    items.append(OutboxItem(self.stream, {"n": self._n, "t": time.time()}))
                t0 = time.monotonic()
                self.ids.extend(self.outbox.enqueue_many(items))
                self.max_enqueue_s = max(self.max_enqueue_s, time.monotonic() - t0)
                next_at += self.period_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)
        finally:
            self.outbox.close()


def sync_status(agent: Any) -> dict[str, Any]:
    """The live sync client's status (empty between supervisor restarts)."""
    component = agent.supervisor.component("sync")
    return component.status() if component is not None else {}


def sync_restarts(agent: Any) -> int:
    return next(c["restarts"] for c in agent.supervisor.status() if c["name"] == "sync")


def cloud_query(db_path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the cloud receiver's database through a separate read-only connection."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def cloud_seqs_in_received_order(db_path: Path, store_id: str, stream: str) -> list[int]:
    """Seqs of a stream in the order the cloud first stored them (``messages`` rowid; duplicates are
    never inserted twice, so each seq appears at its first arrival)."""
    return [r[0] for r in cloud_query(db_path, "SELECT seq FROM messages WHERE store_id = ? AND stream = ?"
                                               " ORDER BY rowid", (store_id, stream))]


def cloud_duplicates(db_path: Path, store_id: str, stream: str) -> int:
    rows = cloud_query(db_path, "SELECT duplicates FROM stream_stats WHERE store_id = ? AND stream = ?",
                       (store_id, stream))
    return int(rows[0][0]) if rows else 0


def first_occurrences_increasing(seqs: list[int]) -> tuple[bool, str]:
    """True if, ignoring repeats of seqs already seen, seqs arrive in strictly increasing order."""
    seen: set[int] = set()
    last = 0
    for i, seq in enumerate(seqs):
        if seq in seen:
            continue
        if seq <= last:
            return False, f"seq {seq} arrived (position {i}) after seq {last}"
        seen.add(seq)
        last = seq
    return True, ""
