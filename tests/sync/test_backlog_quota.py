"""A 100 000-message offline backlog over a smaller outbox quota, then a drain through a real broker.

Part 1 (no broker): the outbox sheds the lowest-priority oldest rows first, never priority 0, keeps depth
within the quota, writes ``events/gap`` messages that account for exactly what it shed, and does so in
bounded memory. Part 2: a real agent over the same data dir drains the backlog through mosquitto to the
reference cloud; every kept message arrives, every missing seq is explained by a gap event, and backlog
messages are flagged ``historical``.
"""

from __future__ import annotations

import gc
import json
import os
import random
import time
from pathlib import Path

import psutil
import pytest

from agent.store import connect, open_store
from sync.cloud.store import CloudStore
from sync.envelope import new_msg_id
from sync.outbox import _SHED_BATCH, GAP_STREAM, Outbox, OutboxItem
from tests.support.agent_stack import start_agent, start_cloud, wait_until, write_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.sync_faults import cloud_query, sync_status

STORE = "store-backlog"
AGG, EVENTS, HEALTH = "telemetry/aggregates", "events/x", "telemetry/health"
PRIORITIES = {AGG: 0, EVENTS: 1, HEALTH: 2}
TOTAL = 100_000
BATCH = 500
PER_BATCH = {AGG: 50, EVENTS: 200, HEALTH: 250}  # 10 % / 40 % / 50 %
MAX_MESSAGES = 40_000
# Outbox._enforce_quota sheds to (quota - OVERSHOOT) so it does not run the shedding query on every enqueue
# at the limit, then adds at most one gap event per shed stream (2 here).
OVERSHOOT = max(1, min(_SHED_BATCH, MAX_MESSAGES // 100))
MAX_RSS_GROWTH = 20 * 2**20


def _priority_for(stream: str) -> int:
    return PRIORITIES[stream] if stream in PRIORITIES else 0  # events/gap → 0


def _batch(n: int) -> list[OutboxItem]:
    """One interleaved batch of BATCH messages across the three streams (bodies ~60-100 bytes)."""
    streams = [AGG] * PER_BATCH[AGG] + [EVENTS] * PER_BATCH[EVENTS] + [HEALTH] * PER_BATCH[HEALTH]
    random.Random(n).shuffle(streams)  # deterministic interleave: each stream spread over the batch
    now = time.time()
    return [OutboxItem(s, {"i": n * BATCH + i, "v": i * 0.5, "tag": "x" * (i % 40)}, event_ts=now)
            for i, s in enumerate(streams)]


def _ranges_cover(ranges: list[tuple[int, int]], kept: set[int], n: int) -> str | None:
    """None if the gap ranges and the kept seqs partition 1..n exactly; else what is wrong."""
    covered: set[int] = set()
    for first, last in ranges:
        if not 1 <= first <= last <= n:
            return f"gap range {first}..{last} outside 1..{n}"
        span = set(range(first, last + 1))
        if span & covered:
            return f"gap range {first}..{last} overlaps another gap range"
        covered |= span
    if covered & kept:
        return f"{len(covered & kept)} seqs are both reported shed and present"
    unexplained = set(range(1, n + 1)) - covered - kept
    if unexplained:
        return f"{len(unexplained)} seqs neither present nor covered by a gap event (e.g. {min(unexplained)})"
    return None


@pytest.mark.fault
@pytest.mark.timeout(240)
def test_offline_backlog_sheds_by_priority_within_quota_then_drains(tmp_path: Path,
                                                                    mosquitto: MosquittoBroker) -> None:
    data_dir = tmp_path / "data"
    db = open_store(data_dir)
    outbox = Outbox(db, store_id=STORE, boot_id=new_msg_id(), priority_for=_priority_for,
                    max_messages=MAX_MESSAGES, max_bytes=512 * 2**20, default_ttl_s=0.0, connect=connect)

    # ---- part 1: enqueue 100k offline, checking the shedding order after every batch ----------------
    process = psutil.Process(os.getpid())
    outbox.enqueue_many([OutboxItem(s, {"warmup": True}) for s in (AGG, EVENTS, HEALTH)])  # open conn, caches
    gc.collect()
    rss_before = process.memory_info().rss
    t0 = time.monotonic()
    enqueued = {AGG: 1, EVENTS: 1, HEALTH: 1}
    first_shed_batch = None
    events_shed_with_health_left = []
    max_depth = 0
    prev = {s: 0 for s in PRIORITIES}
    for n in range((TOTAL - 3) // BATCH + 1):
        items = _batch(n)[: TOTAL - sum(enqueued.values())]
        if not items:
            break
        outbox.enqueue_many(items)
        for item in items:
            enqueued[item.stream] += 1
        stats = outbox.stats()
        shed_now = {s: stats[s]["shed"] - prev[s] for s in PRIORITIES}
        prev = {s: stats[s]["shed"] for s in PRIORITIES}
        assert stats[AGG]["shed"] == 0, "a priority-0 message was shed"
        if shed_now[EVENTS] and stats[HEALTH]["depth"] > 0:
            events_shed_with_health_left.append((n, stats[HEALTH]["depth"]))
        if first_shed_batch is None and (shed_now[EVENTS] or shed_now[HEALTH]):
            first_shed_batch = n
            assert shed_now[HEALTH] > 0 and shed_now[EVENTS] == 0, f"first shedding hit {shed_now}"
        depth = outbox.depth()
        max_depth = max(max_depth, depth)
        assert depth <= MAX_MESSAGES, f"depth {depth} over quota {MAX_MESSAGES} after batch {n}"
        if any(shed_now.values()):
            assert MAX_MESSAGES - OVERSHOOT <= depth <= MAX_MESSAGES - OVERSHOOT + 2, \
                f"depth {depth} after shedding (quota {MAX_MESSAGES}, overshoot {OVERSHOOT})"
    enqueue_s = time.monotonic() - t0
    gc.collect()
    rss_growth = process.memory_info().rss - rss_before
    assert sum(enqueued.values()) == TOTAL

    stats = outbox.stats()
    conn = outbox.conn
    print(f"\n[backlog] enqueued {TOTAL} in {enqueue_s:.1f} s ({TOTAL / enqueue_s:.0f} msg/s, batches of {BATCH}); "
          f"RSS growth {rss_growth / 2**20:.1f} MB; max depth {max_depth}; final depth {outbox.depth()}; "
          f"shed health={stats[HEALTH]['shed']} events={stats[EVENTS]['shed']}; "
          f"gap events={stats[GAP_STREAM]['enqueued']}; first shedding at batch {first_shed_batch}")
    assert rss_growth < MAX_RSS_GROWTH, f"RSS grew {rss_growth / 2**20:.1f} MB while enqueuing 100k messages"
    assert not events_shed_with_health_left, \
        f"priority-1 rows shed while priority-2 rows remained: {events_shed_with_health_left[:3]}"
    assert stats[HEALTH]["shed"] > 0 and stats[EVENTS]["shed"] > 0, "quota never forced both levels to shed"
    assert all(stats[s]["enqueued"] == enqueued[s] for s in PRIORITIES)
    assert outbox.depth() <= MAX_MESSAGES

    # Priority 0 untouched: every aggregate row present, seqs 1..N.
    assert conn.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM outbox WHERE stream = ?", (AGG,)).fetchone() \
        == (enqueued[AGG], 1, enqueued[AGG])
    # Gap events account exactly for what was shed, per stream, with contiguous ranges.
    gaps = [json.loads(b) for (b,) in conn.execute("SELECT body FROM outbox WHERE stream = ? ORDER BY seq",
                                                   (GAP_STREAM,))]
    assert len(gaps) == stats[GAP_STREAM]["enqueued"] == stats[GAP_STREAM]["depth"]
    local_ranges: dict[str, list[tuple[int, int]]] = {}
    for gap in gaps:
        assert gap["reason"] == "outbox_quota" and gap["stream"] in (EVENTS, HEALTH), gap
        assert gap["last_seq"] - gap["first_seq"] + 1 == gap["shed"], f"gap event range is not contiguous: {gap}"
        local_ranges.setdefault(gap["stream"], []).append((gap["first_seq"], gap["last_seq"]))
    for stream in (EVENTS, HEALTH):
        assert sum(b - a + 1 for a, b in local_ranges[stream]) == stats[stream]["shed"]
        kept = {r[0] for r in conn.execute("SELECT seq FROM outbox WHERE stream = ?", (stream,))}
        problem = _ranges_cover(local_ranges[stream], kept, enqueued[stream])
        assert problem is None, f"{stream}: {problem}"
    # Oldest first within a priority: the events that were shed are exactly the oldest ones.
    assert min(r[0] for r in conn.execute("SELECT seq FROM outbox WHERE stream = ?", (EVENTS,))) \
        == stats[EVENTS]["shed"] + 1
    backlog = {s: {r[0]: r[1] for r in conn.execute("SELECT msg_id, seq FROM outbox WHERE stream = ?", (s,))}
               for s in (AGG, EVENTS, HEALTH, GAP_STREAM)}
    newest_event_ts = conn.execute("SELECT MAX(event_ts) FROM outbox").fetchone()[0]
    outbox.close()

    # ---- part 2: a real agent over the same data dir drains it through mosquitto ---------------------
    cloud_db = tmp_path / "cloud.db"
    receiver, cloud = start_cloud(mosquitto.url, cloud_db)
    config = write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=data_dir, broker_url=mosquitto.url,
                          sync={"historical_after_s": 1.0, "drain_rate_msgs_per_s": 0, "max_inflight": 50,
                                "outbox_max_messages": MAX_MESSAGES, "require_cloud_ack": True},
                          health={"interval_s": 3600.0})
    time.sleep(max(0.0, newest_event_ts + 1.2 - time.time()))  # every backlog row is now > historical_after_s old
    total_backlog = sum(len(v) for v in backlog.values())
    t_drain = time.monotonic()
    agent, running = start_agent(config)
    try:
        assert [agent.config.sync.priority_for(s) for s in (AGG, EVENTS, HEALTH, GAP_STREAM)] == [0, 1, 2, 0]
        assert wait_until(lambda: agent.outbox.depth() == 0, 120, interval_s=0.25), \
            f"backlog not drained: depth {agent.outbox.depth()}, sync {sync_status(agent)}"
        drain_s = time.monotonic() - t_drain
        print(f"[backlog] drained {total_backlog} messages in {drain_s:.1f} s "
              f"({total_backlog / drain_s:.0f} msg/s incl. agent start; drain_rate unlimited, max_inflight 50); "
              f"cloud duplicates={receiver.counts['duplicates']}")

        for stream, ids in backlog.items():
            rows = dict(cloud_query(cloud_db, "SELECT msg_id, seq FROM messages WHERE store_id = ? AND stream = ?",
                                    (STORE, stream)))
            missing = set(ids) - set(rows)
            assert not missing, f"{stream}: {len(missing)} of {len(ids)} backlog messages never reached the cloud"
            assert all(rows[m] == ids[m] for m in ids), f"{stream}: seqs changed in transit"
        # The cloud can explain every missing seq from the gap events it received.
        cloud_gaps = [json.loads(b) for (b,) in cloud_query(
            cloud_db, "SELECT body FROM messages WHERE store_id = ? AND stream = ?", (STORE, GAP_STREAM))]
        assert sorted(json.dumps(g, sort_keys=True) for g in cloud_gaps) == \
            sorted(json.dumps(g, sort_keys=True) for g in gaps)
        store = CloudStore(cloud_db)
        try:
            assert store.gaps(STORE, AGG) == [] and store.gaps(STORE, GAP_STREAM) == []
            for stream in (EVENTS, HEALTH):
                ranges = [(g["first_seq"], g["last_seq"]) for g in cloud_gaps if g["stream"] == stream]
                kept = {r[0] for r in store.conn.execute("SELECT seq FROM messages WHERE store_id = ? AND stream = ?",
                                                         (STORE, stream))}
                problem = _ranges_cover(ranges, kept, enqueued[stream])
                assert problem is None, f"cloud, {stream}: {problem}"
                for first, last in store.gaps(STORE, stream):
                    assert any(a <= first and last <= b for a, b in _merge(ranges)), \
                        f"cloud gap {first}..{last} in {stream} not covered by a gap event"
        finally:
            store.close()
        # Backlog rows were published long after their event_ts: flagged historical. A fresh one is not.
        not_historical = cloud_query(cloud_db, "SELECT COUNT(*) FROM messages WHERE store_id = ? AND historical = 0",
                                     (STORE,))[0][0]
        assert not_historical == 0, f"{not_historical} backlog messages not flagged historical"
        fresh = agent.outbox.enqueue(EVENTS, {"fresh": True})
        assert wait_until(lambda: cloud_query(cloud_db, "SELECT historical FROM messages WHERE msg_id = ?",
                                              (fresh,)) != [], 10), "fresh message not delivered"
        assert cloud_query(cloud_db, "SELECT historical FROM messages WHERE msg_id = ?", (fresh,)) == [(0,)]
    finally:
        running.stop()
        cloud.stop()
        agent.close()


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Adjacent/overlapping ranges merged (consecutive gap events can describe one cloud-visible gap)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@pytest.mark.timeout(60)
def test_byte_quota_sheds_lowest_priority_and_keeps_priority_zero(tmp_path: Path) -> None:
    """The byte budget (``outbox_max_mb``) alone triggers shedding: bytes stay within it (plus the gap events
    written after shedding), priority 0 is intact and the gap events account for every shed row."""
    db = open_store(tmp_path / "data")
    max_bytes = 2 * 2**20
    outbox = Outbox(db, store_id=STORE, boot_id=new_msg_id(), priority_for=_priority_for,
                    max_messages=10**9, max_bytes=max_bytes, connect=connect)
    try:
        enqueued = {AGG: 0, EVENTS: 0, HEALTH: 0}
        events_shed = 0
        for n in range(40):  # 20 000 rows of ~300 bytes accounted: ~3x the budget
            items = _batch(n)
            outbox.enqueue_many(items)
            for item in items:
                enqueued[item.stream] += 1
            stats = outbox.stats()
            total_bytes = sum(s["bytes"] for s in stats.values())
            if stats[EVENTS]["shed"] > events_shed:
                assert stats[HEALTH]["depth"] == 0, f"priority 1 shed while priority 2 rows remained (batch {n})"
            events_shed = stats[EVENTS]["shed"]
            # Shedding stops at or under the budget; then at most one gap event per shed stream is added.
            assert total_bytes <= max_bytes + 2 * 400, f"{total_bytes} bytes after batch {n}"
        stats = outbox.stats()
        assert stats[AGG]["shed"] == 0 and stats[AGG]["depth"] == enqueued[AGG]
        assert stats[HEALTH]["shed"] > 0
        gaps = [json.loads(b) for (b,) in outbox.conn.execute("SELECT body FROM outbox WHERE stream = ?",
                                                              (GAP_STREAM,))]
        for stream in (EVENTS, HEALTH):
            assert sum(g["shed"] for g in gaps if g["stream"] == stream) == stats[stream]["shed"]
            assert stats[stream]["depth"] + stats[stream]["shed"] == enqueued[stream]
        print(f"\n[byte quota] kept {outbox.depth()} rows, {total_bytes} bytes of {max_bytes}; "
              f"shed health={stats[HEALTH]['shed']} events={stats[EVENTS]['shed']}")
    finally:
        outbox.close()
