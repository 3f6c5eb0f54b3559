"""Fixtures of the model-library tests: the verified model files and data in ``../shared`` (read-only, never
copied into the repository, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_DATA = SHARED / "data"


def _require(path: Path) -> Path:
    assert path.exists(), f"{path} is missing: the model tests read the verified files in ../shared"
    return path


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The mirror directory (same layout as an installed model directory), read-only."""
    return _require(SHARED_MODELS / "MANIFEST.md").parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA / "README.md").parent


@pytest.fixture(scope="session")
def worker_frames(shared_data: Path) -> list[np.ndarray]:
    """All 71 BGR frames (270, 480, 3) of ``videos/worker-zone-detection.gif`` (one worker in every frame)."""
    cap = cv2.VideoCapture(str(_require(shared_data / "videos" / "worker-zone-detection.gif")))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 71
    return frames
