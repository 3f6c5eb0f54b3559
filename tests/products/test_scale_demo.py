"""``store-agent demo --json`` with only the scale part: candidates, confirmations, a new product learned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.products.conftest import REPO_ROOT, SHARED


def test_scale_demo_shows_candidates_confirmation_and_learning(tmp_path: Path) -> None:
    others = ["faces", "labels"]
    cmd = [sys.executable, "-m", "agent.cli.main", "demo", "--json", "--duration", "1",
           "--mirror", str(SHARED), "--workdir", str(tmp_path / "demo")]
    for name in others:
        cmd += ["--skip", name]
    run = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert not [e for e in summary["errors"] if e.startswith("scale")], summary["errors"]
    scale = summary["scale"]
    assert [w["chosen"] for w in scale["weighings"]] == ["4011", "4088", "4088"]
    assert scale["weighings"][0]["chosen_rank"] == 1  # the banana was recognised
    assert scale["learned_new_product"] is True  # the pepper: not shown at first, top-1 after one confirmation
    assert scale["counts"] == {"candidates": 3, "confirmed": 3, "learned": 3}
    assert summary["cloud"]["events/weighing"]["received"] == 3
    assert summary["cloud"]["events/product_learned"]["received"] == 3
