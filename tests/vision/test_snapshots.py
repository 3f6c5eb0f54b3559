"""Debug snapshots: faces in real frames are blurred before anything is written, the rest of the image is kept,
files are rate-limited and rotated, and with ``debug_snapshots`` off no writer exists and nothing is written."""

from __future__ import annotations

import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import CameraConfig
from agent.config.vision_models import CameraAnalyticsConfig, LineConfig, VisionConfig, ZoneConfig
from agent.vision.processor import FrameProcessor
from agent.vision.replay import frames_from_file
from agent.vision.snapshots import (FaceFinder, SnapshotWriter, annotate, blur_regions, grow_boxes, head_regions,
                                    make_snapshot_writer)
from agent.vision.source import Frame
from models.detectors import Detector, build_detector

LINES = [LineConfig(name="door", start=(0.0, 0.8), end=(1.0, 0.8))]
ZONES = [ZoneConfig(name="hall", polygon=[(0.3, 0.4), (0.8, 0.4), (0.8, 1.0), (0.3, 1.0)])]


@pytest.fixture(scope="module")
def face_frames(shared_dir: Path) -> list[Frame]:
    frames = list(frames_from_file(shared_dir / "data" / "videos" / "face-demographics-walking.gif"))
    assert len(frames) == 35
    return frames


@pytest.fixture(scope="module")
def yolox(models_dir: Path) -> Detector:
    return build_detector("yolox-nano", models_dir, threads=2)


@pytest.fixture(scope="module")
def yunet(models_dir: Path) -> FaceFinder:
    finder = FaceFinder.from_model_dir(models_dir)
    assert finder is not None, "yunet-n is in ../shared/models"
    return finder


def _sharpness(image: np.ndarray, box: np.ndarray) -> float:
    """Laplacian variance of the grey image inside an xyxy box."""
    x1, y1, x2, y2 = np.round(box).astype(int)
    grey = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _camera(tmp_path: Path, debug: bool, **analytics: object) -> CameraConfig:
    return CameraConfig(name="hall-cam", url=str(tmp_path / "clip.gif"),
                        analytics=CameraAnalyticsConfig(debug_snapshots=debug, lines=LINES, zones=ZONES,
                                                        **analytics))


@pytest.mark.parametrize("clip, min_faces", [("face-demographics-walking", 30),
                                             ("head-pose-face-detection-female-and-male", 50)])
def test_head_regions_of_yolox_boxes_cover_every_yunet_face(shared_dir, yolox, yunet, clip, min_faces) -> None:
    """Walking people (full body) and people seen from the waist up: every face YuNet finds lies inside the
    head region of a person box, so faces are blurred even without the face model."""
    covered = total = 0
    for frame in list(frames_from_file(shared_dir / "data" / "videos" / f"{clip}.gif"))[::2]:
        h, w = frame.image.shape[:2]
        regions = head_regions(yolox.detect(frame.image).boxes, (w, h))
        for x1, y1, x2, y2 in yunet.faces(frame.image):
            total += 1
            inside = ((regions[:, 0] <= x1) & (regions[:, 1] <= y1) & (regions[:, 2] >= x2) & (regions[:, 3] >= y2))
            covered += bool(inside.any())
    assert total >= min_faces  # two faces in (nearly) every frame
    assert covered == total


