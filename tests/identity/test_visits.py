"""Visits: new → returning → regular, the session gap, per-track re-decision, the edge scalper rule."""

from __future__ import annotations

import json

import numpy as np

from agent.identity import repository as repo
from agent.identity.visits import day_bounds
from tests.identity.conftest import person, sighting
from sync.sqlite import transaction

HOUR = 3600.0
DAY = 86400.0
T0 = 1_780_000_000.0  # a fixed epoch so day boundaries do not depend on when the test runs


def test_new_then_returning_then_regular_with_session_gap(make_service) -> None:
    svc = make_service(session_gap_s=1800, regular_visits=3, regular_window_days=30)
    alice = person(1)
    first = svc.observe("door", 1, sighting(alice, 0), 0.9, T0)
    assert first.kind == "new" and first.score is None and first.gallery == "visitor"
    again = svc.observe("aisle", 2, sighting(alice, 1), 0.9, T0 + 600)  # 10 min later: same visit
    assert again.visitor_id == first.visitor_id and again.kind == "new" and again.score > 0.4
    second = svc.observe("door", 3, sighting(alice, 2), 0.9, T0 + 2 * DAY)
    assert second.kind == "returning" and second.visitor_id == first.visitor_id
    third = svc.observe("door", 4, sighting(alice, 3), 0.9, T0 + 5 * DAY)
    assert third.kind == "regular"
    visits = svc.conn.execute("SELECT COUNT(*) FROM identity_visits WHERE identity_id = ?",
                              (first.visitor_id,)).fetchone()[0]
    assert visits == 3  # the 10-minute re-sighting did not count as a visit
    bob = svc.observe("door", 5, sighting(person(2), 0), 0.9, T0 + 5 * DAY)
    assert bob.kind == "new" and bob.visitor_id != first.visitor_id


def test_regular_needs_visits_within_window(make_service) -> None:
    svc = make_service(regular_visits=3, regular_window_days=7, retention_days=365)
    carol = person(3)
    kinds = [svc.observe("door", i, sighting(carol, i), 0.9, T0 + i * 10 * DAY).kind for i in range(4)]
    assert kinds == ["new", "returning", "returning", "returning"]  # 10 days apart: never 3 within 7 days


def test_end_track_records_zones_and_dwell(make_service) -> None:
    svc = make_service()
    d = svc.observe("door", 7, sighting(person(4), 0), 0.9, T0)
    svc.end_track("door", 7, T0 + 95, zones=["fresh", "checkout"], dwell_s=95.0)
    zones, dwell, last_seen = svc.conn.execute("SELECT zones, dwell_s, last_seen FROM identity_visits WHERE id = ?",
                                               (d.visit_id,)).fetchone()
    assert json.loads(zones) == ["fresh", "checkout"] and dwell == 95.0 and last_seen == T0 + 95


def test_redecision_merges_a_provisional_new_visitor(make_service) -> None:
    svc = make_service()
    dave = person(5)
    known = svc.observe("door", 1, sighting(dave, 0), 0.9, T0)
    # A poor first face of a later track does not match; a better one does: the provisional id is merged away.
    g = np.random.default_rng(3).standard_normal(dave.size).astype(np.float32)
    poor = dave + 2.5 * g / np.linalg.norm(g)
    first = svc.observe("door", 2, poor, 0.3, T0 + DAY)
    assert first.kind == "new" and first.visitor_id != known.visitor_id
    better = svc.observe("door", 2, sighting(dave, 1), 0.9, T0 + DAY + 5)
    assert better.visitor_id == known.visitor_id and better.kind == "returning"
    assert repo.get_identity(svc.conn, first.visitor_id) is None
    assert first.visitor_id not in svc.galleries


