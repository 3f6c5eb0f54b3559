"""``IdentityService``: the one entry point of the face pipeline into galleries, visits, watchlists and alerts.

Contract (called by ``agent/identity/pipeline.py`` once per track decision, from camera threads)::

    decision = service.observe(camera, track_id, embedding (D,) float32, quality 0-1, ts)
    service.end_track(camera, track_id, ts, zones=["fresh", ...], dwell_s=42.0)   # optional, at track end

``Decision.kind`` is one of ``new | returning | regular`` (anonymous visitor: ``gallery == "visitor"``,
``status`` repeats the visit status), ``member | vip | staff | watchlist`` (enrolled galleries) or ``optout``.
``visitor_id`` is the pseudonymous id the decision is about (None for ``optout``); ``score`` the cosine
similarity of the match (None for a new face). Calling ``observe`` again for the same track re-decides: a track
first seen as a new visitor that now matches someone else is merged into them.

Privacy enforced here: an opt-out match writes nothing and emits nothing; staff are never recorded as visits;
embeddings are encrypted before they touch the database and leave the box only when
``share_embeddings_with_cloud`` is set; watchlist/VIP alerts say "possible match" with the score and wait for
a person's confirm/dismiss (:meth:`decide_alert`).
"""

from __future__ import annotations

import base64
import collections
import logging
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from agent.config.identity_models import IdentityConfig
from agent.identity import repository as repo
from agent.identity.alerts import DECISION_SUFFIX, AlertDispatcher, alert_message
from agent.identity.crypto import EmbeddingCipher
from agent.identity.decision import Decision
from agent.identity.gallery import normalise
from agent.identity.galleries import GallerySet, Match, Member
from agent.identity.visits import VisitPolicy, record_sighting, scalper_triggered
from sync.outbox import Outbox, OutboxItem
from sync.sqlite import connect, transaction

log = logging.getLogger(__name__)

__all__ = ["Decision", "IdentityService"]

_TRACK_MEMORY = 10_000


