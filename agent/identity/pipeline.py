"""The face pipeline of a camera with identification enabled: tracked persons' head regions → YuNet faces →
quality gate → 5-point alignment → embedding → per-track decision → the identity service.

Privacy: crops and aligned faces exist only as numpy arrays in this process; nothing here writes an image or sends
one anywhere. The pipeline is built only for cameras with ``identification = true`` (:func:`build_identity_hook`
returns None otherwise, so the face models are never even loaded).

Contract with the identity service (``agent/identity`` gallery side)::

    service.observe(camera: str, track_id: int, embedding: np.ndarray (D,) float32 unit, quality: float 0-1,
                    ts: float) -> Decision

``Decision`` is read duck-typed: ``kind`` (``"visitor" | "member" | "vip" | "staff" | "watchlist" | "optout"``…),
``visitor_id`` (pseudonymous id or None), ``status`` (``"new" | "returning" | "regular"`` for visitors) and
``score`` (similarity of the match, if any). A ``kind == "staff"`` decision marks the track staff in the camera's
:class:`~agent.analytics.staff.StaffRegistry`, so it is excluded from customer aggregates.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from agent.analytics.staff import StaffRegistry
from agent.config.identity_models import IdentityConfig
from agent.identity.face_quality import FaceQuality, assess
from agent.identity.track_faces import TrackDecision, TrackFaces
from agent.vision.snapshots import head_regions
from models.faces import FaceEmbedder, Faces, YunetDetector, align_face, build_face_detector, build_face_embedder

log = logging.getLogger(__name__)

#: Head crops smaller than this (shorter side, px) are upscaled before detection.
MIN_CROP_SIDE = 64
#: Decisions remembered per camera (status, demo and replay reporting).
MAX_DECISIONS = 10_000
#: A track unseen for this long is ended (its pending faces decided, its state dropped).
TRACK_END_S = 2.0


@dataclass(frozen=True, slots=True)
class FaceSample:
    """One face that passed the gate: which track, its embedding and measures (no pixels)."""

    track_id: int
    embedding: np.ndarray  # (D,) float32 unit
    quality: FaceQuality
    box: np.ndarray  # (4,) xyxy frame pixels


class Observer(Protocol):
    """The identity service as seen from the pipeline (see the module doc)."""

    def observe(self, camera: str, track_id: int, embedding: np.ndarray, quality: float, ts: float) -> Any: ...


class FacePipeline:
    """Detect, gate, align and embed faces; stateless between frames."""

    def __init__(self, detector: YunetDetector, embedder: FaceEmbedder, cfg: IdentityConfig) -> None:
        self.detector = detector
        self.embedder = embedder
        self.cfg = cfg
        self.rejected: dict[str, int] = {}

    @classmethod
    def from_config(cls, cfg: IdentityConfig, model_dir: Path | None, *, threads: int = 1) -> FacePipeline:
        """Load the configured detector and embedder (raises ``ModelNotInstalled`` with the pull hint)."""
        detector = build_face_detector(cfg.face_detector, model_dir, threads=threads,
                                       score_threshold=min(0.5, cfg.quality.min_score))
        embedder = build_face_embedder(cfg.face_embedder, model_dir, threads=threads, mean=cfg.embedder_mean,
                                       std=cfg.embedder_std)
        return cls(detector, embedder, cfg)

    def detect_region(self, image: np.ndarray, region: np.ndarray) -> Faces:
        """Faces inside ``region`` ((4,) int xyxy) of ``image``, in image pixels (small crops upscaled)."""
        x1, y1, x2, y2 = (int(v) for v in region)
        crop = image[y1:y2, x1:x2]
        if crop.shape[0] < 8 or crop.shape[1] < 8:
            return Faces()
        scale = max(1.0, MIN_CROP_SIDE / min(crop.shape[:2]))
        if scale > 1.0:
            crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                              interpolation=cv2.INTER_LINEAR)
        faces = self.detector.detect(crop)
        if scale > 1.0 and len(faces):
            faces = Faces(faces.boxes / scale, faces.scores, faces.landmarks / scale)
        return faces.shifted(x1, y1)

    def embed_faces(self, image: np.ndarray, faces: Faces) -> np.ndarray:
        """(N, D) unit embeddings of ``faces`` (aligned in memory)."""
        if len(faces) == 0:
            return np.zeros((0, self.embedder.dim), np.float32)
        aligned = np.stack([align_face(image, lm, self.embedder.size) for lm in faces.landmarks])
        return self.embedder.embed(aligned)

    def central_face(self, image: np.ndarray) -> Faces:
        """The face nearest the image centre (LFW convention for a labelled photo); empty if none."""
        faces = self.detector.detect(image)
        if len(faces) == 0:
            return faces
        centre = np.array([image.shape[1] / 2, image.shape[0] / 2], np.float32)
        dist = np.linalg.norm((faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2 - centre, axis=1)
        return faces[int(np.argmin(dist))]

    def embed_photo(self, image: np.ndarray) -> tuple[np.ndarray, FaceQuality] | None:
        """Embedding and quality of the central face of a photo (enrolment, evaluation); None without a face."""
        face = self.central_face(image)
        if len(face) == 0:
            return None
        quality = assess(image, face.boxes[0], float(face.scores[0]), face.landmarks[0], self.cfg.quality)
        return self.embed_faces(image, face)[0], quality

    def track_faces(self, image: np.ndarray, track_ids: np.ndarray, boxes_px: np.ndarray) -> list[FaceSample]:
        """Gated face samples of tracked persons: one face at most per track, searched in its head region."""
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        boxes = np.asarray(boxes_px, np.float64).reshape(-1, 4)
        if len(ids) == 0:
            return []
        height, width = image.shape[:2]
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[:self.cfg.max_faces_per_frame]
        regions = head_regions(boxes[order], (width, height), fraction=self.cfg.upper_body_fraction)
        picked: list[tuple[int, Faces, FaceQuality, np.ndarray]] = []
        for k, region in zip(order, regions):
            faces = self.detect_region(image, region)
            if len(faces) == 0:
                continue
            box = boxes[k]
            centre_x = (faces.boxes[:, 0] + faces.boxes[:, 2]) / 2
            inside = (centre_x >= box[0]) & (centre_x <= box[2])
            if not inside.any():
                continue
            off = np.abs(centre_x - (box[0] + box[2]) / 2) / max(box[2] - box[0], 1.0)
            best = int(np.argmax(np.where(inside, faces.scores - off, -np.inf)))
            face = faces[best]
            quality = assess(image, face.boxes[0], float(face.scores[0]), face.landmarks[0], self.cfg.quality)
            if not quality.passed:
                self.rejected[quality.reason or "?"] = self.rejected.get(quality.reason or "?", 0) + 1
                continue
            picked.append((int(ids[k]), face, quality, face.boxes[0]))
        if not picked:
            return []
        stacked = Faces(np.stack([p[1].boxes[0] for p in picked]), np.array([p[1].scores[0] for p in picked]),
                        np.stack([p[1].landmarks[0] for p in picked]))
        embeddings = self.embed_faces(image, stacked)
        return [FaceSample(tid, emb, q, b) for (tid, _, q, b), emb in zip(picked, embeddings)]


class IdentityHook:
    """The optional identity step of a :class:`~agent.vision.processor.FrameProcessor`.

    Called with every detected frame's image, timestamp, track ids and pixel boxes; runs face detection on every
    ``detect_every_n``-th call, pools faces per track and hands each track decision to ``observer``.
    ``on_decision(track_decision, decision)`` is called after each decision (demo/replay reporting). ``zones``
    (the camera's zone trackers: ``.name`` and ``.visitors()`` → track ids) give the zones each track visited,
    passed to the service's ``end_track`` with the dwell when the track ends.
    """

    def __init__(self, camera: str, pipeline: FacePipeline, observer: Observer | None, *,
                 staff: StaffRegistry | None = None, zones: Sequence[Any] = (),
                 on_decision: Callable[[TrackDecision, Any], None] | None = None) -> None:
        cfg = pipeline.cfg
        self.camera = camera
        self.pipeline = pipeline
        self.observer = observer
        self.staff = staff
        self.on_decision = on_decision
        self.every_n = cfg.detect_every_n
        self.tracks = TrackFaces(cfg.keep_per_track, cfg.decide_after, cfg.redecide_gain)
        #: Latest decision per track id (the newest MAX_DECISIONS tracks: bounded for a daemon that runs for months).
        self.decisions: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._last_seen: dict[int, float] = {}
        self._first_seen: dict[int, float] = {}
        self.zones = list(zones)
        self._zones_of: dict[int, set[str]] = {}
        self._calls = 0
        self.counts = {"frames": 0, "faces": 0, "decisions": 0, "errors": 0}
        self.face_s = 0.0

    def __call__(self, image: np.ndarray, ts: float, track_ids: np.ndarray, boxes_px: np.ndarray) -> None:
        self._calls += 1
        for tid in np.asarray(track_ids, np.int64).tolist():
            self._last_seen[tid] = ts
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        wanted = np.fromiter((not self.tracks.settled(t) for t in ids.tolist()), bool, len(ids))
        if (self._calls - 1) % self.every_n == 0 and wanted.any():
            self.counts["frames"] += 1
            t0 = time.perf_counter()
            try:
                samples = self.pipeline.track_faces(image, ids[wanted], np.asarray(boxes_px).reshape(-1, 4)[wanted])
            except Exception:  # a face-model failure must not stop counting (the caller's next step)
                self.counts["errors"] += 1
                log.exception("face pipeline failed on %s", self.camera)
                samples = []
            self.face_s += time.perf_counter() - t0
            self.counts["faces"] += len(samples)
            for s in samples:
                request = self.tracks.add(s.track_id, s.embedding, s.quality.quality, ts)
                if request is not None:
                    self._decide(request)
        for tid in np.asarray(track_ids, np.int64).tolist():
            self._first_seen.setdefault(tid, ts)
        for zone in self.zones:
            for tid in np.asarray(zone.visitors()).tolist():
                if tid in self._first_seen:
                    self._zones_of.setdefault(int(tid), set()).add(zone.name)
        alive = [t for t, seen in self._last_seen.items() if ts - seen <= TRACK_END_S]
        self._end(alive, ts)

    def finish(self, ts: float) -> None:
        """End every track (end of a replay or shutdown): pending faces are decided."""
        self._end([], ts)

    def _end(self, alive: list[int], ts: float) -> None:
        for request in self.tracks.end(alive, ts):
            self._decide(request)
        alive_set = set(alive)
        ended = [t for t in self._last_seen if t not in alive_set]
        end_track = getattr(self.observer, "end_track", None)
        for tid in ended:
            first, last = self._first_seen.pop(tid, None), self._last_seen.pop(tid)
            zones = sorted(self._zones_of.pop(tid, ()))
            if end_track is not None and tid in self.decisions:
                try:
                    end_track(self.camera, tid, last, zones=zones,
                              dwell_s=None if first is None else round(last - first, 3))
                except Exception:
                    self.counts["errors"] += 1
                    log.exception("identity end_track failed for track %s on %s", tid, self.camera)

    def _decide(self, request: TrackDecision) -> None:
        decision = None
        if self.observer is not None:
            try:
                decision = self.observer.observe(self.camera, request.track_id, request.embedding, request.quality,
                                                 request.ts)
            except Exception:  # a gallery failure must not stop counting
                self.counts["errors"] += 1
                log.exception("identity decision failed for track %s on %s", request.track_id, self.camera)
                return
        self.counts["decisions"] += 1
        self.decisions[request.track_id] = decision
        self.decisions.move_to_end(request.track_id)
        while len(self.decisions) > MAX_DECISIONS:
            self.decisions.popitem(last=False)
        if self.staff is not None and getattr(decision, "kind", None) == "staff":
            self.staff.mark(request.track_id, "identity:staff", request.ts)
        if self.on_decision is not None:
            self.on_decision(request, decision)

    def status(self) -> dict[str, Any]:
        """Counters, rejected faces by reason and mean face time per analysed frame."""
        return {**self.counts, "rejected": dict(self.pipeline.rejected),
                "face_ms_mean": round(1000 * self.face_s / max(1, self.counts["frames"]), 2)}


def build_identity_hook(camera_name: str, identification: bool, cfg: IdentityConfig, model_dir: Path | None,
                        observer: Observer | None, *, threads: int = 1, staff: StaffRegistry | None = None,
                        zones: Sequence[Any] = (),
                        on_decision: Callable[[TrackDecision, Any], None] | None = None) -> IdentityHook | None:
    """The identity hook of a camera, or None when its identification is off (no face model is loaded then)."""
    if not identification:
        return None
    pipeline = FacePipeline.from_config(cfg, model_dir, threads=threads)
    expected = getattr(observer, "dim", None)
    if expected and pipeline.embedder.dim and expected != pipeline.embedder.dim:
        raise ValueError(f"face_embedder {cfg.face_embedder!r} outputs {pipeline.embedder.dim}-d embeddings but "
                         f"identity.embedding_dim is {expected}: set embedding_dim to match the model")
    return IdentityHook(camera_name, pipeline, observer, staff=staff, zones=zones, on_decision=on_decision)
