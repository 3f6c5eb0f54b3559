"""Component ``products``: the weighing session at the self-service scales.

On a scale's ``stable`` event (:meth:`WeighingService.on_scale_event`, the scale component's listener hook):
freshest tray frame → embed → top-k PLU candidates (weight plausibility from the price book) → published on the
local bus (``scale/<name>/candidates``) and served by the screen endpoint (:mod:`agent.products.http_api`).
A confirmation (HTTP ``POST /confirm`` or local bus ``scale/<name>/confirm``) records the weighing
(``weighings`` table + ``events/weighing``), learns the embedding under the chosen PLU (``events/product_learned``)
and is echoed on ``scale/<name>/weighing``. A ``removed`` event clears the scale's candidates (``GET`` answers 404,
``scale/<name>/removed`` is published). Per-scale statistics go to ``telemetry/aggregates`` every interval.

Everything that touches SQLite runs on the component's own thread: the hook, HTTP and bus callbacks only queue
jobs, so a slow screen never delays the scale and one connection serves the whole component.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from agent.config.products_models import ProductsConfig
from agent.pricebook import PriceBook
from agent.products.camera import TrayCamera
from agent.products.commands import encode_vector
from agent.products.http_api import ConfirmError, ScreenServer
from agent.products.pricing import price_weighing
from agent.products.recognizer import Recognizer, embedder_from_config, gallery_from_config
from agent.products.stats import WeighingStats
from agent.products.store import (GalleryRepository, Weighing, confirm_weighing, get_weighing, new_uid,
                                  record_weighing)
from agent.store import connect
from sync.outbox import Outbox, OutboxItem
from sync.sqlite import transaction

log = logging.getLogger(__name__)

AGGREGATES_STREAM = "telemetry/aggregates"
CONFIRM_WAIT_S = 5.0
GALLERY_CHECK_S = 5.0


class WeighingService:
    """See the module doc. ``embedder`` may be injected (tests, bench); else it is opened from the config."""

    def __init__(self, cfg: ProductsConfig, *, db_path: Path, outbox: Outbox, model_dir: Path,
                 mirror: Path | None = None, local_bus: Any = None, embedder: Any = None) -> None:
        self.cfg = cfg
        self.db_path = db_path
        self.outbox = outbox
        self.model_dir = model_dir
        self.mirror = mirror
        self.bus = local_bus
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._jobs: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=256)
        self._latest: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._stats: dict[str, WeighingStats] = {}
        self.cameras = {c.scale: TrayCamera(c.url) for c in cfg.cameras}
        self.counts = {"stable": 0, "candidates": 0, "no_frame": 0, "confirmed": 0, "learned": 0,
                       "rejected_confirms": 0, "dropped_events": 0, "errors": 0}
        self.latencies_ms: list[float] = []
        self.recognizer: Recognizer | None = None
        self.repo: GalleryRepository | None = None
        self.http: ScreenServer | None = None
        self.ready = threading.Event()
        self._checked_at = 0.0

    # -- any thread --------------------------------------------------------------------------------
    def embedder(self) -> Any:
        """The embedder (opened on first use: the command handler needs its space before the component runs)."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = embedder_from_config(self.cfg, self.model_dir, mirror=self.mirror)
            return self._embedder

    def space(self) -> tuple[str, int]:
        """(embedding space name, dimension) of this store's gallery."""
        e = self.embedder()
        return str(getattr(e, "space", e.name)), int(e.dim)

    def on_scale_event(self, event: Any) -> None:
        """Listener hook of the scale component: acts on ``stable`` (recognise) and ``removed`` (clear the
        screen) events of scales that have a camera."""
        kind = getattr(event, "kind", None)
        if kind not in ("stable", "removed") or event.scale not in self.cameras:
            return
        try:
            self._jobs.put_nowait((kind, event))
        except queue.Full:
            self.counts["dropped_events"] += 1

    def reload_gallery(self) -> None:
        """Re-read the gallery from the store (after a products.gallery_update command committed)."""
        self._jobs.put(("reload",))

    def confirm(self, body: dict[str, Any], *, wait: bool = True) -> dict[str, Any] | None:
        """Record a confirmation ``{"weighing_id", "plu"}`` (``plu`` None = none of these); raises
        :class:`ConfirmError`. With ``wait=False`` (bus callbacks) it is queued and the result is published."""
        wid, plu = body.get("weighing_id"), body.get("plu")
        if not isinstance(wid, str) or not wid or (plu is not None and (not isinstance(plu, str) or not plu)):
            self.counts["rejected_confirms"] += 1
            raise ConfirmError(400, "invalid_body", "expected {\"weighing_id\": \"...\", \"plu\": \"...\" or null}")
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self._jobs.put(("confirm", wid, plu, future, time.monotonic()))
        if not wait:
            return None
        return future.result(timeout=CONFIRM_WAIT_S)

    def latest(self, scale: str | None) -> Any:
        """The latest candidates payload of ``scale``, or of every scale (``None``)."""
        if scale is None:
            return {name: self._latest.get(name) for name in self.cameras}
        return self._latest.get(scale)

    def status(self) -> dict[str, Any]:
        """Counters, gallery size, endpoint and cameras."""
        lat = sorted(self.latencies_ms[-200:])
        return {"counts": dict(self.counts), "gallery": len(self.recognizer.gallery) if self.recognizer else 0,
                "space": self.repo.space if self.repo else None, "http_port": self.http.port if self.http else None,
                "p50_stable_to_candidates_ms": round(lat[len(lat) // 2], 2) if lat else None,
                "cameras": {n: c.status() for n, c in self.cameras.items()}}

    # -- the component's thread ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Load the gallery, serve the screen endpoint and process jobs until ``stop``."""
        conn = connect(self.db_path)
        embedder = self.embedder()
        space, dim = self.space()
        self.recognizer = Recognizer(embedder, gallery_from_config(self.cfg, dim), top_k=self.cfg.top_k,
                                     weight_penalty=self.cfg.weight_penalty)
        self.repo = GalleryRepository(self.recognizer.gallery, space)
        loaded = self.repo.load(conn)
        log.info("product gallery loaded", extra={"space": space, "entries": loaded})
        if self.bus is not None:
            self.bus.subscribe("scale/+/confirm", self._on_bus_confirm)
        if self.cfg.http_port:
            self.http = ScreenServer(self.cfg.http_host, self.cfg.http_port, latest=self.latest,
                                     confirm=self.confirm).start()
        for camera in self.cameras.values():
            camera.start()
        self.ready.set()
        try:
            while not stop.is_set():
                try:
                    job = self._jobs.get(timeout=0.2)
                except queue.Empty:
                    job = None
                if job is not None:
                    self._dispatch(conn, job)
                self._housekeeping(conn)
        finally:
            self._flush_stats(conn, force=True)
            if self.http is not None:
                self.http.close()
            for camera in self.cameras.values():
                camera.close()
            conn.close()
            self.outbox.close()

    def _dispatch(self, conn: Any, job: tuple[Any, ...]) -> None:
        kind = job[0]
        try:
            if kind == "stable":
                self._on_stable(conn, job[1])
            elif kind == "removed":
                self._on_removed(job[1])
            elif kind == "confirm":
                _, wid, plu, future, _ = job
                try:
                    future.set_result(self._on_confirm(conn, wid, plu))
                except ConfirmError as exc:
                    self.counts["rejected_confirms"] += 1
                    future.set_exception(exc)
            elif kind == "reload":
                assert self.recognizer is not None and self.repo is not None
                self.recognizer.gallery = gallery_from_config(self.cfg, self.recognizer.gallery.dim)
                self.repo = GalleryRepository(self.recognizer.gallery, self.repo.space)
                self.repo.load(conn)
        except Exception:  # one bad weighing must not stop the scale's recognition
            self.counts["errors"] += 1
            log.exception("products job failed", extra={"job": kind})
            if kind == "confirm":
                self._jobs.put(("reload",))  # the transaction rolled back: drop what the gallery added in memory
                if not job[3].done():
                    job[3].set_exception(ConfirmError(500, "internal", "confirmation failed; see the agent log"))

    def _on_stable(self, conn: Any, event: Any) -> None:
        assert self.recognizer is not None
        self.counts["stable"] += 1
        camera = self.cameras[event.scale]
        image = camera.grab()
        if image is None:
            self.counts["no_frame"] += 1
            log.warning("no tray frame for a stable weighing", extra={"scale": event.scale})
            return
        roi = next((c.roi for c in self.cfg.cameras if c.scale == event.scale), None)
        vector = self.recognizer.embed(image, roi)
        weight = float(event.weight_kg or 0.0)
        book = PriceBook(conn)
        found = self.recognizer.gallery.search(vector, self.cfg.top_k * 2)
        articles = book.many([c.plu for c in found], event.ts)
        ranked = self.recognizer.rank(vector, weight_kg=weight,
                                      piece_kg={p: a.typical_weight_kg for p, a in articles.items()})
        candidates = []
        for c in ranked:
            item: dict[str, Any] = {"rank": c.rank, "plu": c.plu, "score": c.score}
            article = articles.get(c.plu)
            if article is not None:
                item.update({"name": article.name, **price_weighing(article, weight, event.ts)})
            candidates.append(item)
        wid = new_uid()
        latency_ms = (time.monotonic() - event.mono) * 1000.0
        payload = {"weighing_id": wid, "scale": event.scale, "weight_kg": round(weight, 4), "ts": round(event.ts, 3),
                   "candidates": candidates, "stable_to_candidates_ms": round(latency_ms, 2)}
        self._latest[event.scale] = payload
        if self.bus is not None:
            self.bus.publish(f"scale/{event.scale}/candidates", payload)
        self.latencies_ms.append(latency_ms)
        del self.latencies_ms[:-1000]
        self.counts["candidates"] += 1
        self._stats_for(event.scale).candidates(latency_ms)
        self._pending[wid] = {"vector": vector, "scale": event.scale, "mono": event.mono, "weight": weight,
                              "candidates": candidates, "ts": event.ts}
        with transaction(conn):
            record_weighing(conn, Weighing(wid, event.scale, event.ts, weight, candidates, latency_ms))

    def _on_removed(self, event: Any) -> None:
        # The platter is empty: the next customer must not see (and confirm) the last one's candidates. The
        # weighing stays confirmable by its id until pending_ttl_s.
        if self._latest.pop(event.scale, None) is not None and self.bus is not None:
            self.bus.publish(f"scale/{event.scale}/removed", {"scale": event.scale, "ts": round(event.ts, 3)})

    def _on_confirm(self, conn: Any, wid: str, plu: str | None) -> dict[str, Any]:
        assert self.repo is not None
        pending = self._pending.pop(wid, None)
        row = get_weighing(conn, wid)
        if row is None:
            raise ConfirmError(404, "unknown_weighing", f"no weighing {wid}")
        if row["status"] != "pending" or pending is None and time.time() - row["stable_ts"] > self.cfg.pending_ttl_s:
            raise ConfirmError(409, "not_pending", f"weighing {wid} is {row['status']} or expired")
        now, now_mono = time.time(), time.monotonic()
        confirm_ms = (now_mono - pending["mono"]) * 1000.0 if pending else (now - row["stable_ts"]) * 1000.0
        rank = next((c["rank"] for c in row["candidates"] if c["plu"] == plu), None) if plu else None
        # Priced as at the stable weight, like the candidates: the customer pays the total the screen showed
        # even if a price change takes effect before the tap.
        priced_at = row["stable_ts"]
        article = PriceBook(conn).get(plu, priced_at) if plu else None
        price = price_weighing(article, row["weight_kg"], priced_at) if article else {}
        record = {"weighing_id": wid, "scale": row["scale"], "plu": plu, "name": article.name if article else None,
                  "weight_kg": row["weight_kg"], "unit_price": price.get("unit_price"), "unit": price.get("unit"),
                  "quantity": price.get("quantity"), "total": price.get("total"), "chosen_rank": rank,
                  "candidates": [{"plu": c["plu"], "score": c["score"]} for c in row["candidates"]],
                  "stable_to_candidates_ms": row["candidates_ms"], "stable_to_confirm_ms": round(confirm_ms, 1),
                  "stable_ts": row["stable_ts"], "confirmed_at": round(now, 3)}
        learned: dict[str, Any] | None = None
        with transaction(conn):
            confirm_weighing(conn, wid, plu=plu, chosen_rank=rank, unit_price=price.get("unit_price"),
                             unit=price.get("unit"), total=price.get("total"), confirmed_at=now,
                             confirm_ms=confirm_ms)
            items = [OutboxItem("events/weighing", record, event_ts=now)]
            if plu and pending is not None and self.cfg.learn_on_confirm:
                result = self.repo.enrol(conn, plu, pending["vector"], source=f"weighing:{wid}")
                learned = {"added": result.added, "reason": result.reason, "uid": result.uid,
                           "replaced": result.removed}
                if result.added and self.cfg.share_learned:
                    items.append(OutboxItem("events/product_learned", {
                        "space": self.repo.space, "plu": plu, "uid": result.uid, "replaced": result.removed,
                        "vector": encode_vector(pending["vector"]), "source": "confirmation", "weighing_id": wid},
                        event_ts=now))
            self.outbox.enqueue_in(conn, items)
        self.counts["confirmed"] += 1
        self.counts["learned"] += bool(learned and learned["added"])
        self._stats_for(row["scale"]).confirmed(rank, confirm_ms)
        record["learned"] = learned
        if self.bus is not None:
            self.bus.publish(f"scale/{row['scale']}/weighing", record)
        return record

    def _on_bus_confirm(self, suffix: str, payload: dict[str, Any]) -> None:
        try:
            self.confirm(payload, wait=False)
        except ConfirmError as exc:
            log.warning("ignoring a bad confirmation on the local bus", extra={"topic": suffix, "error": str(exc)})

    def _stats_for(self, scale: str) -> WeighingStats:
        if scale not in self._stats:
            self._stats[scale] = WeighingStats(self.cfg.aggregate_interval_s, time.time(), self.cfg.top_k)
        return self._stats[scale]

    def _housekeeping(self, conn: Any) -> None:
        now = time.monotonic()
        if now - self._checked_at >= GALLERY_CHECK_S and self.repo is not None and self.recognizer is not None:
            # Another process (store-agent products learn) may have enrolled: the row count tells.
            self._checked_at = now
            stored = conn.execute("SELECT COUNT(*) FROM product_embeddings WHERE space = ?",
                                  (self.repo.space,)).fetchone()[0]
            if stored != len(self.recognizer.gallery):
                self._dispatch(conn, ("reload",))
        cutoff = now - self.cfg.pending_ttl_s
        for wid in [w for w, p in self._pending.items() if p["mono"] < cutoff]:
            del self._pending[wid]
        self._flush_stats(conn)

    def _flush_stats(self, conn: Any, force: bool = False) -> None:
        now = time.time()
        items = []
        for scale, stats in self._stats.items():
            if stats.due(now) or (force and (stats.weighings or stats.confirmed_n)):
                items.append(OutboxItem(AGGREGATES_STREAM, {"kind": "weighings", "scale": scale,
                                                            **stats.flush(now)}, event_ts=now))
        if items:
            with transaction(conn):
                self.outbox.enqueue_in(conn, items)