class IdentityService:
    """Galleries in faiss over the encrypted store; thread-safe (one lock around decisions and changes)."""

    def __init__(self, cfg: IdentityConfig, db_path: Path, cipher: EmbeddingCipher, outbox: Outbox, *,
                 alerts: AlertDispatcher | None = None, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.db_path = db_path
        self.cipher = cipher
        self.outbox = outbox
        self.alerts = alerts
        self.clock = clock
        self.dim = cfg.embedding_dim
        self._lock = threading.RLock()
        self.apply_config(cfg)
        self.galleries = GallerySet(self.dim, ann_min_size=cfg.ann_min_size, nprobe=cfg.ann_nprobe)
        self._local = threading.local()
        self._tracks: collections.OrderedDict[tuple[str, int], Decision] = collections.OrderedDict()
        self._refreshed_at = 0.0
        self._versions: dict[str, float] = {}
        self.counts = {"observed": 0, "new": 0, "matched": 0, "optout": 0, "alerts": 0, "purged": 0}
        self.load()

    def apply_config(self, cfg: IdentityConfig) -> None:
        """Take new thresholds, visit rules, alert targets and sharing from a config reload. The embedding
        dimension, key and index sizes need a restart."""
        with self._lock:
            old, self.cfg = self.cfg, cfg.model_copy(update={"embedding_dim": self.dim})
            self.policy = VisitPolicy(cfg.session_gap_s, cfg.regular_visits, cfg.regular_window_days,
                                      cfg.scalper_entries_per_day)
            self.thresholds = {g: cfg.match_threshold for g in repo.GALLERIES}
            self.thresholds.update(watchlist=cfg.watchlist_threshold, vip=cfg.watchlist_threshold)
            if self.alerts is not None and (old.alert_webhook_url, old.alert_webhook_timeout_s) != (
                    cfg.alert_webhook_url, cfg.alert_webhook_timeout_s):
                self.alerts.webhook_url = cfg.alert_webhook_url
                self.alerts.webhook_timeout_s = cfg.alert_webhook_timeout_s

    # -- connections / loading -----------------------------------------------------------------------
    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the store."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.db_path)
        return conn

    def close(self) -> None:
        """Close this thread's connection and stop the alert thread."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self.alerts is not None:
            self.alerts.close()

    def load(self) -> None:
        """(Re)build every gallery from the encrypted store (one bulk add per gallery)."""
        with self._lock:
            self._refreshed_at = self.clock()
            self.galleries = GallerySet(self.dim, ann_min_size=self.cfg.ann_min_size, nprobe=self.cfg.ann_nprobe)
            vectors: dict[str, list[np.ndarray]] = {}
            for identity_id, _, _, vec in repo.load_embeddings(self.conn, self.cipher):
                if vec.shape == (self.dim,):
                    vectors.setdefault(identity_id, []).append(vec)
            rows = repo.list_identities(self.conn)
            self._versions = {row.id: row.updated_at for row in rows}
            empty = np.zeros((0, self.dim), np.float32)
            self.galleries.add_bulk([(Member(row.id, row.gallery, row.kind, row.reason, row.expires_at),
                                      np.stack(vectors[row.id]) if row.id in vectors else empty) for row in rows])

    def _remember(self, row: repo.IdentityRow) -> None:
        vectors = [v for _, _, _, v in repo.load_embeddings(self.conn, self.cipher, identity_id=row.id)]
        vectors = [v for v in vectors if v.shape == (self.dim,)]
        member = Member(row.id, row.gallery, row.kind, row.reason, row.expires_at)
        if row.id in self.galleries:
            self.galleries.remove(row.id)
        self.galleries.add(member, np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32))
        self._versions[row.id] = row.updated_at

    def reload(self, identity_ids: list[str]) -> None:
        """Bring the in-memory galleries in step with the store for these ids (after a command or the CLI)."""
        with self._lock:
            for identity_id in identity_ids:
                row = repo.get_identity(self.conn, identity_id)
                if row is None:
                    self.galleries.remove(identity_id)
                    self._versions.pop(identity_id, None)
                    self._forget_tracks(identity_id)
                else:
                    self._remember(row)

    def refresh(self) -> int:
        """Pick up changes other processes made (CLI enrol/forget): identities updated and tombstones added
        since the last refresh. Returns how many ids were reloaded."""
        with self._lock:
            since, self._refreshed_at = self._refreshed_at - 2.0, self.clock()
            ids = [r[0] for r in self.conn.execute("SELECT id, updated_at FROM identities WHERE updated_at >= ?",
                                                   (since,)) if self._versions.get(r[0]) != r[1]]
            ids += [r[0] for r in self.conn.execute("SELECT id FROM identity_tombstones WHERE deleted_at >= ?",
                                                    (since,)) if r[0] in self.galleries]
            self.reload(list(dict.fromkeys(ids)))
            return len(ids)

    def attach_bus(self, bus: Any) -> None:
        """Accept confirm/dismiss decisions from staff devices on the local bus (``alerts/identity/decision``,
        payload ``{"alert_id": ..., "decision": "confirm"|"dismiss", "by": "..."}``)."""

        def on_decision(suffix: str, payload: dict[str, Any]) -> None:
            alert_id, decision = payload.get("alert_id"), payload.get("decision")
            if not isinstance(alert_id, str) or decision not in ("confirm", "dismiss"):
                log.warning("ignoring a malformed alert decision on the local bus")
                return
            self.decide_alert(alert_id, decision, actor=f"local:{payload.get('by') or 'staff-device'}")

        bus.subscribe(DECISION_SUFFIX, on_decision)

    # -- deciding ---------------------------------------------------------------------------------------
    def observe(self, camera: str, track_id: int, embedding: np.ndarray, quality: float, ts: float,
                *, zones: list[str] | None = None) -> Decision:
        """Decide who the face of one track is, record the visit and raise alerts (see the module doc)."""
        vector = np.asarray(embedding, np.float32).reshape(-1)
        if vector.shape != (self.dim,) or not np.all(np.isfinite(vector)):
            raise ValueError(f"embedding must be {self.dim} finite floats, got shape {vector.shape}")
        vector = normalise(vector)[0]
        key = (camera, int(track_id))
        with self._lock:
            self.counts["observed"] += 1
            prev = self._tracks.get(key)
            if prev is not None and prev.visitor_id and repo.get_identity(self.conn, prev.visitor_id) is None:
                # Deleted by another process (CLI forget) since this track was decided: never add a face to it.
                self.galleries.remove(prev.visitor_id)
                self._versions.pop(prev.visitor_id, None)
                self._forget_tracks(prev.visitor_id)
                prev = None
            provisional = prev is not None and prev.kind == "new" and prev.visitor_id is not None
            created_here = frozenset({prev.visitor_id}) if provisional else frozenset()
            match = self._match(vector, ts, exclude=created_here)
            if prev is not None and not self._should_redecide(prev, match):
                if prev.kind == "new" and prev.visitor_id and match is None:
                    self._add_face(prev.visitor_id, vector, quality)
                return prev
            # A provisional visitor is merged away when the track turns out to be someone known, staff or an
            # opt-out; a watchlist match keeps the visit (the person is still a visitor) and alerts.
            undo = created_here if match is None or match.member.gallery != "watchlist" else frozenset()
            decision = self._decide(camera, track_id, vector, quality, ts, match, zones, undo=undo)
            self._tracks[key] = decision
            self._tracks.move_to_end(key)
            while len(self._tracks) > _TRACK_MEMORY:
                self._tracks.popitem(last=False)
            return decision

    def _match(self, vector: np.ndarray, now: float, exclude: frozenset[str]) -> Match | None:
        while True:
            match = self.galleries.best(vector, now=now, thresholds=self.thresholds, exclude=exclude)
            if match is None or repo.get_identity(self.conn, match.member.id) is not None:
                return match
            self.galleries.remove(match.member.id)  # deleted by another process (CLI forget): never match it

    @staticmethod
    def _should_redecide(prev: Decision, match: Match | None) -> bool:
        if match is None:
            return False
        if prev.kind == "new":
            return match.member.id != prev.visitor_id
        order = repo.GALLERIES
        return (match.member.id != prev.visitor_id and prev.gallery in order
                and order.index(match.member.gallery) < order.index(prev.gallery))

    def _decide(self, camera: str, track_id: int, vector: np.ndarray, quality: float, ts: float,
                match: Match | None, zones: list[str] | None, undo: frozenset[str]) -> Decision:
        conn = self.conn
        alerts: list[dict[str, Any]] = []
        added: list[tuple[Member, np.ndarray]] = []
        with transaction(conn):
            for identity_id in undo:  # this track's provisional new visitor turned out to be someone else
                repo.delete_identity(conn, identity_id)
            decision, items = self._apply(conn, camera, track_id, vector, quality, ts, match, zones, alerts, added)
            if items:
                self.outbox.enqueue_in(conn, items)
        for identity_id in undo:
            self.galleries.remove(identity_id)
            self._versions.pop(identity_id, None)
        for member, vecs in added:
            self.galleries.add(member, vecs)
            if member.id not in self._versions:  # created here: remember its version so refresh() skips it
                row = conn.execute("SELECT updated_at FROM identities WHERE id = ?", (member.id,)).fetchone()
                self._versions[member.id] = row[0] if row else 0.0
        for payload in alerts:
            self.counts["alerts"] += 1
            if self.alerts is not None:
                self.alerts.send(payload)
        return decision

    def _apply(self, conn: sqlite3.Connection, camera: str, track_id: int, vector: np.ndarray, quality: float,
               ts: float, match: Match | None, zones: list[str] | None, alerts: list[dict[str, Any]],
               added: list[tuple[Member, np.ndarray]]) -> tuple[Decision, list[OutboxItem]]:
        if match is not None and match.member.gallery == "optout":
            self.counts["optout"] += 1  # suppress everything: no visit, no event, no audit line
            return Decision("optout", None, match.score, "optout"), []
        if match is not None and match.member.gallery == "staff":
            self.counts["matched"] += 1
            return Decision("staff", match.member.id, match.score, "staff"), []
        if match is not None and match.member.gallery == "watchlist":
            self.counts["matched"] += 1
            return self._hit(conn, camera, track_id, vector, ts, match.member, match.score, alerts)
        if match is None:
            self.counts["new"] += 1
            member = Member(repo.new_id(), "visitor")
            repo.insert_identity(conn, self.cipher, identity_id=member.id, gallery="visitor",
                                 embeddings=[(vector, quality)], last_seen=ts, now=ts)
            added.append((member, vector[None, :]))
            score = None
        else:
            self.counts["matched"] += 1
            member, score = match.member, match.score
            if self.galleries.count(member.id) < self.cfg.max_embeddings_per_identity and member.gallery == "visitor":
                repo.add_embedding(conn, self.cipher, member.id, vector, quality)
                added.append((member, vector[None, :]))
        outcome = record_sighting(conn, member.id, camera, ts, self.policy, zones=zones)
        kind = outcome.status if member.gallery == "visitor" else member.gallery
        decision = Decision(kind, member.id, score, member.gallery, outcome.status, visit_id=outcome.visit_id)
        items: list[OutboxItem] = []
        if outcome.new_visit:
            body = {"visitor_id": member.id, "kind": kind, "gallery": member.gallery, "status": outcome.status,
                    "camera": camera, "ts": ts, "score": _round(score), "visits": outcome.visits}
            items.append(OutboxItem("events/visitor", self._with_embedding(body, vector), event_ts=ts))
        if member.gallery == "vip" and self.cfg.alert_on_vip and outcome.new_visit:
            hit, hit_items = self._hit(conn, camera, track_id, vector, ts, member, score or 0.0, alerts)
            decision = replace(decision, alert_id=hit.alert_id)
            items += hit_items
        if member.gallery == "visitor" and scalper_triggered(outcome, self.policy):
            entry = self._scalper_entry(conn, member.id, vector, quality, ts, outcome.entries_today, added)
            body = {"visitor_id": member.id, "watchlist_id": entry.id, "entries_today": outcome.entries_today,
                    "camera": camera, "ts": ts}
            items.append(OutboxItem("events/scalper_detected", self._with_embedding(body, vector), event_ts=ts))
            hit_score = 1.0 if score is None else score
            hit, hit_items = self._hit(conn, camera, track_id, vector, ts, entry, hit_score, alerts)
            return replace(hit, visit_id=outcome.visit_id, status=outcome.status), items + hit_items
        return decision, items

    def _hit(self, conn: sqlite3.Connection, camera: str, track_id: int, vector: np.ndarray, ts: float,
             member: Member, score: float, alerts: list[dict[str, Any]]) -> tuple[Decision, list[OutboxItem]]:
        """A watchlist/VIP match: alert row, audit line, staff alert and ``events/watchlist_hit`` — unless this
        person was alerted on by this camera within ``alert_cooldown_s`` (then the decision carries that alert's
        id). Another camera alerts again: staff learn where the person is now."""
        kind = "watchlist" if member.gallery == "watchlist" else member.gallery
        recent = conn.execute("SELECT id FROM identity_alerts WHERE identity_id = ? AND camera = ? AND ts >= ?"
                              " ORDER BY ts DESC LIMIT 1",
                              (member.id, camera, ts - self.cfg.alert_cooldown_s)).fetchone()
        if recent is not None:
            return Decision(kind, member.id, score, member.gallery, watchlist_kind=member.kind, alert_id=recent[0]), []
        alert_id = repo.new_id()
        conn.execute("INSERT INTO identity_alerts(id, identity_id, gallery, kind, camera, ts, score)"
                     " VALUES (?,?,?,?,?,?,?)", (alert_id, member.id, member.gallery, member.kind, camera, ts, score))
        repo.audit(conn, "hit", identity_id=member.id, gallery=member.gallery,
                   detail={"alert_id": alert_id, "camera": camera, "score": _round(score), "kind": member.kind},
                   now=ts)
        payload = {"alert_id": alert_id, "type": "possible_match", "match": "possible",
                   "message": alert_message(member.gallery, member.kind, score), "gallery": member.gallery,
                   "watchlist_kind": member.kind, "identity_id": member.id, "reason": member.reason,
                   "score": _round(score), "camera": camera, "track_id": int(track_id), "ts": ts,
                   "needs_confirmation": True}
        alerts.append(payload)
        stream = "events/watchlist_hit"  # also for a VIP (issue contract); ``gallery`` in the body tells them apart
        body = {k: payload[k] for k in ("alert_id", "match", "gallery", "watchlist_kind", "identity_id", "score",
                                         "camera", "ts")}
        decision = Decision(kind, member.id, score, member.gallery, watchlist_kind=member.kind, alert_id=alert_id)
        return decision, [OutboxItem(stream, self._with_embedding(body, vector), event_ts=ts)]

    def _scalper_entry(self, conn: sqlite3.Connection, visitor_id: str, vector: np.ndarray, quality: float,
                       ts: float, entries: int, added: list[tuple[Member, np.ndarray]]) -> Member:
        vectors = [v for _, _, _, v in repo.load_embeddings(conn, self.cipher, identity_id=visitor_id)] or [vector]
        member = Member(repo.new_id(), "watchlist", "scalper", f"{entries} entries in one day",
                        ts + self.cfg.scalper_watch_days * 86400.0)
        repo.insert_identity(conn, self.cipher, identity_id=member.id, gallery="watchlist", kind="scalper",
                             reason=member.reason, source="edge:scalper-rule", expires_at=member.expires_at,
                             embeddings=[(v, quality) for v in vectors], now=ts)
        repo.audit(conn, "watchlist_add", identity_id=member.id, gallery="watchlist", actor="rule:scalper",
                   detail={"visitor_id": visitor_id, "entries_today": entries}, now=ts)
        added.append((member, np.stack(vectors)))
        log.info("scalper rule: visitor put on the local watchlist",
                 extra={"visitor_id": visitor_id, "watchlist_id": member.id, "entries_today": entries})
        return member

    def _add_face(self, identity_id: str, vector: np.ndarray, quality: float) -> None:
        if self.galleries.count(identity_id) >= self.cfg.max_embeddings_per_identity:
            return
        conn = self.conn
        with transaction(conn):
            repo.add_embedding(conn, self.cipher, identity_id, vector, quality)
        member = self.galleries.members.get(identity_id)
        if member is not None:
            self.galleries.add(member, vector[None, :])

    def _with_embedding(self, body: dict[str, Any], vector: np.ndarray) -> dict[str, Any]:
        if self.cfg.share_embeddings_with_cloud:
            body = {**body, "embedding_b64": base64.b64encode(vector.astype("<f4").tobytes()).decode()}
        return body

    def _forget_tracks(self, identity_id: str) -> None:
        for key in [k for k, d in self._tracks.items() if d.visitor_id == identity_id]:
            del self._tracks[key]

    # -- track end, alerts, retention ---------------------------------------------------------------
    def end_track(self, camera: str, track_id: int, ts: float, *, zones: list[str] | None = None,
                  dwell_s: float | None = None) -> None:
        """Add the zones visited and dwell of a finished track to its visit record."""
        with self._lock:
            decision = self._tracks.pop((camera, int(track_id)), None)
            if decision is None or decision.visit_id is None:
                return
            with transaction(self.conn):
                repo.update_visit(self.conn, decision.visit_id, last_seen=ts, zones=zones, dwell_s=dwell_s)

    def decide_alert(self, alert_id: str, decision: str, *, actor: str) -> bool:
        """Record a person's confirm/dismiss of an alert (audit + ``events/watchlist_decision``)."""
        from agent.identity.audit import record_alert_decision

        conn = self.conn
        with self._lock:
            with transaction(conn):
                item = record_alert_decision(conn, alert_id, decision, actor=actor, now=self.clock())
                if item is not None:
                    self.outbox.enqueue_in(conn, [item])
        return item is not None

    def purge(self, now: float | None = None) -> int:
        """Delete visitors past retention and expired watchlist entries, from the store and from memory."""
        now = self.clock() if now is None else now
        with self._lock:
            with transaction(self.conn) as conn:
                gone = repo.purge_expired(conn, now=now, retention_s=self.cfg.retention_days * 86400.0)
            for identity_id, _ in gone:
                self.galleries.remove(identity_id)
                self._versions.pop(identity_id, None)
                self._forget_tracks(identity_id)
            self.counts["purged"] += len(gone)
            if gone:
                log.info("identity retention purge", extra={"deleted": len(gone)})
            return len(gone)

    def status(self) -> dict[str, Any]:
        """Gallery sizes and counters."""
        with self._lock:
            sizes = self.galleries.sizes()
        return {"galleries": sizes, **self.counts}


def _round(score: float | None) -> float | None:
    return None if score is None else round(float(score), 4)
