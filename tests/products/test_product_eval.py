"""``store-agent eval products`` on a small subset: the exact JSON keys, accuracy above chance, the learning
curve, both input layouts (folder-per-class and a GroceryStoreDataset root with split files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from agent.cli.main import app
from agent.products.dataset import load_labelled
from tests.products.conftest import FIVE

GALLERY_PER_CLASS = 6
QUERIES_PER_CLASS = 3


def _folder_tree(grocery: Path, root: Path) -> Path:
    """Folder-per-class gallery: the first 6 train photos of five classes."""
    for name, rel in FIVE.items():
        (root / name).mkdir(parents=True)
        for src in sorted((grocery / rel).glob("*.jpg"))[:GALLERY_PER_CLASS]:
            shutil.copy(src, root / name / src.name)
    return root


def _grocery_root(grocery: Path, root: Path) -> Path:
    """A GroceryStoreDataset-shaped root whose val.txt lists 3 val photos of each of the five classes."""
    root.mkdir(parents=True)
    shutil.copy(grocery / "classes.csv", root / "classes.csv")
    lines = [ln for ln in (grocery / "val.txt").read_text().splitlines() if ln.strip()]
    picked: list[str] = []
    for name in FIVE:
        rows = [ln for ln in lines if f"/{name}/{name}_" in ln.split(",")[0]]
        picked += rows[:QUERIES_PER_CLASS]
    for row in picked:
        rel = row.split(",")[0]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(grocery / rel, root / rel)
    (root / "val.txt").write_text("\n".join(picked) + "\n")
    (root / "train.txt").write_text("")
    return root


def _config(tmp_path: Path, shared_models: Path) -> str:
    path = tmp_path / "agent.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[models]\ndir = "{shared_models}"\n')
    return str(path)


def test_eval_products_reports_the_issue_keys_and_beats_chance(grocery: Path, shared_models: Path,
                                                               tmp_path: Path) -> None:
    gallery = _folder_tree(grocery, tmp_path / "gallery")
    queries = _grocery_root(grocery, tmp_path / "queries")
    assert len(load_labelled(queries, "val")) == 5 * QUERIES_PER_CLASS
    result = CliRunner().invoke(app, ["eval", "products", "--gallery", str(gallery), "--queries", str(queries),
                                      "--query-split", "val", "--shots", "1,5", "--learn",
                                      "--config", _config(tmp_path, shared_models),
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(out) == {"classes", "queries", "shots", "learning_curve"}
    assert out["classes"] == 5 and out["queries"] == 15
    assert set(out["shots"]) == {"1", "5"}
    for stats in out["shots"].values():
        assert set(stats) == {"top1", "top5", "ms_per_query"}
        assert stats["top5"] == 1.0  # five classes: the true one is always among five
        assert stats["ms_per_query"] > 0
    assert out["shots"]["5"]["top1"] > 0.2 + 0.3  # chance is 0.2; these five products differ clearly
    curve = out["learning_curve"]
    assert curve and curve[-1]["queries"] == 15
    assert curve[-1]["gallery_size"] > 5  # started from 1 shot x 5 classes; confirmations were learned
    assert all({"queries", "top1", "top5", "cumulative_top1", "gallery_size"} <= set(p) for p in curve)


def test_eval_products_rejects_a_grocery_root_without_the_split(grocery: Path, shared_models: Path,
                                                                tmp_path: Path) -> None:
    queries = _grocery_root(grocery, tmp_path / "queries")
    result = CliRunner().invoke(app, ["eval", "products", "--gallery", str(queries), "--queries", str(queries),
                                      "--gallery-split", "test", "--config", _config(tmp_path, shared_models),
                                      "--json"])
    assert result.exit_code == 1
    assert "test.txt" in result.output
