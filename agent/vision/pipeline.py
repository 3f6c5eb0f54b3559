"""The supervised component of one camera: a live frame source through the :class:`FrameProcessor`, events
and interval aggregates into the local store and the sync outbox.

No frame is written anywhere unless the camera's ``debug_snapshots`` is on, and then only face-blurred JPEGs
under ``<data_dir>/snapshots/<camera>`` (see :mod:`agent.vision.snapshots`); what leaves the component are
counts, times and normalised positions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.analytics.camera import Event
from agent.config import CameraConfig
from agent.config.identity_models import IdentityConfig
from agent.config.vision_models import ModelsConfig, VisionConfig
from agent.vision.processor import FrameProcessor
from agent.vision.snapshots import make_snapshot_writer
from agent.vision.source import FrameSource
from models.detectors import build_detector
from sync.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

AGGREGATES_STREAM = "telemetry/aggregates"


def event_item(camera: str, event: Event) -> OutboxItem:
    """The outbox message of an analytics event (``events/line_crossing``, ``events/zone_visit``, …)."""
    return OutboxItem(f"events/{event.type}", {"camera": camera, **event.as_dict()}, event_ts=event.ts,
                      schema=f"{event.type}/1")


def aggregate_item(body: dict[str, Any]) -> OutboxItem:
    """The outbox message of one interval's aggregates (priority 0: never shed)."""
    return OutboxItem(AGGREGATES_STREAM, body, event_ts=body["interval_start"] + body["interval_s"],
                      schema="aggregates/1")


class AnalyticsPublisher:
    """Writes events and aggregates to the agent's own tables and the outbox in one transaction."""

    def __init__(self, outbox: Outbox, camera: str) -> None:
        self.outbox = outbox
        self.camera = camera
        self.published = {"events": 0, "aggregates": 0}

    def publish(self, events: Sequence[Event], bodies: Sequence[dict[str, Any]]) -> None:
        if not events and not bodies:
            return
        conn = self.outbox.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                conn.execute("INSERT INTO events(type, ts, source, body) VALUES (?,?,?,?)",
                             (event.type, event.ts, self.camera, json.dumps(event.as_dict())))
            for body in bodies:
                # An interval cut by a restart is reported in parts (each with coverage_s); keep every part.
                conn.execute("INSERT INTO aggregates(kind, source, interval_start, interval_s, body)"
                             " VALUES ('people', ?, ?, ?, ?)",
                             (self.camera, body["interval_start"], body["interval_s"], json.dumps(body)))
            self.outbox.enqueue_in(conn, [event_item(self.camera, e) for e in events]
                                   + [aggregate_item(b) for b in bodies])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.published["events"] += len(events)
        self.published["aggregates"] += len(bodies)


class CameraPipeline:
    """Component ``camera-<name>``: runs until stopped; a crash is restarted by the supervisor."""

    def __init__(self, camera: CameraConfig, vision: VisionConfig, models: ModelsConfig, outbox: Outbox, *,
                 snapshot_dir: Path | None = None, identity_cfg: IdentityConfig | None = None,
                 identity_service: Any = None) -> None:
        self.name = f"camera-{camera.name}"
        self.camera = camera
        self.vision = vision
        self.models = models
        self.outbox = outbox
        self.snapshot_dir = snapshot_dir
        self.publisher = AnalyticsPublisher(outbox, camera.name)
        self.processor: FrameProcessor | None = None
        self.source: FrameSource | None = None
        self.identity_cfg = identity_cfg
        self.identity_service = identity_service  # agent.identity.service.IdentityService (None: no identity)
        self.identity_hook: Any = None
        self.identity_error: str | None = None

    def run(self, stop: threading.Event) -> None:
        a = self.camera.analytics
        detector = build_detector(a.detector, Path(self.models.dir), threads=self.vision.inference_threads,
                                  score_threshold=a.score_threshold)
        snapshots = None
        if self.snapshot_dir is not None:
            snapshots = make_snapshot_writer(self.camera, self.snapshot_dir, model_dir=Path(self.models.dir))
        self.processor = FrameProcessor(self.camera, self.vision, detector, snapshots=snapshots)
        self._attach_identity()
        self.source = FrameSource(self.camera.url, live=True, reconnect_max_s=a.reconnect_max_s)
        self.source.start()
        try:
            while not stop.is_set():
                frame = self.source.read(timeout=0.5)
                now = time.time()
                if frame is not None:
                    result = self.processor.process(frame)
                    self.publisher.publish(result.events, [])
                elif self.source.ended:
                    raise RuntimeError(f"source {self.camera.url} ended")
                if self.processor.analytics.due(now):
                    self.publisher.publish([], self.processor.analytics.flush(now))
            if self.identity_hook is not None:
                self.identity_hook.finish(time.time())
            events, bodies = self.processor.analytics.finish(time.time())
            self.publisher.publish(events, bodies)
        finally:
            self.source.close()
            self.outbox.close()

    def _attach_identity(self) -> None:
        """Face identification only on cameras with identification on and a running identity service; the face
        models are not loaded otherwise, and counting never waits for it."""
        if not self.camera.identification or self.identity_cfg is None or self.processor is None:
            return
        if self.identity_service is None:
            self.identity_error = "identity service not running (see the identity component)"
            log.warning("camera %s: identification is on but the identity service is not running (see the "
                        "identity component's status); counting only", self.camera.name)
            return
        from agent.identity.pipeline import build_identity_hook

        try:
            self.identity_hook = build_identity_hook(self.camera.name, True, self.identity_cfg,
                                                     Path(self.models.dir), self.identity_service,
                                                     threads=self.vision.inference_threads,
                                                     staff=self.processor.analytics.staff,
                                                     zones=self.processor.analytics.zones)
        except Exception as exc:  # missing/bad face model: report it, keep counting
            self.identity_error = str(exc)
            log.error("camera %s: face identification not started: %s", self.camera.name, exc)
            return
        self.processor.identity = self.identity_hook

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"published": dict(self.publisher.published)}
        if self.identity_hook is not None:
            out["identity"] = self.identity_hook.status()
        elif self.identity_error:
            out["identity"] = {"error": self.identity_error}
        if self.processor is not None:
            out["processor"] = self.processor.status()
        if self.source is not None:
            out["source"] = self.source.stats()
        return out
