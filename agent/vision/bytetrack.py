"""ByteTrack (Zhang et al., ECCV 2022) in numpy: Kalman constant-velocity motion, two-stage association (high-
score detections first, then low-score ones to keep occluded people), a lost-track buffer, optional appearance
re-link of lost tracks. Time-aware: predictions and the buffer use timestamps, so an irregular detection rate
(motion gating, a slow detector) does not confuse it.

Track state is kept as arrays (one row per track) and every step is vectorised over tracks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agent.vision import kalman
from agent.vision.tracker import Tracks, iou_matrix, linear_assignment

TRACKED, LOST = 0, 1

#: ``embed(det_indices) -> (K, D)`` L2-normalised appearance vectors of those detections of the current frame.
EmbedFn = Callable[[np.ndarray], np.ndarray]


class ByteTracker:
    """Track people from per-frame boxes.

    Args:
        frame_rate: reference rate of ``update`` calls (the detection rate); a call ``dt`` seconds after the
            previous one predicts ``dt · frame_rate`` steps.
        track_thresh: detections at or above this score are "high" (first association, may start tracks).
        low_thresh: detections below this are ignored; between the two they are "low" (second association only).
        new_track_thresh: minimum score to start a track.
        match_thresh: first association: maximum ``1 - IoU·score`` (ByteTrack's fused cost).
        low_match_thresh: second association: maximum ``1 - IoU``.
        unconfirmed_match_thresh: maximum ``1 - IoU·score`` to confirm a new track on its second frame.
        track_buffer_s: a lost track can be re-found for this long (seconds).
        fuse_score: multiply IoU by detection score in the high-score costs (as ByteTrack on MOT17).
        smooth_boxes: return the Kalman-filtered box instead of the matched detection's box.
        reid_max_distance: appearance re-link: maximum cosine distance between a lost track and a new detection
            (used only when ``update`` gets ``embed``).
        reid_max_speed: appearance re-link: the detection's centre must be within this many box heights per
            second of lost time from the track's last position (no teleporting re-links).
        reid_buffer_s: with ``embed``, a lost track that has an appearance vector stays re-linkable (by
            appearance only, not by IoU) for this long — an identity survives a long occlusion.
        reid_refresh_s: a tracked person's appearance vector is refreshed at most this often (each refresh is
            one re-id inference), from high-score detections only.
    """

    def __init__(self, frame_rate: float = 30.0, *, track_thresh: float = 0.5, low_thresh: float = 0.1,
                 new_track_thresh: float = 0.6, match_thresh: float = 0.8, low_match_thresh: float = 0.5,
                 unconfirmed_match_thresh: float = 0.7, track_buffer_s: float = 1.0, fuse_score: bool = True,
                 smooth_boxes: bool = False, reid_max_distance: float = 0.45, reid_max_speed: float = 3.0,
                 reid_buffer_s: float = 5.0, reid_refresh_s: float = 0.5, reid_momentum: float = 0.5) -> None:
        if frame_rate <= 0 or track_buffer_s < 0:
            raise ValueError("frame_rate must be > 0 and track_buffer_s >= 0")
        self.frame_rate = float(frame_rate)
        self.track_thresh, self.low_thresh, self.new_track_thresh = track_thresh, low_thresh, new_track_thresh
        self.match_thresh, self.low_match_thresh = match_thresh, low_match_thresh
        self.unconfirmed_match_thresh = unconfirmed_match_thresh
        self.track_buffer_s = track_buffer_s
        self.fuse_score = fuse_score
        self.smooth_boxes = smooth_boxes
        self.reid_max_distance, self.reid_max_speed, self.reid_momentum = reid_max_distance, reid_max_speed, reid_momentum
        self.reid_buffer_s, self.reid_refresh_s = max(reid_buffer_s, track_buffer_s), reid_refresh_s
        #: number of lost tracks re-linked by appearance so far.
        self.relinked = 0
        self.reset()

    def reset(self) -> None:
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._ids = np.zeros((0,), np.int64)        # 0 while unconfirmed
        self._state = np.zeros((0,), np.int8)
        self._start = np.zeros((0,))                # ts of the first detection
        self._seen = np.zeros((0,))                 # ts of the last matched detection
        self._seen_box = np.zeros((0, 4))           # box of the last matched detection
        self._emb: np.ndarray | None = None         # (T, D) appearance, rows of NaN when unknown
        self._emb_ts = np.zeros((0,))               # ts of the last appearance refresh (-inf: never)
        self._next_id = 1
        self._calls = 0
        self._last_ts: float | None = None

    # ------------------------------------------------------------------ main step
    def update(self, boxes: np.ndarray, scores: np.ndarray, ts: float | None = None,
               embed: EmbedFn | None = None) -> Tracks:
        """Associate this frame's (N, 4) xyxy ``boxes`` / (N,) ``scores``; see :class:`~agent.vision.tracker.
        Tracker`. ``embed``, when given, enables the appearance re-link of lost tracks."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError("boxes and scores differ in length")
        self._calls += 1
        if ts is None:
            ts = (self._last_ts + 1.0 / self.frame_rate) if self._last_ts is not None else 0.0
        dt = 0.0 if self._last_ts is None else max(0.0, ts - self._last_ts)
        self._last_ts = ts

        self._predict(dt * self.frame_rate if self._calls > 1 else 1.0)
        pred = kalman.xyah_to_xyxy(self._mean)
        matched_det = np.full(len(self._ids), -1, np.int64)   # detection index matched to each track

        high = np.flatnonzero(scores >= self.track_thresh)
        low = np.flatnonzero((scores >= self.low_thresh) & (scores < self.track_thresh))
        # lost longer than the track buffer: only an appearance re-link may bring such a track back
        in_buffer = (self._state == TRACKED) | (ts - self._seen <= self.track_buffer_s)
        confirmed = np.flatnonzero((self._ids > 0) & in_buffer)
        unconfirmed = np.flatnonzero(self._ids == 0)

        # 1. confirmed tracks (tracked and lost) ↔ high-score detections
        m, um_tracks, um_high = linear_assignment(self._cost(pred[confirmed], boxes[high], scores[high]),
                                                  self.match_thresh)
        matched_det[confirmed[m[:, 0]]] = high[m[:, 1]]
        rest = confirmed[um_tracks]
        high_left = high[um_high]

        # 2. tracks still tracked (not already lost) ↔ low-score detections, IoU only
        r_tracked = rest[self._state[rest] == TRACKED]
        m, _, _ = linear_assignment(1.0 - iou_matrix(pred[r_tracked], boxes[low]), self.low_match_thresh)
        matched_det[r_tracked[m[:, 0]]] = low[m[:, 1]]

        # 3. tentative tracks ↔ remaining high detections; a tentative track that misses is dropped
        m, _, um_high = linear_assignment(self._cost(pred[unconfirmed], boxes[high_left], scores[high_left]),
                                          self.unconfirmed_match_thresh)
        matched_det[unconfirmed[m[:, 0]]] = high_left[m[:, 1]]
        high_left = high_left[um_high]

        # 4. appearance re-link: lost tracks ↔ remaining high detections
        if embed is not None and len(high_left):
            high_left = self._relink(embed, boxes, high_left, matched_det, ts)

        self._apply_matches(matched_det, boxes, scores, ts, embed)
        drop = (self._ids == 0) & (matched_det < 0)

        # 5. new tracks; on the very first frame they are confirmed at once (ByteTrack's convention)
        fresh = high_left[scores[high_left] >= self.new_track_thresh]
        self._remove(drop)
        matched_det = matched_det[~drop]
        self._add(boxes[fresh], ts, confirmed=self._calls == 1)
        matched_det = np.concatenate([matched_det, fresh])

        # 6. forget tracks lost for too long, and lost duplicates of tracked ones
        keep_for = np.full(len(self._ids), self.track_buffer_s)
        if embed is not None and self._emb is not None:
            keep_for[~np.isnan(self._emb[:, 0])] = self.reid_buffer_s
        expired = (self._state == LOST) & (ts - self._seen > keep_for)
        expired |= self._duplicates()
        self._remove(expired)
        matched_det = matched_det[~expired]

        out = (self._ids > 0) & (matched_det >= 0)
        det_index = matched_det[out]
        out_boxes = kalman.xyah_to_xyxy(self._mean[out]) if self.smooth_boxes else boxes[det_index]
        return Tracks(ids=self._ids[out].copy(), boxes=out_boxes.astype(np.float32),
                      scores=scores[det_index].astype(np.float32), det_index=det_index.astype(np.int64))

    # ------------------------------------------------------------------ helpers
    def _cost(self, track_boxes: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray) -> np.ndarray:
        iou = iou_matrix(track_boxes, det_boxes)
        if self.fuse_score:
            iou = iou * det_scores[None, :]
        return 1.0 - iou

    def _predict(self, steps: float) -> None:
        if not len(self._ids):
            return
        lost = self._state == LOST
        self._mean[lost, 7] = 0.0  # a lost track keeps its size (ByteTrack)
        self._mean, self._cov = kalman.predict(self._mean, self._cov, steps)

    def _apply_matches(self, matched_det: np.ndarray, boxes: np.ndarray, scores: np.ndarray, ts: float,
                       embed: EmbedFn | None) -> None:
        hit = np.flatnonzero(matched_det >= 0)
        if len(hit):
            mean, cov = kalman.update(self._mean[hit], self._cov[hit], boxes[matched_det[hit]])
            self._mean[hit], self._cov[hit] = mean, cov
            newly = hit[self._ids[hit] == 0]
            if len(newly):
                self._ids[newly] = np.arange(self._next_id, self._next_id + len(newly))
                self._next_id += len(newly)
            self._state[hit] = TRACKED
            self._seen[hit] = ts
            self._seen_box[hit] = boxes[matched_det[hit]]
            if embed is not None:
                due = hit[(scores[matched_det[hit]] >= self.track_thresh)
                          & (ts - self._emb_ts[hit] >= self.reid_refresh_s)]
                if len(due):
                    self._refresh_embeddings(embed, due, matched_det[due])
                    self._emb_ts[due] = ts
        missed = (matched_det < 0) & (self._ids > 0)
        self._state[missed] = LOST

    def _add(self, boxes: np.ndarray, ts: float, confirmed: bool) -> None:
        n = len(boxes)
        if not n:
            return
        mean, cov = kalman.initiate(boxes)
        ids = np.arange(self._next_id, self._next_id + n) if confirmed else np.zeros(n, np.int64)
        if confirmed:
            self._next_id += n
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._ids = np.concatenate([self._ids, ids.astype(np.int64)])
        self._state = np.concatenate([self._state, np.full(n, TRACKED, np.int8)])
        self._start = np.concatenate([self._start, np.full(n, ts)])
        self._seen = np.concatenate([self._seen, np.full(n, ts)])
        self._seen_box = np.concatenate([self._seen_box, boxes])
        self._emb_ts = np.concatenate([self._emb_ts, np.full(n, -np.inf)])
        if self._emb is not None:
            self._emb = np.concatenate([self._emb, np.full((n, self._emb.shape[1]), np.nan)])

    def _remove(self, mask: np.ndarray) -> None:
        if not mask.any():
            return
        keep = ~mask
        for name in ("_mean", "_cov", "_ids", "_state", "_start", "_seen", "_seen_box", "_emb_ts"):
            setattr(self, name, getattr(self, name)[keep])
        if self._emb is not None:
            self._emb = self._emb[keep]

    def _duplicates(self) -> np.ndarray:
        """A lost track overlapping a tracked one by IoU > 0.85 is the same person: drop the younger one."""
        drop = np.zeros(len(self._ids), bool)
        tracked = np.flatnonzero((self._state == TRACKED) & (self._ids > 0))
        lost = np.flatnonzero(self._state == LOST)
        if not len(tracked) or not len(lost):
            return drop
        boxes = kalman.xyah_to_xyxy(self._mean)
        pairs = np.argwhere(iou_matrix(boxes[tracked], boxes[lost]) > 0.85)
        for i, j in pairs:
            t, l_ = tracked[i], lost[j]
            age_t, age_l = self._seen[t] - self._start[t], self._seen[l_] - self._start[l_]
            drop[t if age_t < age_l else l_] = True
        return drop

    # ------------------------------------------------------------------ appearance
    def _refresh_embeddings(self, embed: EmbedFn, tracks: np.ndarray, dets: np.ndarray) -> None:
        vectors = np.asarray(embed(dets), np.float64)
        if vectors.ndim != 2 or len(vectors) != len(dets):
            return
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if self._emb is None:
            self._emb = np.full((len(self._ids), vectors.shape[1]), np.nan)
        old = self._emb[tracks]
        known = ~np.isnan(old[:, 0])
        blended = np.where(known[:, None], self.reid_momentum * old + (1 - self.reid_momentum) * vectors, vectors)
        self._emb[tracks] = blended / np.maximum(np.linalg.norm(blended, axis=1, keepdims=True), 1e-12)

    def _relink(self, embed: EmbedFn, boxes: np.ndarray, candidates: np.ndarray, matched_det: np.ndarray,
                ts: float) -> np.ndarray:
        """Match lost tracks with remaining high detections by appearance; returns the detections left."""
        if self._emb is None:
            return candidates
        lost = np.flatnonzero((self._state == LOST) & (self._ids > 0) & (matched_det < 0)
                              & ~np.isnan(self._emb[:, 0]))
        if not len(lost):
            return candidates
        vectors = np.asarray(embed(candidates), np.float64)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        cost = 1.0 - self._emb[lost] @ vectors.T                         # cosine distance (L, C)
        last = self._seen_box[lost]
        height = (last[:, 3] - last[:, 1])[:, None]
        centre = lambda b: (b[..., :2] + b[..., 2:]) / 2  # noqa: E731
        moved = np.linalg.norm(centre(last)[:, None, :] - centre(boxes[candidates])[None, :, :], axis=2)
        reach = height * self.reid_max_speed * np.maximum(ts - self._seen[lost], 1.0 / self.frame_rate)[:, None]
        cost = np.where(moved <= reach, cost, np.inf)
        m, _, um = linear_assignment(np.nan_to_num(cost, posinf=9.0), self.reid_max_distance)
        matched_det[lost[m[:, 0]]] = candidates[m[:, 1]]
        self.relinked += len(m)
        return candidates[um]
