"""Demo part ``faces``: face identity on the sample video, privacy first.

1. ``prepare``: installs YuNet + MobileFaceNet and the ``faces-video`` sample (sha256-verified, upstream or
   mirror), creates the embedding key, starts a loopback webhook that stands in for the staff alert screen, and
   adds camera ``faces-entrance`` with ``identification = true`` plus an ``[identity]`` table. ``session_gap_s``
   is 0 in the demo so that the second camera's sighting counts as a return visit (a store would use 30 min).
2. ``exercise``: waits for the entrance camera to decide its two people (new visitors), computes a face
   embedding from one frame of the video in memory, enrols it through the signed ``watchlist.upsert`` command
   (as the cloud would), then enables camera ``faces-checkout`` on the same footage with a signed
   ``config.update``. There one person is a returning visitor and the other a "possible match" alert.
3. ``summary`` (key ``faces``): visitor decisions per camera, what the cloud received (``events/visitor``,
   ``events/watchlist_hit``) and the alerts the webhook got, with their delay.

No frame or face crop is written: the embedding is computed from a decoded frame in memory.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agent.demo_parts import DemoContext, wait_until

ENTRANCE = "faces-entrance"
CHECKOUT = "faces-checkout"
WATCHLIST_ID = "demo-watch-1"
#: The watchlist entry carries the embeddings of one face (left to right) of every ENROL_EVERY-th frame of the
#: sample, as the cloud would send several photos of one person.
ENROL_EVERY, ENROL_FACE = 8, 1
WAIT_S = 25.0

_CAMERA_TOML = """
[[cameras]]
name = "{name}"
url = "{video}"
identification = true

[cameras.analytics]
detector = "{detector}"
detect_fps = 5
reconnect_max_s = 2
"""

_IDENTITY_TOML = """
[identity]
embedding_key_file = "{key}"
face_detector = "{detector}"
face_embedder = "{embedder}"
session_gap_s = 0
alert_webhook_url = "{webhook}"
"""


class _AlertInbox(ThreadingHTTPServer):
    """Loopback HTTP server collecting the agent's alert webhooks (JSON POSTs)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AlertHandler)
        self.alerts: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class _AlertHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server API
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(min(length, 1 << 20)) or b"{}")
        except ValueError:
            payload = {"unparsable": True}
        server: _AlertInbox = self.server  # type: ignore[assignment]
        with server.lock:
            server.alerts.append({"received_at": time.time(), "payload": payload})
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return


