"""Schema of face identification (the ``[identity]`` table).

Identification runs only on cameras with ``identification = true`` (off by default); counting never depends on it.
Two groups of fields live here:

- the face pipeline (detector/embedder models, detection cadence, quality gate, per-track decision), used by
  ``agent/identity/pipeline.py`` and ``agent/identity/track_faces.py``;
- galleries, visits, retention, alerts and privacy switches, used by the gallery/store side of ``agent/identity/``
  (add fields below the marked line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from agent.config.base import Section

_Mean = Annotated[float, Field(ge=0.0, le=1.0)]
_Std = Annotated[float, Field(gt=0.0, le=1.0)]  # a divisor: never 0


class FaceQualityConfig(Section):
    """Quality gate applied to every detected face before it is embedded (the ``[identity.quality]`` table)."""

    min_score: float = Field(default=0.7, ge=0.0, le=1.0, title="Minimum detector score",
                             description="Faces with a lower YuNet score are not embedded.")
    min_face_px: int = Field(default=36, ge=8, le=1024, title="Minimum face size (px)",
                             description="Shorter side of the face box in source-image pixels; smaller faces are "
                             "too coarse to identify reliably.")
    min_sharpness: float = Field(default=20.0, ge=0.0, le=10_000.0, title="Minimum sharpness",
                                 description="Variance of the Laplacian of the aligned 112x112 grey face; lower "
                                 "means blurred (motion or focus).")
    max_yaw_deg: float = Field(default=40.0, gt=0.0, le=90.0, title="Maximum yaw (degrees)",
                               description="Head turn estimated from the nose position between the eyes; profile "
                               "faces above this are rejected.")
    max_roll_deg: float = Field(default=35.0, gt=0.0, le=90.0, title="Maximum roll (degrees)",
                                description="In-plane tilt of the eye line; alignment corrects small roll, large "
                                "roll usually comes with a bad landmark fit.")


class IdentityConfig(Section):
    """Face identification: pipeline settings, galleries, visits, retention and alerts."""

    # --- face pipeline -------------------------------------------------------------------------------------
    face_detector: str = Field(default="yunet-n", title="Face detector model",
                               description="Registry name of a YuNet face detector with 5 landmarks "
                               "(`store-agent models list`), or the path of a compatible ONNX file.")
    face_embedder: str = Field(default="mobilefacenet", title="Face embedding model",
                               description="Registry name or path of an ArcFace-style ONNX embedder taking a "
                               "112x112 aligned face. The default's weights come from MS-Celeb-1M (licence "
                               "caveat: see `store-agent models info mobilefacenet`); swap it for production.")
    embedder_mean: tuple[_Mean, _Mean, _Mean] = Field(
        default=(0.485, 0.456, 0.406), title="Embedder input mean (RGB, 0-1)",
        description="Per-channel mean subtracted after x/255. MobileFaceNet: ImageNet mean; InsightFace "
        "ArcFace exports: (0.5, 0.5, 0.5).")
    embedder_std: tuple[_Std, _Std, _Std] = Field(
        default=(0.229, 0.224, 0.225), title="Embedder input std (RGB, 0-1)",
        description="Per-channel std divided after the mean. InsightFace ArcFace exports: (0.5, 0.5, 0.5).")
    detect_every_n: int = Field(default=1, ge=1, le=100, title="Face detection cadence",
                                description="Run face detection on every N-th analysed frame of a camera "
                                "(1 = every frame the person detector ran on).")
    upper_body_fraction: float = Field(default=0.45, gt=0.05, le=1.0, title="Head region of a person box",
                                       description="Faces are searched only in this top fraction of each "
                                       "tracked person's box (padded), which saves most of the compute.")
    max_faces_per_frame: int = Field(default=8, ge=1, le=100, title="Faces per frame",
                                     description="At most this many tracked persons are searched per frame "
                                     "(largest first); the rest wait for the next frame.")
    quality: FaceQualityConfig = Field(default_factory=FaceQualityConfig, title="Face quality gate",
                                       description="Thresholds a face must pass before it is embedded.")
    keep_per_track: int = Field(default=8, ge=1, le=50, title="Embeddings kept per track",
                                description="Best-quality face embeddings kept (and pooled) for each person track.")
    decide_after: int = Field(default=3, ge=1, le=50, title="Faces before a decision",
                              description="A track is first identified once it has this many good faces (or when "
                              "it ends with at least one): fast enough for a watchlist alert within about a "
                              "second at 5 detections/s.")
    redecide_gain: float = Field(default=0.25, ge=0.0, le=1.0, title="Evidence gain to re-decide",
                                 description="A decided track is identified again only when its evidence (sum of "
                                 "kept face qualities / keep_per_track, 0-1) rose by at least this much — about "
                                 "once, when twice as many faces are pooled; never per frame. Pooling 8 faces "
                                 "instead of 3 raised the worst same-person similarity on the head-pose sample "
                                 "from 0.31 to 0.67.")
    match_threshold: float = Field(default=0.40, ge=-1.0, le=1.0, title="Match threshold (cosine)",
                                   description="Cosine similarity at or above which two faces are taken as the "
                                   "same person (visitor re-identification, eval faces open-set rate).")

    # --- galleries, visits, retention, alerts (gallery/store side) ------------------------------------------
    embedding_key_file: Path | None = Field(
        default=None, title="Embedding key file",
        description="File holding the AES-256 key (base64) that encrypts face embeddings at rest; a relative path "
        "is read from $CREDENTIALS_DIRECTORY (systemd LoadCredential=). Required when any camera has "
        "identification = true. Create one with `store-agent identities init-key PATH`.")
    embedding_dim: int = Field(default=128, ge=16, le=4096, title="Embedding dimension",
                               description="Length of the embedder's output vector (MobileFaceNet: 128); "
                               "watchlist entries of another length are rejected.")
    watchlist_threshold: float = Field(default=0.45, ge=-1.0, le=1.0, title="Watchlist threshold (cosine)",
                                       description="Similarity at or above which a face is reported as a "
                                       "possible watchlist/VIP match (kept a little above match_threshold: an "
                                       "alert costs a person's attention).")
    ann_min_size: int = Field(default=50_000, ge=1_000, le=100_000_000, title="ANN above this size",
                              description="A gallery with more embeddings than this is searched with an IVF "
                              "(approximate) faiss index instead of the exact flat index.")
    ann_nprobe: int = Field(default=128, ge=1, le=4096, title="IVF cells probed",
                            description="Cells an IVF search visits: higher is more exact and slower.")
    max_embeddings_per_identity: int = Field(default=5, ge=1, le=50, title="Embeddings kept per identity",
                                             description="A returning visitor's better faces are added up to "
                                             "this many per identity.")
    retention_days: float = Field(default=30.0, gt=0, le=3650, title="Visitor retention (days)",
                                  description="Visitors not seen for this long are deleted by the agent itself "
                                  "(embeddings, visits), also while offline.")
    purge_interval_s: float = Field(default=3600.0, ge=1.0, le=86_400.0, title="Purge interval (s)",
                                    description="How often the retention purge and watchlist expiry run.")
    session_gap_s: float = Field(default=1800.0, ge=0.0, le=86_400.0, title="Session gap (s)",
                                 description="Sightings of one person closer than this belong to one visit.")
    regular_visits: int = Field(default=3, ge=2, le=1000, title="Visits to be a regular",
                                description="A visitor with at least this many visits within regular_window_days "
                                "is reported as `regular`.")
    regular_window_days: float = Field(default=30.0, gt=0, le=3650, title="Regular window (days)",
                                       description="Window in which visits count towards regular_visits.")
    scalper_entries_per_day: int = Field(default=0, ge=0, le=1000, title="Scalper rule: entries per day",
                                         description="A visitor entering this many times in one day is put on the "
                                         "local scalper watchlist (0 = rule off).")
    scalper_watch_days: float = Field(default=7.0, gt=0, le=365, title="Scalper watch (days)",
                                      description="Expiry of a watchlist entry created by the scalper rule.")
    alert_on_vip: bool = Field(default=True, title="Alert on VIP",
                               description="A VIP match alerts staff like a watchlist match.")
    alert_local_bus: bool = Field(default=True, title="Alerts on the local bus",
                                  description="Publish alerts on the local bus (suffix alerts/identity) when "
                                  "[local_bus] is enabled.")
    alert_cooldown_s: float = Field(default=600.0, ge=0.0, le=86_400.0, title="Alert cooldown (s)",
                                    description="A person already alerted on by a camera within this time is not "
                                    "alerted again by that camera (re-decisions, re-entering its view); another "
                                    "camera alerts again, so staff learn where the person is now.")
    alert_webhook_url: str = Field(default="", title="Alert webhook URL",
                                   description="http(s) URL that receives each alert as a JSON POST; empty = none.")
    alert_webhook_timeout_s: float = Field(default=2.0, gt=0, le=30, title="Webhook timeout (s)",
                                           description="Per-request timeout of the webhook; the pipeline never "
                                           "waits for it.")
    share_embeddings_with_cloud: bool = Field(
        default=False, title="Share embeddings with the cloud",
        description="Put embeddings in up-going events (cross-store matching). Off: the cloud receives "
        "pseudonymous ids and match events only.")
