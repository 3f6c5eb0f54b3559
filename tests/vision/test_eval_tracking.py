"""``store-agent eval tracking`` on the real MOT17 mini sequences: result file format, JSON shape, near-perfect
scores on ground-truth boxes, the MOT17 distractor protocol, the library comparison (the issue's target: our
IDF1 ≥ the library ByteTrack's on the same detections) and a registry detector run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from agent.cli import eval_cmd
from agent.vision.eval_tracking import evaluate_tracking, motmetrics_scores, trackeval_hota
from agent.vision.mot import MotSequence, load_rows, write_results

SEQS = ["MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-05-FRCNN", "MOT17-09-FRCNN"]


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(eval_cmd.app, name="eval")

    @root.command()
    def version() -> None:  # a second command keeps typer from collapsing the group
        pass

    return root


@pytest.fixture(scope="module")
def gt_run(mot17_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("gt-ours")
    result = CliRunner().invoke(_cli(), ["eval", "tracking", *[str(mot17_dir / s) for s in SEQS],
                                         "--out", str(out), "--detector", "gt", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), out


def test_json_has_per_sequence_and_overall_scores(gt_run) -> None:  # noqa: ANN001
    data, _ = gt_run
    assert set(data["sequences"]) == set(SEQS)
    for scores in [*data["sequences"].values(), data["overall"]]:
        assert {"MOTA", "IDF1", "HOTA"} <= set(scores)
        assert all(isinstance(scores[k], float) for k in ("MOTA", "IDF1", "HOTA"))
    assert data["overall"]["GT"] == 88 + 336 + 45 + 24  # evaluated pedestrian boxes (data README)


def test_ground_truth_boxes_track_almost_perfectly(gt_run) -> None:  # noqa: ANN001
    data, _ = gt_run
    overall = data["overall"]
    assert overall["MOTA"] >= 0.98 and overall["IDF1"] >= 0.98 and overall["HOTA"] >= 0.98
    assert overall["FP"] == 0 and overall["IDSW"] <= 1
    for name in ("MOT17-02-FRCNN", "MOT17-04-FRCNN", "MOT17-09-FRCNN"):  # static cameras: perfect
        assert data["sequences"][name]["MOTA"] == 1.0 and data["sequences"][name]["IDF1"] == 1.0
    # MOT17-05 (moving camera): 3 people enter mid-sequence and are tentative on their first frame
    assert data["sequences"]["MOT17-05-FRCNN"]["MOTA"] >= 0.9


def test_result_files_are_mot_format(gt_run, mot17_dir: Path) -> None:  # noqa: ANN001
    _, out = gt_run
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s}.txt" for s in SEQS)
    for name in SEQS:
        seq = MotSequence.load(mot17_dir / name)
        lines = (out / f"{name}.txt").read_text().splitlines()
        assert lines
        for line in lines:
            fields = line.split(",")
            assert len(fields) == 10 and fields[7:] == ["-1", "-1", "-1"]
            frame, track_id = int(fields[0]), int(fields[1])
            x, y, w, h, conf = map(float, fields[2:7])
            assert 1 <= frame <= seq.length and track_id >= 1 and w > 0 and h > 0 and 0 <= conf <= 1
        rows = load_rows(out / f"{name}.txt", 10)
        assert np.all(np.diff(rows[:, 0]) >= 0)  # sorted by frame
        for frame in np.unique(rows[:, 0]):  # one box per id per frame
            ids = rows[rows[:, 0] == frame, 1]
            assert len(ids) == len(set(ids))


def test_predictions_on_distractors_are_ignored_but_on_other_classes_count(mot17_dir: Path, tmp_path: Path) -> None:
    seq = MotSequence.load(mot17_dir / "MOT17-02-FRCNN")
    gt = load_rows(seq.gt_path, 9)
    ped = gt[(gt[:, 6] == 1) & (gt[:, 7] == 1)]
    static_person = gt[gt[:, 7] == 7][0]     # distractor class: a box there must not be a false positive
    bicycle = gt[gt[:, 7] == 4][0]           # not a distractor: a box there is a false positive

    def score(extra: list[np.ndarray]) -> tuple[dict, float]:
        rows = [np.r_[r[0], r[1], r[2:6], 1.0, -1, -1, -1] for r in ped]
        rows += [np.r_[r[0], 9000 + i, r[2:6], 1.0, -1, -1, -1] for i, r in enumerate(extra)]
        out = tmp_path / f"run{len(extra)}-{int(extra[0][7]) if extra else 0}"
        out.mkdir()
        write_results(out / f"{seq.name}.txt", np.array(rows))
        return motmetrics_scores([seq], out)[seq.name], trackeval_hota([seq], out)[seq.name]

    clean, clean_hota = score([])
    assert clean["MOTA"] == 1.0 and clean["FP"] == 0 and clean_hota == pytest.approx(1.0)
    on_distractor, distractor_hota = score([static_person])
    assert on_distractor["FP"] == 0 and distractor_hota == pytest.approx(1.0)
    on_bicycle, bicycle_hota = score([bicycle])
    assert on_bicycle["FP"] == 1 and bicycle_hota < 1.0


def test_our_idf1_is_at_least_the_library_bytetrack_on_the_same_detections(mot17_dir: Path, tmp_path: Path) -> None:
    seqs = [mot17_dir / s for s in SEQS]
    for detector in ("gt", "public"):
        ours = evaluate_tracking(seqs, tmp_path / f"{detector}-ours", detector=detector, tracker="ours")
        lib = evaluate_tracking(seqs, tmp_path / f"{detector}-lib", detector=detector, tracker="library-bytetrack")
        assert lib["tracker"] == "library-bytetrack" and set(lib["sequences"]) == set(SEQS)
        assert 0.0 < lib["overall"]["IDF1"] <= ours["overall"]["IDF1"], (detector, ours["overall"], lib["overall"])
        for name in SEQS:
            assert lib["sequences"][name]["IDF1"] <= ours["sequences"][name]["IDF1"] + 1e-9


def test_registry_detector_run_and_missing_model_error(mot17_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    seq = mot17_dir / "MOT17-05-FRCNN"  # 640×480, 6 frames
    result = CliRunner().invoke(_cli(), ["eval", "tracking", str(seq), "--out", str(tmp_path / "yolox"),
                                         "--detector", "yolox-nano", "--model-dir", str(models_dir), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["detector"] == "yolox-nano"
    assert 0.2 < data["overall"]["MOTA"] <= 1.0 and data["overall"]["IDF1"] > 0.3
    assert (tmp_path / "yolox" / "MOT17-05-FRCNN.txt").read_text().strip()

    missing = CliRunner().invoke(_cli(), ["eval", "tracking", str(seq), "--out", str(tmp_path / "x"),
                                          "--detector", "yolox-nano", "--model-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "models pull yolox-nano" in missing.output


def test_sequence_without_seqinfo_and_unknown_tracker(mot17_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "MOT17-09-FRCNN"
    shutil.copytree(mot17_dir / "MOT17-09-FRCNN", copy)
    (copy / "seqinfo.ini").unlink()
    seq = MotSequence.load(copy)  # name from the folder, length from the images, 30 fps
    assert (seq.name, seq.length, seq.frame_rate) == ("MOT17-09-FRCNN", 4, 30.0)
    bad = CliRunner().invoke(_cli(), ["eval", "tracking", str(copy), "--out", str(tmp_path / "o"),
                                      "--tracker", "sort"])
    assert bad.exit_code == 2 and "unknown tracker" in bad.output
    data = evaluate_tracking([copy], tmp_path / "ok", detector="gt")
    assert data["overall"]["MOTA"] == 1.0 and data["overall"]["HOTA"] == 1.0