def test_scalper_rule_adds_to_watchlist_and_alerts(make_service, outbox) -> None:
    svc = make_service(session_gap_s=600, scalper_entries_per_day=3)
    eve = person(6)
    start = day_bounds(T0)[0] + 10 * HOUR  # 10:00 local: every entry falls on the same local day
    decisions = [svc.observe("door", i, sighting(eve, i), 0.9, start + i * 1200) for i in range(3)]
    assert [d.kind for d in decisions[:2]] == ["new", "returning"]
    hit = decisions[2]
    assert hit.kind == "watchlist" and hit.watchlist_kind == "scalper" and hit.alert_id
    row = repo.get_identity(svc.conn, hit.visitor_id)
    assert row.gallery == "watchlist" and row.kind == "scalper" and row.expires_at > start
    streams = [r[0] for r in outbox.conn.execute("SELECT stream FROM outbox ORDER BY id")]
    assert "events/scalper_detected" in streams and "events/watchlist_hit" in streams
    # The next entry is a watchlist hit straight away (the watchlist outranks the visitor gallery).
    later = svc.observe("door", 9, sighting(eve, 9), 0.9, start + 4 * 1200)
    assert later.kind == "watchlist" and later.visitor_id == hit.visitor_id


def test_scalper_rule_off_by_default(make_service) -> None:
    svc = make_service(session_gap_s=60)
    frank = person(7)
    kinds = {svc.observe("door", i, sighting(frank, i), 0.9, T0 + i * 600).kind for i in range(8)}
    assert "watchlist" not in kinds


def test_redecision_to_a_watchlist_match_keeps_the_visit_and_alerts(make_service) -> None:
    from agent.identity.audit import enrol

    svc = make_service()
    ivan = person(11)
    first = svc.observe("door", 1, sighting(ivan, 0), 0.5, T0)
    with transaction(svc.conn):
        enrol(svc.conn, svc.cipher, identity_id="wl-ivan", gallery="watchlist", kind="theft", embeddings=[ivan],
              actor="test", now=T0)
    svc.reload(["wl-ivan"])
    again = svc.observe("door", 1, sighting(ivan, 1), 0.9, T0 + 3)
    assert again.kind == "watchlist" and again.alert_id and again.visitor_id == "wl-ivan"
    assert repo.get_identity(svc.conn, first.visitor_id) is not None  # the visit was not erased by the alert


def test_apply_config_changes_rules_without_a_restart(make_service) -> None:
    svc = make_service(session_gap_s=1800)
    judy = person(12)
    svc.observe("door", 1, sighting(judy, 0), 0.9, T0)
    assert svc.observe("door", 2, sighting(judy, 1), 0.9, T0 + 600).kind == "new"  # same visit
    svc.apply_config(svc.cfg.model_copy(update={"session_gap_s": 60.0}))
    assert svc.observe("door", 3, sighting(judy, 2), 0.9, T0 + 1200).kind == "returning"


def test_refresh_picks_up_other_processes_and_skips_its_own_writes(make_service, db_path) -> None:
    import time as _time

    from agent.identity.audit import enrol, forget
    from agent.store import connect

    svc = make_service(clock=_time.time)
    for i in range(3):
        svc.observe("door", i, sighting(person(20 + i), 0), 0.9, _time.time())
    assert svc.refresh() == 0  # its own new visitors are not reloaded
    other = connect(db_path)  # e.g. `store-agent identities enroll` in another process
    with transaction(other):
        enrol(other, svc.cipher, identity_id="m-1", gallery="member", embeddings=[person(30)], actor="cli",
              now=_time.time())
    assert svc.refresh() == 1 and svc.observe("door", 9, sighting(person(30), 0), 0.9, _time.time()).kind == "member"
    with transaction(other):
        forget(other, "m-1", actor="cli", now=_time.time())
    other.close()
    assert svc.refresh() == 1 and "m-1" not in svc.galleries


def test_cameras_deciding_concurrently_stay_consistent(make_service) -> None:
    import threading

    svc = make_service()
    errors: list[BaseException] = []
    decisions: dict[str, list] = {"door": [], "checkout": []}

    def camera(name: str) -> None:
        try:
            for i in range(40):  # the same 40 people pass both cameras
                face = sighting(person(100 + i), 1 if name == "door" else 2)
                decisions[name].append(svc.observe(name, i, face, 0.9, T0 + i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=camera, args=(n,)) for n in decisions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    ids = {name: [d.visitor_id for d in ds] for name, ds in decisions.items()}
    assert ids["door"] == ids["checkout"]  # each person got one id, whichever camera saw them first
    assert repo.stats(svc.conn)["galleries"]["visitor"] == 40
    assert svc.galleries.sizes()["visitor"] >= 40