class FacesPart:
    """See the module doc."""

    name = "faces"

    def __init__(self) -> None:
        self.inbox: _AlertInbox | None = None
        self.video: Path | None = None
        self.model_dir: Path | None = None
        self.watchlist: dict[str, Any] = {}
        self.checkout_enabled_at: float | None = None
        self.entrance_decided = 0
        self.skipped: str | None = None
        self.paths: dict[str, Path] = {}

    def prepare(self, ctx: DemoContext) -> str:
        from agent.identity.crypto import generate_key_file
        from models.registry import install
        from models.samples import SAMPLES

        if not ctx.camera:
            self.skipped = "--no-camera"
            return ""
        self.model_dir = ctx.workdir / "models"
        # absolute model paths: the part does not depend on the core demo's [models] table
        self.paths = {name: install(name, self.model_dir, mirror=ctx.mirror / "models" if ctx.mirror else None)
                      for name in ("yolox-nano", "yunet-n", "mobilefacenet")}
        self.video = install(SAMPLES["faces-video"], ctx.workdir / "media",
                             mirror=ctx.mirror / "data" if ctx.mirror else None)
        key = generate_key_file(ctx.workdir / "keys" / "identity.key")
        self.inbox = _AlertInbox()
        threading.Thread(target=self.inbox.serve_forever, name="demo-alert-webhook", daemon=True).start()
        webhook = f"http://127.0.0.1:{self.inbox.server_address[1]}/alerts"
        ctx.say(f"faces      camera {ENTRANCE} identifies faces on {self.video.name}; alerts to {webhook}")
        return (_IDENTITY_TOML.format(key=key, webhook=webhook, detector=self.paths["yunet-n"],
                                      embedder=self.paths["mobilefacenet"])
                + _CAMERA_TOML.format(name=ENTRANCE, video=self.video, detector=self.paths["yolox-nano"]))

    def exercise(self, ctx: DemoContext) -> None:
        if self.skipped:
            return
        if not wait_until(lambda: self._decisions(ctx, ENTRANCE) >= 2, WAIT_S, step_s=0.2):
            ctx.errors.append(f"faces: {ENTRANCE} did not identify two people within {WAIT_S:g} s")
        self.entrance_decided = self._decisions(ctx, ENTRANCE)
        self._say_decisions(ctx, ENTRANCE)
        embeddings = self._enrolment_embeddings()
        entry = {"id": WATCHLIST_ID, "kind": "theft", "reason": "demo: person from the sample video",
                 "source": "cloud:demo", "expires_at": time.time() + 3600,
                 "embeddings": [base64.b64encode(e.astype("<f4").tobytes()).decode() for e in embeddings]}
        result = ctx.send_command("watchlist.upsert", {"entries": [entry]})
        self.watchlist = {"id": WATCHLIST_ID, "status": result.get("status")}
        if result.get("status") != "applied":
            ctx.errors.append(f"faces: watchlist.upsert not applied: {result.get('reason')}")
            return
        agent = ctx.agent
        assert agent is not None
        cameras = [c.model_dump(mode="json") for c in agent.config.cameras]
        checkout = {**next(c for c in cameras if c["name"] == ENTRANCE), "name": CHECKOUT}
        result = ctx.send_command("config.update", {"config": {"cameras": [*cameras, checkout]}})
        if result.get("status") != "applied":
            ctx.errors.append(f"faces: enabling {CHECKOUT} failed: {result.get('reason')}")
            return
        self.checkout_enabled_at = time.time()
        ctx.say(f"faces      watchlist entry enrolled; camera {CHECKOUT} enabled by the cloud")
        if not wait_until(lambda: self._decisions(ctx, CHECKOUT) >= 2 and self._alerts(), WAIT_S, step_s=0.2):
            ctx.errors.append(f"faces: {CHECKOUT} did not produce two decisions and an alert within {WAIT_S:g} s")
        self._say_decisions(ctx, CHECKOUT)
        for alert in self._alerts():
            ctx.say(f"faces      ALERT to staff ({alert['payload'].get('camera')}): {alert['payload'].get('message')}")

    def _say_decisions(self, ctx: DemoContext, camera: str) -> None:
        hook = self._hook(ctx, camera)
        if hook is None:
            return
        for track_id, d in sorted(hook.decisions.items()):
            if d is None:
                continue
            score = f", similarity {d.score:.2f}" if getattr(d, "score", None) is not None else ""
            ctx.say(f"faces      {camera} track {track_id}: {d.kind} {d.visitor_id}{score}")

    def summary(self, ctx: DemoContext) -> dict[str, Any]:
        from sync.cloud.store import CloudStore

        if self.skipped:
            return {"skipped": self.skipped}

        cameras = {name: self._camera_status(ctx, name) for name in (ENTRANCE, CHECKOUT)}
        cloud = CloudStore(ctx.cloud_db)
        try:
            rows = cloud.conn.execute("SELECT stream, body FROM messages WHERE stream IN "
                                      "('events/visitor', 'events/watchlist_hit')").fetchall()
        finally:
            cloud.close()
        visitors = [json.loads(b) for s, b in rows if s == "events/visitor"]
        hits = [json.loads(b) for s, b in rows if s == "events/watchlist_hit"]
        alerts = [{"message": a["payload"].get("message"), "score": a["payload"].get("score"),
                   "camera": a["payload"].get("camera"), "needs_confirmation": a["payload"].get("needs_confirmation"),
                   "delay_s": round(a["received_at"] - float(a["payload"].get("ts") or a["received_at"]), 3)}
                  for a in self._alerts()]
        by_status: dict[str, int] = {}
        for v in visitors:
            by_status[v.get("kind", "?")] = by_status.get(v.get("kind", "?"), 0) + 1
        if not alerts:
            ctx.errors.append("faces: no watchlist alert reached the webhook")
        if any("embedding" in key for v in visitors + hits for key in v):
            ctx.errors.append("faces: an embedding left the box although share_embeddings_with_cloud is off")
        return {"cameras": cameras, "visitor_ids": len({v.get("visitor_id") for v in visitors}),
                "visitor_events": by_status, "watchlist": self.watchlist, "watchlist_hits_at_cloud": len(hits),
                "alerts": alerts}

    def close(self) -> None:
        if self.inbox is not None:
            self.inbox.shutdown()
            self.inbox.server_close()
            self.inbox = None

    # -- helpers -----------------------------------------------------------------------------------------
    def _enrolment_embeddings(self) -> list[Any]:
        """Embeddings of one person of the sample video, computed from decoded frames in memory."""
        from agent.config.identity_models import IdentityConfig
        from agent.identity.pipeline import FacePipeline
        from agent.vision.replay import frames_from_file

        assert self.video is not None
        cfg = IdentityConfig(face_detector=str(self.paths["yunet-n"]), face_embedder=str(self.paths["mobilefacenet"]))
        pipeline = FacePipeline.from_config(cfg, None, threads=1)
        out = []
        for frame in frames_from_file(self.video):
            if frame.index % ENROL_EVERY:
                continue
            faces = pipeline.detector.detect(frame.image)
            if len(faces) > ENROL_FACE:
                order = faces.boxes[:, 0].argsort()
                out.append(pipeline.embed_faces(frame.image, faces[int(order[ENROL_FACE])])[0])
        if not out:
            raise RuntimeError(f"no frame of {self.video.name} shows {ENROL_FACE + 1} faces")
        return out

    @staticmethod
    def _hook(ctx: DemoContext, camera: str) -> Any:
        component = ctx.agent.supervisor.component(f"camera-{camera}") if ctx.agent is not None else None
        return getattr(component, "identity_hook", None)

    def _decisions(self, ctx: DemoContext, camera: str) -> int:
        hook = self._hook(ctx, camera)
        return len(hook.decisions) if hook is not None else 0

    def _camera_status(self, ctx: DemoContext, camera: str) -> dict[str, Any]:
        hook = self._hook(ctx, camera)
        if hook is None:
            return {"decisions": 0}
        decided = [d for d in hook.decisions.values() if d is not None]
        return {"decisions": len(decided), "faces": hook.counts["faces"],
                "kinds": sorted(getattr(d, "kind", "?") for d in decided),
                "visitor_ids": sorted({d.visitor_id for d in decided if getattr(d, "visitor_id", None)}),
                "face_ms_mean": hook.status()["face_ms_mean"]}

    def _alerts(self) -> list[dict[str, Any]]:
        if self.inbox is None:
            return []
        with self.inbox.lock:
            return list(self.inbox.alerts)


