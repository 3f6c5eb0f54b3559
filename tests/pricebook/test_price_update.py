"""The signed ``price.update`` command through the real CommandProcessor, outbox and SQLite store."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import SyncConfig
from agent.pricebook import PriceBook, register_pricebook
from agent.store import connect, open_store
from sync.cloud.commands import build_command
from sync.commands import CommandProcessor, Outcome
from sync.outbox import Outbox
from sync.signing import generate_keypair, load_public_key

STORE = "s1"
KEY_ID = "cloud-1"
NOW = float(int(time.time()))


@dataclass
class Env:
    processor: CommandProcessor
    outbox: Outbox
    key: Any
    book: PriceBook
    changes: list[dict[str, Any]]
    db: Path

    def send(self, body: dict[str, Any], **kw: Any) -> Outcome:
        cmd = build_command("price.update", STORE, body, key=self.key, key_id=KEY_ID, now=kw.pop("now", NOW), **kw)
        return self.processor.process(json.dumps(cmd).encode(), "price.update")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    db = open_store(tmp_path)
    outbox = Outbox(db, store_id=STORE, boot_id="boot-test", priority_for=SyncConfig().priority_for, connect=connect)
    key, pub = generate_keypair()
    processor = CommandProcessor(outbox, store_id=STORE, trusted_keys={KEY_ID: load_public_key(pub)},
                                 clock=lambda: NOW)
    changes: list[dict[str, Any]] = []
    register_pricebook(processor, on_change=changes.append, clock=lambda: NOW)
    yield Env(processor, outbox, key, PriceBook(connect(db)), changes, db)
    outbox.close()


def article(plu: str = "4011", price: float = 1.99, **kw: Any) -> dict[str, Any]:
    return {"plu": plu, "name": "Bananas", "price": price, "unit": "kg", **kw}


def test_a_delta_is_applied_versioned_and_announced(env: Env) -> None:
    out = env.send({"version": 1, "effective_at": None, "upsert": [article(), article("1", 0.5)], "delete": []})
    assert (out.status, out.reason) == ("applied", None)
    assert out.result["upserted"] == 2 and out.result["version"] == 1 and out.result["scheduled"] is False
    assert env.book.version == 1 and env.book.effective_price("4011", NOW) == 1.99
    assert env.book.get("4011", NOW).version == 1
    assert env.changes == [out.result]
    reader = sqlite3.connect(env.db)
    assert reader.execute("SELECT version FROM resource_versions WHERE resource = 'pricebook'").fetchone() == (1,)


def test_a_future_effective_time_schedules_the_change(env: Env) -> None:
    env.send({"version": 1, "upsert": [article(price=1.99)]})
    out = env.send({"version": 2, "effective_at": NOW + 600, "upsert": [article(price=2.49)]})
    assert out.status == "applied" and out.result["scheduled"] is True
    assert env.book.effective_price("4011", NOW + 599) == 1.99
    assert env.book.effective_price("4011", NOW + 600) == 2.49


def test_an_immediate_change_arriving_late_does_not_override_a_later_scheduled_one(env: Env) -> None:
    env.send({"version": 1, "effective_at": NOW - 100, "upsert": [article(price=3.0)]})
    # Issued (by the cloud's clock) before the v1 change took effect, delivered after it: v1 stays in force.
    env.send({"version": 2, "upsert": [article(price=2.0)]}, now=NOW - 200)
    assert env.book.effective_price("4011", NOW) == 3.0


def test_stale_and_equal_versions_are_refused_and_change_nothing(env: Env) -> None:
    env.send({"version": 5, "upsert": [article(price=1.0)]})
    for version in (5, 4):
        out = env.send({"version": version, "upsert": [article(price=9.0)]})
        assert (out.status, out.reason) == ("rejected", "stale_version")
        assert "version 5" in out.detail and "ignored" in out.detail
    assert env.book.effective_price("4011", NOW) == 1.0 and env.book.version == 5
    assert len(env.changes) == 1


def test_a_replayed_command_is_a_duplicate(env: Env) -> None:
    cmd = build_command("price.update", STORE, {"version": 1, "upsert": [article()]}, key=env.key, key_id=KEY_ID,
                        now=NOW)
    payload = json.dumps(cmd).encode()
    assert env.processor.process(payload, "price.update").status == "applied"
    assert env.processor.process(payload, "price.update").status == "duplicate"
    assert len(env.book.history("4011")) == 1


@pytest.mark.parametrize(("body", "needle"), [
    ({"version": 1, "upsert": [article(price=-1)]}, "upsert[0].price"),
    ({"version": 1, "upsert": [article(), article("2", "cheap")]}, "upsert[1].price"),
    ({"version": 1, "upsert": [article(discount=3)]}, "upsert[0].discount: unknown field"),
    ({"version": 1, "upsert": [article()], "colour": "red"}, "unknown key 'colour'"),
    ({"upsert": [article()]}, "'version'"),
    ({"version": "3", "upsert": [article()]}, "'version'"),
    ({"version": 1, "effective_at": "tomorrow", "upsert": [article()]}, "'effective_at'"),
    ({"version": 1}, "empty"),
    ({"version": 1, "upsert": {"plu": "1"}}, "must be lists"),
    ({"version": 1, "upsert": [article(), article()]}, "appears more than once"),
    ({"version": 1, "upsert": [article()], "delete": ["4011"]}, "both upserted and deleted"),
    ({"version": 1, "delete": ["bad plu!"]}, "delete[0]"),
])
def test_bad_bodies_are_rejected_with_a_clear_message_and_nothing_written(env: Env, body: dict, needle: str) -> None:
    out = env.send(body)
    assert (out.status, out.reason) == ("rejected", "invalid_body"), out
    assert needle in out.detail
    assert env.book.revision == 0 and env.book.version == 0 and env.changes == []


def test_envelope_version_must_match_the_body(env: Env) -> None:
    out = env.send({"version": 2, "upsert": [article()]}, version=3)
    assert (out.status, out.reason) == ("rejected", "invalid_body") and "differs" in out.detail


def test_delete_through_the_command(env: Env) -> None:
    env.send({"version": 1, "upsert": [article(), article("2")]})
    out = env.send({"version": 2, "delete": ["2", 4011]})
    assert out.status == "applied" and out.result["deleted"] == 2
    assert env.book.all(NOW) == []
