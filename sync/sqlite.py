"""Open SQLite connections the way the durability contract needs (WAL, synchronous, busy timeout)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path | str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """One connection (use one per thread) in autocommit mode with WAL and a busy timeout.

    Transactions are explicit (``BEGIN IMMEDIATE`` … ``COMMIT``), which makes batching visible in the code.
    With ``synchronous=FULL`` in WAL mode a row is on disk before ``COMMIT`` returns.
    """
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on an autocommit connection from :func:`connect`; ``ROLLBACK`` on any
    exception (re-raised)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
