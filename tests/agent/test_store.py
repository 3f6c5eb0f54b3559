"""The agent's SQLite store: pragmas and per-component migrations (agent/store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.store import StoreError, connect, open_store
from agent.store.db import migrate
from agent.store.migrations import COMPONENTS

pytestmark = pytest.mark.timeout(30)

EXPECTED_TABLES = {
    "schema_migrations", "outbox", "outbox_streams", "outbox_dead", "inbox", "resource_versions",
    "desired_versions", "events", "aggregates", "config_overlay", "agent_state",
}


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not r[0].startswith("sqlite_")}
    finally:
        conn.close()


def _versions(path: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT component, version FROM schema_migrations ORDER BY component, version").fetchall()
    finally:
        conn.close()


def test_open_store_creates_every_table_and_trigger(tmp_path: Path) -> None:
    path = open_store(tmp_path / "nested" / "data")
    assert path == tmp_path / "nested" / "data" / "agent.db"
    assert EXPECTED_TABLES <= _tables(path)
    conn = sqlite3.connect(path)
    triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    conn.close()
    assert {"outbox_after_insert", "outbox_after_delete"} <= triggers  # trigger bodies were not split


def test_schema_migrations_records_every_version_per_component(tmp_path: Path) -> None:
    path = open_store(tmp_path)
    expected = sorted((name, v) for name, scripts in COMPONENTS.items() for v in range(1, len(scripts) + 1))
    assert _versions(path) == expected
    assert {c for c, _ in expected} >= {"sync", "agent"}


def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = open_store(tmp_path)
    conn = connect(path)
    conn.execute("INSERT INTO agent_state(key, value) VALUES ('k', 'v')")
    conn.close()
    before = _versions(path)
    for _ in range(3):
        assert open_store(tmp_path) == path
    assert _versions(path) == before  # nothing applied twice
    conn = connect(path)
    assert conn.execute("SELECT value FROM agent_state WHERE key = 'k'").fetchone() == ("v",)
    conn.close()


def test_connect_sets_wal_full_sync_and_busy_timeout(tmp_path: Path) -> None:
    conn = connect(open_store(tmp_path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.isolation_level is None  # explicit transactions only
    finally:
        conn.close()


def test_newer_schema_than_the_code_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = open_store(tmp_path)
    known = len(COMPONENTS["sync"])
    conn = connect(path)
    conn.execute("INSERT INTO schema_migrations(component, version, applied_at) VALUES ('sync', ?, 0)",
                 (known + 5,))
    conn.close()
    with pytest.raises(StoreError) as info:
        open_store(tmp_path)
    message = str(info.value)
    assert "'sync'" in message and f"version {known + 5}" in message and f"({known})" in message
    assert "upgrade the agent" in message


def test_new_migrations_are_applied_on_top(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.db")
    try:
        assert migrate(conn, {"x": ["CREATE TABLE a (i INTEGER);"]}) == {"x": 1}
        conn.execute("INSERT INTO a VALUES (1)")
        assert migrate(conn, {"x": ["CREATE TABLE a (i INTEGER);", "ALTER TABLE a ADD COLUMN j TEXT;"]}) == {"x": 2}
        assert conn.execute("SELECT i, j FROM a").fetchall() == [(1, None)]
        assert conn.execute("SELECT version FROM schema_migrations WHERE component = 'x' ORDER BY version"
                            ).fetchall() == [(1,), (2,)]
    finally:
        conn.close()


def test_failing_migration_rolls_back_entirely(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.db")
    try:
        good = "CREATE TABLE ok (i INTEGER);"
        bad = ("CREATE TABLE half (i INTEGER);\n"
               "INSERT INTO half VALUES (1);\n"
               "INSERT INTO no_such_table VALUES (1);\n")
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            migrate(conn, {"c": [good, bad]})
        assert not conn.in_transaction
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "ok" in tables  # version 1 committed on its own
        assert "half" not in tables  # version 2's first statements were rolled back
        assert conn.execute("SELECT version FROM schema_migrations WHERE component = 'c'").fetchall() == [(1,)]
        # fixing the script lets the next start apply it
        fixed = "CREATE TABLE half (i INTEGER);\nINSERT INTO half VALUES (1);\n"
        assert migrate(conn, {"c": [good, fixed]}) == {"c": 2}
        assert conn.execute("SELECT COUNT(*) FROM half").fetchone() == (1,)
    finally:
        conn.close()


def test_components_are_versioned_independently(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.db")
    try:
        migrate(conn, {"a": ["CREATE TABLE a1 (i);"], "b": ["CREATE TABLE b1 (i);", "CREATE TABLE b2 (i);"]})
        assert migrate(conn, {"a": ["CREATE TABLE a1 (i);", "CREATE TABLE a2 (i);"],
                              "b": ["CREATE TABLE b1 (i);", "CREATE TABLE b2 (i);"]}) == {"a": 2, "b": 2}
        assert conn.execute("SELECT component, MAX(version) FROM schema_migrations GROUP BY component"
                            " ORDER BY component").fetchall() == [("a", 2), ("b", 2)]
    finally:
        conn.close()


def test_unusable_data_dir_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create data_dir"):
        open_store(blocker / "data")


def test_corrupt_database_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "agent.db").write_bytes(b"this is not an sqlite database file at all" * 200)
    with pytest.raises(StoreError, match="cannot open database"):
        open_store(tmp_path)
