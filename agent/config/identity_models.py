"""Schema of face identification (the ``[identity]`` table).

Identification runs only on cameras with ``identification = true`` (off by default); counting never depends on it.
Two groups of fields live here:

- the face pipeline (detector/embedder models, detection cadence, quality gate, per-track decision), used by
  ``agent/identity/pipeline.py`` and ``agent/identity/track_faces.py``;
- galleries, visits, retention, alerts and privacy switches, used by the gallery/store side of ``agent/identity/``
  (add fields below the marked line).
"""

from __future__ import annotations

from pydantic import Field

from agent.config.base import Section


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
    embedder_mean: tuple[float, float, float] = Field(
        default=(0.485, 0.456, 0.406), title="Embedder input mean (RGB, 0-1)",
        description="Per-channel mean subtracted after x/255. MobileFaceNet: ImageNet mean; InsightFace "
        "ArcFace exports: (0.5, 0.5, 0.5).")
    embedder_std: tuple[float, float, float] = Field(
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
    keep_per_track: int = Field(default=5, ge=1, le=50, title="Embeddings kept per track",
                                description="Best-quality embeddings kept for each person track.")
    decide_after: int = Field(default=3, ge=1, le=50, title="Faces before a decision",
                              description="A track is identified once it has this many good faces (or when it "
                              "ends with at least one); one decision per track, not per frame.")
    redecide_gain: float = Field(default=0.15, ge=0.0, le=1.0, title="Quality gain to re-decide",
                                 description="Re-identify a decided track only when its best face quality rose by "
                                 "at least this much (quality is 0-1).")
    match_threshold: float = Field(default=0.40, ge=-1.0, le=1.0, title="Match threshold (cosine)",
                                   description="Cosine similarity at or above which two faces are taken as the "
                                   "same person (visitor re-identification, eval faces open-set rate).")

    # --- galleries, visits, retention, alerts (gallery/store side) ------------------------------------------
