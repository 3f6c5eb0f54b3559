"""Every upstream stream the agent queues has a deliberate priority and a row in docs/architecture.md, and the
priorities do what they promise when the outbox is over quota (alerts kept, bulk learning data shed first)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from agent.analytics.lines import Crossing
from agent.analytics.zones import ZoneEventType
from agent.config.sync_models import DEFAULT_STREAM_PRIORITIES, UNKNOWN_STREAM_PRIORITY, SyncConfig
from agent.store import connect, open_store
from sync.envelope import new_msg_id
from sync.outbox import GAP_STREAM, Outbox, OutboxItem

REPO_ROOT = Path(__file__).resolve().parents[2]
_LITERAL = re.compile(r"""["']((?:events|telemetry)/[a-z_]+)["']""")
_DOC_ROW = re.compile(r"^\| (`[^|]+`) \| (\d) \|", re.MULTILINE)


def produced_streams() -> set[str]:
    """Stream names written as literals in the agent and the libraries, plus the analytics event types
    (queued as ``events/<type>``); the bench's own stream is left out."""
    found: set[str] = set()
    for package in ("agent", "sync", "devices"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            found |= set(_LITERAL.findall(path.read_text(encoding="utf-8")))
    found |= {f"events/{t}" for t in typing.get_args(ZoneEventType)} | {f"events/{Crossing.type}"}
    found.add("cmd-result")
    return found - {"telemetry/bench"}


def documented_priorities() -> dict[str, int]:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## Streams", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, int] = {}
    for names, priority in _DOC_ROW.findall(table):
        for name in re.findall(r"`([^`]+)`", names):
            rows[name] = int(priority)
    return rows


def test_the_scan_finds_the_streams_of_every_capability() -> None:
    streams = produced_streams()
    expected = {"telemetry/health", "telemetry/aggregates", "events/line_crossing", "events/zone_visit",
                "events/visitor", "events/watchlist_hit", "events/scale", "events/weighing",
                "events/product_learned", "events/esl_alarm", "telemetry/esl_delivery", GAP_STREAM}
    assert expected <= streams


def test_every_stream_has_a_known_priority_and_a_documented_row() -> None:
    sync = SyncConfig()
    streams = produced_streams()
    unknown = sorted(s for s in streams if not any(s == p or s.startswith(p + "/") for p in DEFAULT_STREAM_PRIORITIES))
    assert unknown == [], f"streams that fall back to priority {UNKNOWN_STREAM_PRIORITY}"
    documented = documented_priorities()
    assert sorted(streams - set(documented)) == [], "streams missing from the table in docs/architecture.md"
    assert sorted(set(documented) - streams) == [], "documented streams no code produces"
    wrong = {s: (documented[s], sync.priority_for(s)) for s in streams if documented[s] != sync.priority_for(s)}
    assert wrong == {}, "docs priority != DEFAULT_STREAM_PRIORITIES"


def test_alerts_rank_above_routine_events_and_bulk_below() -> None:
    sync = SyncConfig()
    events = sync.priority_for("events/zone_visit")
    for alert in ("events/watchlist_hit", "events/watchlist_decision", "events/esl_alarm"):
        assert sync.priority_for(alert) == 0, alert
    for record in ("events/weighing", "events/visitor", "events/line_crossing"):
        assert sync.priority_for(record) == events
    for bulk in ("events/product_learned", "events/scale"):
        assert sync.priority_for(bulk) > events, bulk
    assert sync.priority_for("telemetry/esl_gateway") >= sync.priority_for("telemetry/health") > events
    assert sync.priority_for("telemetry/aggregates") == 0


def test_over_quota_sheds_learning_data_first_and_never_a_watchlist_hit(tmp_path: Path) -> None:
    db = open_store(tmp_path)
    outbox = Outbox(db, store_id="s1", boot_id=new_msg_id(), priority_for=SyncConfig().priority_for,
                    max_messages=150, connect=connect)
    try:
        for i in range(60):
            outbox.enqueue_many([OutboxItem("events/watchlist_hit", {"i": i}),
                                 OutboxItem("events/weighing", {"i": i}),
                                 OutboxItem("events/product_learned", {"i": i, "vector": [0.1] * 64})])
        stats = outbox.stats()
    finally:
        outbox.close()
    assert stats["events/watchlist_hit"]["shed"] == 0 and stats["events/watchlist_hit"]["depth"] == 60
    assert stats["events/product_learned"]["shed"] > 0
    assert stats["events/weighing"]["shed"] == 0  # learning data went first
    assert stats[GAP_STREAM]["depth"] >= 1
