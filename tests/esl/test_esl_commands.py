"""``esl.relink`` and ``esl.flash`` through the real CommandProcessor, outbox and SQLite store, against the
simulated AP: per-label outcomes, clear rejections that change nothing, duplicates, AP down → queued, retried."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.config import SyncConfig
from agent.esl.commands import register_esl
from agent.esl.leds import retry_queued
from agent.esl.state import LabelRow, get_label, save_labels
from agent.pricebook import PriceBook
from agent.store import connect
from devices.esl.backends.openepaperlink import OpenEPaperLinkBackend
from sync.cloud.commands import build_command
from sync.commands import CommandProcessor, Outcome
from sync.outbox import Outbox
from sync.signing import generate_keypair, load_public_key
from tests.esl.conftest import articles, macs, wait_until

STORE = "s1"
KEY_ID = "cloud-1"


@dataclass
class Env:
    processor: CommandProcessor
    key: Any
    conn: Any
    ap: Any
    backend: OpenEPaperLinkBackend
    relinks: list[int]

    def send(self, kind: str, body: dict[str, Any]) -> Outcome:
        return self.send_raw(kind, json.dumps(build_command(kind, STORE, body, key=self.key, key_id=KEY_ID)).encode())

    def send_raw(self, kind: str, payload: bytes) -> Outcome:
        return self.processor.process(payload, kind)


@pytest.fixture
def env(db: Path, ap_factory) -> Iterator[Env]:
    outbox = Outbox(db, store_id=STORE, boot_id="boot-test", priority_for=SyncConfig().priority_for, connect=connect)
    key, pub = generate_keypair()
    processor = CommandProcessor(outbox, store_id=STORE, trusted_keys={KEY_ID: load_public_key(pub)})
    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(3), hw_type=1)
    backend = OpenEPaperLinkBackend(ap.url, timeout_s=1.0)
    relinks: list[int] = []
    register_esl(processor, backends=lambda: {"gw": backend}, on_relink=lambda: relinks.append(1))
    conn = connect(db)
    PriceBook(conn).upsert(articles(3))
    save_labels(conn, [LabelRow(mac=m, gateway="gw", label_type="29bwr", updated_at=time.time()) for m in macs(3)])
    yield Env(processor, key, conn, ap, backend, relinks)
    conn.close()
    outbox.close()


def test_relink_links_labels_with_positions_and_fridge_groups(env: Env) -> None:
    out = env.send("esl.relink", {"links": [
        {"label": macs(3)[0], "plu": "1000", "position": {"aisle": "4", "shelf": 2, "slot": 7}},
        {"label": macs(3)[1], "plu": "1001", "fridge_group": "dairy"}]})
    assert out.status == "applied", out.detail
    assert [r["status"] for r in out.result["labels"]] == ["linked", "linked"]
    row = get_label(env.conn, macs(3)[0])
    assert (row.plu, row.aisle, row.shelf, row.slot) == ("1000", "4", 2, 7)
    assert get_label(env.conn, macs(3)[1]).fridge_group == "dairy"
    assert env.relinks == [1]
    out = env.send("esl.relink", {"links": [{"label": macs(3)[0], "plu": None}]})
    assert out.result["labels"][0]["status"] == "unlinked" and get_label(env.conn, macs(3)[0]).plu is None


@pytest.mark.parametrize("link,reason", [
    ({"label": "0000DEADBEEF0000", "plu": "1000"}, "unknown_label"),
    ({"label": macs(3)[0], "plu": "99999"}, "unknown_plu"),
    ({"label": macs(3)[0], "plu": "1000", "label_type": "nope"}, "invalid_body"),
    ({"label": macs(3)[0], "plu": "1000", "template": "no-such-template"}, "invalid_body"),
    ({"label": macs(3)[0], "plu": "1000", "colour": "x"}, "invalid_body"),
])
def test_bad_relink_is_rejected_and_changes_nothing(env: Env, link: dict[str, Any], reason: str) -> None:
    out = env.send("esl.relink", {"links": [{"label": macs(3)[1], "plu": "1001"}, link]})
    assert out.status == "rejected" and out.reason == reason, out.detail
    assert "links[1]" in out.detail  # the message names the offending item
    assert get_label(env.conn, macs(3)[1]).plu is None  # the valid first item was rolled back too
    assert env.relinks == []


def test_flash_by_plu_reaches_the_label_and_duplicates_are_refused(env: Env) -> None:
    assert env.send("esl.relink", {"links": [{"label": macs(3)[2], "plu": "1002"}]}).status == "applied"
    payload = json.dumps(build_command("esl.flash", STORE, {"plus": ["1002"], "colour": "yellow", "pattern": "fast",
                                                            "duration_s": 20}, key=env.key, key_id=KEY_ID)).encode()
    out = env.send_raw("esl.flash", payload)
    assert out.status == "applied", out.detail
    assert out.result["labels"] == [{"label": macs(3)[2], "plu": "1002", "gateway": "gw", "position": None,
                                     "status": "sent"}]
    assert wait_until(lambda: env.ap.field.tags[macs(3)[2]].led is not None, 3)
    assert env.ap.field.tags[macs(3)[2]].led["colour"] == "yellow"
    again = env.send_raw("esl.flash", payload)
    assert again.status == "duplicate"


@pytest.mark.parametrize("body,reason", [
    ({"plus": ["424242"]}, "unknown_plu"),
    ({"labels": ["0000DEADBEEF0000"]}, "unknown_label"),
    ({"labels": [macs(3)[0]], "colour": "purple"}, "invalid_body"),
    ({"labels": [macs(3)[0]], "duration_s": -1}, "invalid_body"),
    ({}, "invalid_body"),
    ({"labels": "not-a-list"}, "invalid_body"),
])
def test_bad_flash_is_rejected_with_a_clear_reason(env: Env, body: dict[str, Any], reason: str) -> None:
    out = env.send("esl.flash", body)
    assert out.status == "rejected" and out.reason == reason and out.detail


def test_flash_with_the_ap_down_is_queued_and_delivered_later(env: Env) -> None:
    port = env.ap.port
    env.ap.stop()
    out = env.send("esl.flash", {"labels": [macs(3)[0]], "colour": "green", "duration_s": 60})
    assert out.status == "applied" and out.result["labels"][0]["status"] == "queued"
    assert "error" in out.result["labels"][0]
    assert env.conn.execute("SELECT COUNT(*) FROM esl_flash_queue").fetchone()[0] == 1
    assert retry_queued(env.conn, "gw", env.backend, time.time()) == 0  # still down: kept
    assert env.conn.execute("SELECT attempts FROM esl_flash_queue").fetchone()[0] == 2
    env.ap.port = port
    env.ap.start()
    assert retry_queued(env.conn, "gw", env.backend, time.time()) == 1
    assert env.conn.execute("SELECT COUNT(*) FROM esl_flash_queue").fetchone()[0] == 0
    assert wait_until(lambda: env.ap.field.tags[macs(3)[0]].led is not None, 3)
