"""``store-agent bench pipeline``: the static segment, the re-timed passes, the gating gain on a real static scene
and the CLI's JSON figures on a real clip with the real detector (installed from the shared mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.bench.pipeline_bench import (bench_camera, clip_fps, decode_frames, measure_gating, repeated,
                                        static_segment)
from agent.cli.main import app
from models.detectors import Detector, build_detector


@pytest.fixture(scope="module")
def worker_frames(worker_gif: Path):
    return decode_frames(worker_gif)


@pytest.fixture(scope="module")
def yolox(models_dir: Path) -> Detector:
    return build_detector("yolox-nano", models_dir, threads=2)


def test_static_segment_is_the_frame_with_fresh_sensor_noise(worker_frames) -> None:
    image = worker_frames[-1].image
    frames = list(static_segment(image, fps=15.0, seconds=2.0, noise_sigma=3.0))
    assert len(frames) == 30
    assert np.allclose(np.diff([f.ts for f in frames]), 1 / 15)
    noise = frames[0].image.astype(np.int16) - image.astype(np.int16)
    assert 2.5 < noise.std() < 3.5 and abs(noise.mean()) < 0.3  # σ = 3 (clipping at 0/255 aside)
    for a, b in zip(frames, frames[1:]):
        assert not np.array_equal(a.image, b.image)  # consecutive frames never share a noise field
    assert all(np.array_equal(f.image, image) for f in static_segment(image, 15.0, 1.0, noise_sigma=0.0))


def test_repeated_passes_keep_time_increasing_and_can_be_retimed(worker_frames) -> None:
    fps = clip_fps(worker_frames)
    assert 14.5 < fps < 15.5  # 71 frames in 4.67 s
    passes = list(repeated(worker_frames, 3))
    assert len(passes) == 3 * 71 and [f.index for f in passes] == list(range(213))
    steps = np.diff([f.ts for f in passes])
    assert (steps > 0).all() and steps.max() < 0.1
    assert all(p.image is f.image for p, f in zip(passes[71:142], worker_frames))
    fast = list(repeated(worker_frames, 2, min_spacing_s=0.1))  # re-timed: every frame 0.1 s apart
    assert np.allclose(np.diff([f.ts for f in fast]), 0.1)


def test_motion_gating_saves_at_least_5x_on_a_static_scene_with_defaults(worker_frames, yolox) -> None:
    camera = bench_camera("clip.gif", "yolox-nano")  # default settings: 5 fps, forced detection every 2 s
    result = measure_gating(worker_frames[-1].image, 15.0, 20.0, yolox, camera, noise_sigma=3.0)
    assert result["inferences_ungated"] == 100  # 20 s at 5 fps
    assert result["inferences_gated"] == 10  # the first frame, then one forced detection every 2 s
    assert result["gain"] >= 5.0


def test_bench_pipeline_cli_prints_the_figures(tmp_path, worker_gif, shared_dir) -> None:
    model_dir = tmp_path / "models"
    result = CliRunner().invoke(app, ["bench", "pipeline", str(worker_gif), "--model-dir", str(model_dir),
                                      "--mirror", str(shared_dir / "models"), "--repeat", "1",
                                      "--static-seconds", "10", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert (model_dir / "person_detection" / "yolox_nano_416x416.onnx").is_file()  # installed from the mirror
    assert {"pipeline_fps", "detector_fps", "ratio", "motion_gating_gain"} <= out.keys()
    assert out["frames_measured"] == 71 and out["clip_frames"] == 71
    assert out["pipeline_counts"]["inferences"] == 71  # detection on every frame, gate off
    assert out["pipeline_counts"]["detections"] >= 65  # the worker is found in (nearly) every frame
    assert out["ratio"] == pytest.approx(out["pipeline_fps"] / out["detector_fps"], rel=0.01)
    # Sanity, not the goal (2 cores are shared with other tests): the pipeline is the detector plus a little.
    assert 0.5 < out["ratio"] < 1.1
    stages = out["stage_ms"]
    assert 0 < stages["tracker"] < 20 and 0 < stages["analytics"] < 20
    assert stages["pipeline"] > stages["inference_in_pipeline"]
    assert out["motion_gating_gain"] == out["static"]["gain"] >= 5.0
    # The real clip has a person walking throughout: the gate must not skip its detections.
    assert out["clip_gating"]["inferences_gated"] == out["clip_gating"]["inferences_ungated"]
