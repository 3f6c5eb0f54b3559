"""End-to-end: ``replay`` (detector → tracker → lines/zones) on the real labelled videos reproduces the hand-made
ground truth in ``tests/data/ground_truth/`` — footfall counts exactly, dwell within the issue's targets.

The videos are read from ``../shared/data/videos`` and the detector is installed from the ``../shared/models``
mirror into a temporary model directory (never downloaded, never copied into the repository). Lines, zones and
detection settings are the truth files' own, with the product's default settings (detection at 5 fps, motion
gating on, hysteresis 0.03, enter after 3 frames, exit grace 2 s).

Sample videos by Intel Corporation, from github.com/intel-iot-devkit/sample-videos, licensed CC BY 4.0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli.main import app
from agent.vision.eval_counting import evaluate_counting, load_ground_truth, sha256_of
from models.registry import install

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
VIDEOS = SHARED / "data" / "videos"
TRUTH_DIR = REPO_ROOT / "tests" / "data" / "ground_truth"
ATTRIBUTION = "Sample video by Intel Corporation, from github.com/intel-iot-devkit/sample-videos, licensed CC BY 4.0."

LABELLED = ["worker-zone-detection", "face-demographics-walking", "people-detection"]

# One visit's enter/exit may be off by up to two detection intervals at 5 fps plus the labels' own ±0.2 s.
VISIT_EDGE_TOL_S = 0.5

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHARED / "models").is_dir():
        pytest.fail(f"shared model mirror missing: {SHARED / 'models'}")
    directory = tmp_path_factory.mktemp("models")
    install("yolox-nano", directory, mirror=SHARED / "models")
    return directory


@pytest.fixture(scope="module")
def evaluated(model_dir: Path) -> Callable[[str], dict[str, Any]]:
    """``evaluated(stem)`` → the ``evaluate_counting`` result of that video, run once per module."""
    cache: dict[str, dict[str, Any]] = {}

    def run(stem: str) -> dict[str, Any]:
        if stem not in cache:
            cache[stem] = evaluate_counting(VIDEOS / f"{stem}.gif", TRUTH_DIR / f"{stem}.json", model_dir=model_dir,
                                            threads=2)
        return cache[stem]

    return run


def _frame_times(video: Path) -> list[float]:
    with Image.open(video) as im:
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info.get("duration") or 0)
    times, t = [], 0
    for d in durations:
        times.append(t / 1000)
        t += d
    return times


@pytest.mark.parametrize("stem", LABELLED)
def test_ground_truth_file_describes_its_video(stem: str) -> None:
    """Labels belong to the exact file (sha256), every label time is one of its frame times, and the file
    carries the licence attribution."""
    video = VIDEOS / f"{stem}.gif"
    truth = load_ground_truth(TRUTH_DIR / f"{stem}.json")
    raw = json.loads((TRUTH_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    assert truth.video == video.name
    assert sha256_of(video) == truth.sha256
    assert raw["attribution"] == ATTRIBUTION
    times = _frame_times(video)
    assert len(times) == truth.frames
    label_times = [c["ts"] for c in truth.crossings] + [t for v in truth.visits for t in (v["enter_ts"], v["exit_ts"])]
    for ts in label_times:
        assert min(abs(ts - t) for t in times) < 0.006, f"{ts} s is not a frame time of {video.name}"
    for v in truth.visits:
        assert times[v["enter_frame"]] == pytest.approx(v["enter_ts"], abs=0.006)
        assert times[v["exit_frame"]] == pytest.approx(v["exit_ts"], abs=0.006)


def test_labelled_videos_hold_real_events() -> None:
    """The references are not empty: the two walking clips have crossings and visits (only people-detection is a
    deliberately empty-room check)."""
    for stem in ("worker-zone-detection", "face-demographics-walking"):
        truth = load_ground_truth(TRUTH_DIR / f"{stem}.json")
        assert truth.crossings and truth.visits


@pytest.mark.parametrize("stem", LABELLED)
def test_replay_counts_every_true_crossing_once(stem: str, evaluated: Callable[[str], dict[str, Any]]) -> None:
    """Gross counting error ≤ 2 % overall and per line and direction (with these few crossings: exact), each
    predicted crossing within ±1 s of a true one."""
    result = evaluated(stem)
    overall = result["counting"]["overall"]
    assert overall["gross_error"] is not None and overall["gross_error"] <= 0.02, result["events"]["crossings"]
    for key, score in result["counting"]["by_line"].items():
        assert score["pred"] == score["true"] == score["matched"], (key, result["events"]["crossings"])


@pytest.mark.parametrize("stem", LABELLED)
def test_replay_visit_counts_and_dwell_meet_targets(stem: str, evaluated: Callable[[str], dict[str, Any]]) -> None:
    """Visits per zone predicted = true; dwell median absolute error of matched visits ≤ 1 s."""
    result = evaluated(stem)
    for zone, counts in result["visits"].items():
        assert counts["pred"] == counts["true"], (zone, result["events"]["visits"])
    median = result["dwell"]["overall"]["median_abs_error_s"]
    if result["dwell"]["overall"]["true"]:
        assert median is not None and median <= 1.0, result["dwell"]
    else:
        assert median is None


@pytest.mark.parametrize("stem", [
    "worker-zone-detection",
    "face-demographics-walking",
    "people-detection",
])
def test_replay_matches_every_true_visit(stem: str, evaluated: Callable[[str], dict[str, Any]]) -> None:
    """Stricter than the targets: every true visit is matched (temporal IoU ≥ 0.5) by a predicted visit whose
    enter and exit are each within 0.5 s of the truth."""
    result = evaluated(stem)
    truth = load_ground_truth(TRUTH_DIR / f"{stem}.json")
    assert result["dwell"]["overall"]["matched"] == len(truth.visits), result["events"]["visits"]
    pred = result["events"]["visits"]
    for v in truth.visits:
        same_zone = [p for p in pred if p["zone"] == v["zone"]]
        best = min(same_zone, key=lambda p: abs(p["enter_ts"] - v["enter_ts"]) + abs(p["exit_ts"] - v["exit_ts"]))
        assert abs(best["enter_ts"] - v["enter_ts"]) <= VISIT_EDGE_TOL_S, (v, best)
        assert abs(best["exit_ts"] - v["exit_ts"]) <= VISIT_EDGE_TOL_S, (v, best)


def test_eval_counting_cli_prints_the_scores(model_dir: Path) -> None:
    """``store-agent eval counting VIDEO --truth FILE --json`` runs the same evaluation."""
    stem = "worker-zone-detection"
    result = CliRunner().invoke(app, ["eval", "counting", str(VIDEOS / f"{stem}.gif"), "--truth",
                                      str(TRUTH_DIR / f"{stem}.json"), "--model-dir", str(model_dir),
                                      "--threads", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["counting"]["overall"] == {"true": 2, "pred": 2, "matched": 2, "missed": 0, "false": 0,
                                          "precision": 1.0, "recall": 1.0, "gross_error": 0.0}
    assert out["targets"]["met"] is True
    assert math.isfinite(out["targets"]["dwell_median_abs_error_s"])


def test_eval_counting_refuses_a_video_the_labels_were_not_made_on(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        evaluate_counting(VIDEOS / "people-detection.gif", TRUTH_DIR / "worker-zone-detection.json",
                          model_dir=model_dir)
