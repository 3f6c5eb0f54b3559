"""Shared helpers of the face pipeline tests (``test_face_*.py``): paths of the verified models and data in
``../shared`` (read-only, never copied, never downloaded) and a cached face pipeline."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from agent.config.identity_models import IdentityConfig
from agent.identity.pipeline import FacePipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
SHARED_MODELS = SHARED / "models"
FACES_DIR = SHARED / "data" / "faces"
VIDEOS = SHARED / "data" / "videos"
HEAD_POSE_VIDEO = VIDEOS / "head-pose-face-detection-female-and-male.gif"
#: JPEG start-of-image + the first marker of any real encoder (JFIF, Exif, quantisation table, Adobe): four bytes,
#: so random ciphertext in the store does not match by chance.
JPEG_MAGICS = tuple(b"\xff\xd8\xff" + bytes([m]) for m in (0xE0, 0xE1, 0xDB, 0xEE))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@functools.lru_cache(maxsize=1)
def face_pipeline() -> FacePipeline:
    """The default pipeline (YuNet + MobileFaceNet) on the shared model mirror, loaded once per session."""
    assert (SHARED_MODELS / "MANIFEST.md").is_file(), f"{SHARED_MODELS} is missing"
    return FacePipeline.from_config(IdentityConfig(), SHARED_MODELS, threads=1)


def photo(name: str, number: int) -> np.ndarray:
    """An LFW photo ``faces/<name>/<name>_<number:04d>.jpg`` (250x250 BGR)."""
    path = FACES_DIR / name / f"{name}_{number:04d}.jpg"
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def video_frames(path: Path = HEAD_POSE_VIDEO) -> list[np.ndarray]:
    """Every BGR frame of a shared GIF clip."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert frames, f"no frames in {path}"
    return frames


def files_with_image_magic(*roots: Path) -> list[Path]:
    """Files under ``roots`` whose bytes contain a JPEG or PNG signature anywhere (an encoded image, also one
    stored inside a database or a log)."""
    hits = []
    for root in roots:
        for path in Path(root).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if PNG_MAGIC in data or any(m in data for m in JPEG_MAGICS):
                    hits.append(path)
    return hits
