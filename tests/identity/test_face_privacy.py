"""Privacy of the face pipeline: identification off loads no face model at all; with it on, no image is encoded
or written anywhere (data dir, temp dir), in the live pipeline with the real identity service and in replay."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from agent.config import CameraConfig
from agent.config.identity_models import IdentityConfig
from agent.config.vision_models import ModelsConfig, VisionConfig
from agent.identity import ephemeral
from agent.identity.pipeline import IdentityHook
from agent.vision.pipeline import CameraPipeline
from agent.vision.processor import FrameProcessor
from agent.vision.replay import replay
from agent.vision.source import Frame
from tests.identity.face_support import HEAD_POSE_VIDEO, SHARED_MODELS, face_pipeline, files_with_image_magic, video_frames
from tests.identity.test_privacy import _embedding_like
from models import runtime
from models.detectors import build_detector

FACE_MODEL_DIRS = ("face_detection", "face_embedding")


@pytest.fixture
def loaded_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of every ONNX model (and OpenCV YuNet) loaded while the test runs."""
    loaded: list[str] = []
    original = runtime.OnnxRunner.__init__

    def spy(self: Any, path: Any, threads: int = 2) -> None:
        loaded.append(str(path))
        original(self, path, threads)

    real_create = cv2.FaceDetectorYN.create

    def spy_create(model: str, *args: Any) -> Any:
        loaded.append(str(model))
        return real_create(model, *args)

    monkeypatch.setattr(runtime.OnnxRunner, "__init__", spy)
    monkeypatch.setattr(cv2.FaceDetectorYN, "create", spy_create)
    return loaded


@pytest.fixture
def image_encoders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calls of OpenCV's image encoders/writers during the test (there must be none)."""
    calls: list[str] = []
    for name in ("imwrite", "imencode", "imwritemulti"):
        real = getattr(cv2, name)

        def spy(*args: Any, _name: str = name, _real: Callable[..., Any] = real) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(cv2, name, spy)
    return calls


def _camera_pipeline(camera: CameraConfig, model_dir: Path) -> CameraPipeline:
    """A camera component with a stand-in identity service and its processor built (not running)."""
    pipeline = CameraPipeline(camera, VisionConfig(), ModelsConfig(dir=model_dir), outbox=None,  # type: ignore[arg-type]
                              identity_cfg=IdentityConfig(), identity_service=object())
    pipeline.processor = FrameProcessor(camera, VisionConfig(), build_detector("light-person", SHARED_MODELS))
    return pipeline


def _face_models(paths: list[str]) -> list[str]:
    return [p for p in paths if any(d in p for d in FACE_MODEL_DIRS)]


def test_identification_off_never_loads_face_models(loaded_models: list[str]) -> None:
    camera = CameraConfig(name="cam", url=str(HEAD_POSE_VIDEO))
    assert camera.identification is False, "off by default"
    summary = replay(HEAD_POSE_VIDEO, camera, VisionConfig(), SHARED_MODELS, threads=1,
                     identity_cfg=IdentityConfig())
    assert summary["tracks"] >= 2 and "identity" not in summary
    assert loaded_models and _face_models(loaded_models) == []

    pipeline = _camera_pipeline(camera, SHARED_MODELS)
    pipeline._attach_identity()
    assert pipeline.identity_hook is None and pipeline.processor.identity is None
    assert _face_models(loaded_models) == []

    # the probe works: with identification on, both face models are loaded
    on = camera.model_copy(update={"identification": True})
    replay(HEAD_POSE_VIDEO, on, VisionConfig(), SHARED_MODELS, threads=1, identity_cfg=IdentityConfig())
    assert {Path(p).parent.name for p in _face_models(loaded_models)} == set(FACE_MODEL_DIRS)


def test_live_identification_writes_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             make_service: Callable[..., Any], image_encoders: list[str]) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    service = make_service()
    camera = CameraConfig(name="entrance", url="video.gif", identification=True)
    processor = FrameProcessor(camera, VisionConfig(), build_detector("yolox-nano", SHARED_MODELS, threads=1))
    hook = IdentityHook("entrance", face_pipeline(), service, staff=processor.analytics.staff)
    processor.identity = hook
    ts = 1_700_000_000.0
    for index, image in enumerate(video_frames()):
        processor.process(Frame(image=image, ts=ts + index * 0.085, index=index))
    hook.finish(ts + 10)
    kinds = sorted(getattr(d, "kind", None) for d in hook.decisions.values())
    assert kinds == ["new", "new"], "two people, two new visitors"
    assert len({d.visitor_id for d in hook.decisions.values()}) == 2
    assert service.status()["galleries"].get("visitor", 0) >= 2, "their embeddings are in the visitor gallery"
    assert image_encoders == []
    assert files_with_image_magic(tmp_path) == []
    # What is queued for the cloud: pseudonymous ids and events, no embedding (sharing is off by default).
    rows = [(stream, json.loads(body)) for stream, body in service.conn.execute("SELECT stream, body FROM outbox")]
    assert [s for s, _ in rows].count("events/visitor") == 2
    assert [(s, _embedding_like(b)) for s, b in rows if _embedding_like(b)] == []


