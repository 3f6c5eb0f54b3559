"""``eval faces``, ``bench identity`` and ``replay --identification``: exact output keys and sane values on real
data (a subset of the shared LFW photos; the head-pose clip)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.identity.eval_faces import rank1_and_open_set, tar_at_far
from tests.identity.face_support import FACES_DIR, HEAD_POSE_VIDEO, SHARED_MODELS

EVAL_KEYS = {"identities", "images", "tar_at_far_1e-2", "tar_at_far_1e-3", "rank1", "open_set_false_accept",
             "threshold", "ms_per_face"}
SUBSET = ["Amelie_Mauresmo", "Bill_Clinton", "David_Beckham", "Hans_Blix", "Jiang_Zemin", "Laura_Bush"]


@pytest.fixture
def subset_dir(tmp_path: Path) -> Path:
    """Six identities of the shared photos, linked (not copied) into a folder-per-identity tree."""
    root = tmp_path / "faces"
    root.mkdir()
    for name in SUBSET:
        (root / name).symlink_to(FACES_DIR / name, target_is_directory=True)
    return root


def test_tar_at_far_on_hand_computed_scores() -> None:
    impostor = np.arange(1000) / 1000.0  # 0.000 … 0.999
    genuine = np.array([0.9995, 0.995, 0.985, 0.5])
    tar, threshold = tar_at_far(genuine, impostor, 1e-2)
    assert threshold == pytest.approx(0.989) and tar == 0.5  # 10 impostors above 0.989
    tar3, threshold3 = tar_at_far(genuine, impostor, 1e-3)
    assert threshold3 == pytest.approx(0.998) and tar3 == 0.25


def test_rank1_and_open_set_on_constructed_embeddings() -> None:
    eye = np.eye(6, dtype=np.float32)
    # identities 0..5, two photos each; identity 4's second photo looks like identity 5
    emb = np.concatenate([eye, eye])
    emb[10] = (eye[5] * 0.9 + eye[4] * 0.1) / np.linalg.norm([0.9, 0.1])
    labels = np.concatenate([np.arange(6), np.arange(6)])
    rank1, open_set = rank1_and_open_set(emb, labels, threshold=0.5)
    assert rank1 == pytest.approx(5 / 6, abs=1e-4)
    # left out: identities 1 and 4 → strangers are photos 1, 7, 4, 10; only photo 10 (≈ identity 5) is accepted
    assert open_set == pytest.approx(0.25)


def test_eval_faces_cli_keys_and_values(subset_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "faces", str(subset_dir), "--model-dir", str(SHARED_MODELS),
                                      "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == EVAL_KEYS
    assert out["identities"] == len(SUBSET)
    assert out["images"] == sum(len(list((FACES_DIR / n).glob("*.jpg"))) for n in SUBSET)
    assert out["threshold"] == 0.4
    for key in ("tar_at_far_1e-2", "tar_at_far_1e-3", "rank1", "open_set_false_accept"):
        assert 0.0 <= out[key] <= 1.0
    assert out["tar_at_far_1e-2"] >= out["tar_at_far_1e-3"] >= 0.8
    assert out["rank1"] >= 0.9 and out["open_set_false_accept"] <= 0.1
    assert 0 < out["ms_per_face"] < 1000


def test_eval_faces_cli_rejects_a_folder_without_identities(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "faces", str(tmp_path), "--model-dir", str(SHARED_MODELS), "--json"])
    assert result.exit_code == 1 and "no identity folders" in result.output


def test_bench_identity_cli_keys(subset_dir: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "identity", "--faces", str(subset_dir), "--sizes", "2000,60000",
                                      "--queries", "20", "--model-dir", str(SHARED_MODELS), "--threads", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {"search_ms", "face_pipeline_ms"}
    assert set(out["search_ms"]) == {"2000", "60000"}
    assert all(0 < v < 1000 for v in out["search_ms"].values())
    assert 0 < out["face_pipeline_ms"] < 1000


def test_replay_reports_visitor_ids_against_the_true_number() -> None:
    result = CliRunner().invoke(app, ["replay", str(HEAD_POSE_VIDEO), "--model-dir", str(SHARED_MODELS),
                                      "--identification", "--true-people", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["tracks"] >= 2
    ident = out["identity"]
    assert ident["visitor_ids"] == 2 and ident["true_people"] == 2
    assert ident["extra_ids"] == 0 and ident["missing_ids"] == 0


def test_eval_faces_json_stays_valid_without_genuine_pairs(tmp_path: Path) -> None:
    root = tmp_path / "singles"
    for name in SUBSET[:2]:  # one photo per identity: no genuine pair, no probe
        (root / name).mkdir(parents=True)
        (root / name / f"{name}_0001.jpg").symlink_to(FACES_DIR / name / f"{name}_0001.jpg")
    result = CliRunner().invoke(app, ["eval", "faces", str(root), "--model-dir", str(SHARED_MODELS), "--threads",
                                      "1", "--json"])
    assert result.exit_code == 0, result.output

    def reject(constant: str) -> None:
        raise AssertionError(f"{constant} is not valid JSON")

    out = json.loads(result.stdout, parse_constant=reject)
    assert set(out) == EVAL_KEYS and out["images"] == 2
    assert out["tar_at_far_1e-2"] is None and out["rank1"] is None