@pytest.mark.parametrize("with_yunet", [False, True], ids=["head-regions-only", "head-regions+yunet"])
def test_snapshot_blurs_faces_and_leaves_the_rest_of_the_frame(tmp_path, face_frames, yolox, yunet,
                                                               with_yunet) -> None:
    image = face_frames[20].image
    original = image.copy()
    h, w = image.shape[:2]
    persons = yolox.detect(image).boxes
    assert len(persons) == 2
    faces = yunet.faces(image)
    assert len(faces) == 2
    writer = SnapshotWriter(tmp_path / "snaps", every_s=5.0, faces=yunet if with_yunet else None,
                            lines=LINES, zones=ZONES, prefix="hall-cam")
    path = writer.write(image, 1.0, person_boxes=persons, track_ids=np.array([1, 2]), track_boxes=persons)
    assert np.array_equal(image, original), "the processor's frame must not be modified"
    snap = cv2.imread(str(path))
    assert snap.shape == image.shape
    for face in faces:
        before, after = _sharpness(original, face), _sharpness(snap, face)
        assert after < 0.2 * before, (face, before, after)
    # Outside the blurred regions and the drawn overlays, the image is the original up to JPEG noise.
    changed = np.zeros((h, w), bool)
    regions = [head_regions(persons, (w, h))] + ([grow_boxes(faces, 1.3, (w, h))] if with_yunet else [])
    for x1, y1, x2, y2 in np.concatenate(regions):
        changed[max(0, y1 - 3):y2 + 3, max(0, x1 - 3):x2 + 3] = True
    assert changed.mean() < 0.15  # the redaction is local, not the whole frame
    overlays = annotate(np.zeros_like(image), np.array([1, 2]), persons, LINES, ZONES).max(axis=2) > 0
    changed |= cv2.dilate(overlays.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    changed[:20] = True  # caption
    diff = np.abs(snap.astype(np.int16) - original.astype(np.int16)).max(axis=2)[~changed]
    assert np.mean(diff > 25) < 0.02
    assert np.median(diff) <= 3


def test_blur_regions_destroys_detail_only_inside_the_regions(face_frames) -> None:
    image = face_frames[0].image
    region = np.array([[200, 80, 360, 160]])
    out = blur_regions(image, region)
    assert _sharpness(out, region[0]) < 0.1 * _sharpness(image, region[0])
    mask = np.ones(image.shape[:2], bool)
    mask[80:160, 200:360] = False
    assert np.array_equal(out[mask], image[mask])


def test_writer_writes_at_most_one_per_interval_and_keeps_the_newest(tmp_path, face_frames) -> None:
    image = face_frames[0].image
    writer = SnapshotWriter(tmp_path / "snaps", every_s=1.0, max_files=3, prefix="cam")
    none = np.zeros((0, 4))
    written = [writer.maybe_write(image, t * 0.25, person_boxes=none, track_ids=np.zeros(0, int), track_boxes=none)
               for t in range(41)]  # 10 s of frames at 4 fps
    paths = [p for p in written if p is not None]
    assert len(paths) == 11  # t = 0, 1, ..., 10
    files = writer.files()
    assert files == paths[-3:]
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [p.name for p in files]  # no temp files left
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "snaps").stat().st_mode) == 0o700
    # a new file (time going backwards) may be snapshotted at once
    assert writer.due(0.0) and not writer.due(10.5)


def test_debug_snapshots_off_means_no_writer_and_no_file(tmp_path, face_frames, yolox, models_dir) -> None:
    directory = tmp_path / "snaps"
    camera = _camera(tmp_path, debug=False, detect_fps=30.0)
    writer = make_snapshot_writer(camera, directory, model_dir=models_dir, every_s=0.1)
    assert writer is None
    processor = FrameProcessor(camera, VisionConfig(), yolox, snapshots=writer)
    for frame in face_frames:
        processor.process(frame)
    assert processor.counts["inferences"] > 10
    assert not directory.exists() or not any(directory.iterdir())
    # A writer cannot be forced on a camera whose flag is off.
    with pytest.raises(ValueError, match="debug_snapshots"):
        FrameProcessor(camera, VisionConfig(), yolox, snapshots=SnapshotWriter(directory))


def test_processor_writes_redacted_snapshots_when_enabled(tmp_path, face_frames, yolox, yunet, models_dir) -> None:
    directory = tmp_path / "snaps"
    camera = _camera(tmp_path, debug=True)
    writer = make_snapshot_writer(camera, directory, model_dir=models_dir, every_s=1.0, max_files=2)
    assert writer is not None and writer.faces is not None
    processor = FrameProcessor(camera, VisionConfig(), yolox, snapshots=writer)
    snapshotted = []
    for frame in face_frames:  # 2.9 s of video
        before = writer.written
        processor.process(frame)
        if writer.written > before:
            snapshotted.append(frame)
    assert [round(f.ts) for f in snapshotted] == [0, 1, 2]  # one per second of video
    files = writer.files()
    assert len(files) == 2 and all(f.name.startswith("hall-cam-") for f in files)
    # The oldest snapshot was rotated away; the newest shows the last snapshotted frame, faces blurred.
    frame = snapshotted[-1]
    snap = cv2.imread(str(files[-1]))
    for face in yunet.faces(frame.image):
        assert _sharpness(snap, face) < 0.2 * _sharpness(frame.image, face)