def test_replay_with_identification_writes_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    image_encoders: list[str]) -> None:
    kept = tmp_path / "replay-store"

    @contextlib.contextmanager
    def persistent_dir(prefix: str = "") -> Iterator[str]:
        kept.mkdir()
        yield str(kept)  # not deleted, so it can be scanned afterwards

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(ephemeral.tempfile, "TemporaryDirectory", persistent_dir)
    camera = CameraConfig(name="replay", url=str(HEAD_POSE_VIDEO), identification=True)
    summary = replay(HEAD_POSE_VIDEO, camera, VisionConfig(), SHARED_MODELS, threads=1,
                     identity_cfg=IdentityConfig())
    assert summary["identity"]["visitor_ids"] == 2
    assert (kept / "agent.db").is_file(), "the temporary store was used"
    assert image_encoders == []
    assert files_with_image_magic(tmp_path) == []


def test_image_scanner_finds_encoded_images(tmp_path: Path) -> None:
    image = video_frames()[0][:64, :64]
    for suffix in (".jpg", ".png"):
        ok, data = cv2.imencode(suffix, image)
        assert ok
        (tmp_path / f"blob{suffix}.bin").write_bytes(b"header" + data.tobytes() + b"trailer")
    assert len(files_with_image_magic(tmp_path)) == 2


def test_missing_face_models_keep_the_camera_counting(tmp_path: Path) -> None:
    camera = CameraConfig(name="door", url=str(HEAD_POSE_VIDEO), identification=True)
    pipeline = _camera_pipeline(camera, tmp_path / "empty-models")
    pipeline._attach_identity()
    assert pipeline.processor.identity is None
    assert "store-agent models pull" in pipeline.identity_error
    result = pipeline.processor.process(Frame(image=video_frames()[0], ts=0.0, index=0))
    assert result.detected, "counting goes on without identification"


def test_embedder_dimension_must_match_the_identity_store() -> None:
    from agent.identity.pipeline import build_identity_hook

    class SixtyFour:
        dim = 64

    with pytest.raises(ValueError, match="embedding_dim"):
        build_identity_hook("door", True, IdentityConfig(), SHARED_MODELS, SixtyFour())  # type: ignore[arg-type]


def test_doctor_requires_the_face_models_only_for_identification_cameras(tmp_path: Path) -> None:
    from agent.config import AgentConfig
    from agent.doctor.checks import check_models
    from agent.doctor.core import DoctorContext
    from models.registry import install

    model_dir = tmp_path / "models"
    install("light-person", model_dir, mirror=SHARED_MODELS)

    def run(identification: bool) -> Any:
        cfg = AgentConfig(models={"dir": model_dir}, cameras=[{
            "name": "door", "url": "rtsp://cam/1", "identification": identification,
            "analytics": {"detector": "light-person"}}])
        return check_models(DoctorContext(tmp_path / "agent.toml", cfg, None, {}, 1.0))

    assert run(False).status == "ok"
    result = run(True)
    assert result.status == "fail" and "yunet-n" in result.detail and "mobilefacenet" in result.detail


def test_counting_is_the_same_with_identification_on_off_or_failing() -> None:
    from agent.identity.pipeline import FacePipeline

    class Broken(FacePipeline):
        def track_faces(self, *args: Any) -> list:  # noqa: ANN401
            raise RuntimeError("face model exploded")

    real = face_pipeline()
    camera = CameraConfig(name="door", url="video.gif", identification=True, analytics={
        "lines": [{"name": "mid", "start": (0.5, 0.0), "end": (0.5, 1.0)}],
        "zones": [{"name": "all", "polygon": [(0, 0), (1, 0), (1, 1), (0, 1)]}]})
    frames = video_frames()
    hooks = {"off": None, "on": IdentityHook("door", real, None),
             "failing": IdentityHook("door", Broken(real.detector, real.embedder, real.cfg), None)}
    runs = {}
    for name, hook in hooks.items():
        processor = FrameProcessor(camera, VisionConfig(), build_detector("light-person", SHARED_MODELS, threads=1))
        processor.identity = hook
        results = [processor.process(Frame(image=image, ts=1_700_000_000.0 + i * 0.085, index=i))
                   for i, image in enumerate(frames)]
        runs[name] = ([(r.detected, r.tracks, repr(r.events)) for r in results], processor.status()["live"])
    assert any(tracks for _, tracks, _ in runs["off"][0]), "the clip has people: the comparison means something"
    assert runs["on"] == runs["off"] and runs["failing"] == runs["off"]
    assert hooks["on"].counts["decisions"] >= 1, "identification really ran"
    assert hooks["failing"].counts["errors"] >= 1 and hooks["failing"].counts["decisions"] == 0
