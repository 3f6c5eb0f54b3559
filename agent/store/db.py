"""Open the agent's SQLite database with the pragmas the durability contract needs, and migrate it.

The outbox relies on ``synchronous=FULL`` in WAL mode (see :func:`sync.sqlite.connect`): a row is on disk
before ``COMMIT`` returns, so a message is durable before ``enqueue`` returns, even if the box loses power.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from agent.store.migrations import COMPONENTS
from sync.sqlite import connect

__all__ = ["StoreError", "connect", "migrate", "open_store"]

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The database cannot be opened or migrated (wrong path, newer schema, corruption)."""


def migrate(conn: sqlite3.Connection, components: dict[str, list[str]] | None = None) -> dict[str, int]:
    """Apply every pending migration of every component, each in its own transaction.

    Returns the schema version per component. Refuses a database whose version is newer than this code
    knows (a downgrade would silently misread it).
    """
    components = COMPONENTS if components is None else components
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at REAL NOT NULL,"
        " PRIMARY KEY (component, version))"
    )
    versions: dict[str, int] = {}
    for component, scripts in components.items():
        row = conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?", (component,)
        ).fetchone()
        current = int(row[0])
        if current > len(scripts):
            raise StoreError(
                f"database schema of {component!r} is version {current}, newer than this agent knows "
                f"({len(scripts)}); upgrade the agent or restore a matching backup"
            )
        for version in range(current + 1, len(scripts) + 1):
            log.info("applying migration", extra={"component": component, "version": version})
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(scripts[version - 1]):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations(component, version, applied_at) VALUES (?, ?, ?)",
                    (component, version, time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        versions[component] = len(scripts)
    return versions


def _split_sql(script: str) -> list[str]:
    """Split a script into statements, keeping ``CREATE TRIGGER … END;`` bodies whole."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


def open_store(data_dir: Path | str, *, filename: str = "agent.db") -> Path:
    """Create the data directory, migrate the database and return its path.

    Callers then open their own connections with :func:`connect` (one per thread).
    """
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create data_dir {data_dir}: {exc.strerror}") from exc
    path = data_dir / filename
    try:
        conn = connect(path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        migrate(conn)
    finally:
        conn.close()
    return path
