"""Visits: sightings of one person closer than the session gap are one visit; kinds new / returning / regular;
the edge scalper rule (≥ N entries on one local day).

Functions write through the caller's connection inside its transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass

from agent.identity import repository as repo

__all__ = ["VisitPolicy", "VisitOutcome", "day_bounds", "record_sighting"]


@dataclass(frozen=True, slots=True)
class VisitPolicy:
    """The visit rules from ``[identity]``."""

    session_gap_s: float = 1800.0
    regular_visits: int = 3
    regular_window_days: float = 30.0
    scalper_entries_per_day: int = 0


@dataclass(frozen=True, slots=True)
class VisitOutcome:
    """Result of recording a sighting."""

    visit_id: int
    new_visit: bool  # False: the sighting extended the open visit (within the session gap)
    status: str  # new | returning | regular
    visits: int  # visits of this identity in the regular window
    entries_today: int  # visits started on the sighting's local day


def day_bounds(ts: float) -> tuple[float, float]:
    """Start and end (epoch s) of the local calendar day containing ``ts``."""
    day = dt.datetime.fromtimestamp(ts).date()
    start = dt.datetime.combine(day, dt.time()).timestamp()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp()
    return start, end


def record_sighting(conn: sqlite3.Connection, identity_id: str, camera: str, ts: float, policy: VisitPolicy,
                    *, zones: list[str] | None = None) -> VisitOutcome:
    """Extend the identity's open visit or start a new one, update ``last_seen``, and classify the visitor."""
    last = repo.last_visit(conn, identity_id)
    if last is not None and ts - last[2] <= policy.session_gap_s and ts >= last[1]:
        visit_id, new_visit = last[0], False
        repo.update_visit(conn, visit_id, last_seen=ts, zones=zones)
    else:
        cur = conn.execute("INSERT INTO identity_visits(identity_id, camera, started_at, last_seen, zones)"
                           " VALUES (?,?,?,?,?)", (identity_id, camera, ts, ts, json.dumps(zones or [])))
        visit_id, new_visit = int(cur.lastrowid or 0), True
    conn.execute("UPDATE identities SET last_seen = MAX(COALESCE(last_seen, 0), ?) WHERE id = ?", (ts, identity_id))
    total = repo.count_visits(conn, identity_id, 0.0)
    recent = repo.count_visits(conn, identity_id, ts - policy.regular_window_days * 86400.0)
    start, end = day_bounds(ts)
    today = repo.count_visits(conn, identity_id, start, end)
    status = "new" if total <= 1 else "regular" if recent >= policy.regular_visits else "returning"
    return VisitOutcome(visit_id, new_visit, status, recent, today)


def scalper_triggered(outcome: VisitOutcome, policy: VisitPolicy) -> bool:
    """True exactly once per day: when a new visit makes the day's entries reach the configured N."""
    n = policy.scalper_entries_per_day
    return n > 0 and outcome.new_visit and outcome.entries_today == n
