"""``store-agent bench scale --json``: the issue's keys, measured through the pty simulator and a broker."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agent.cli.main import app


def test_bench_scale_reports_percentiles_of_real_weighings(tmp_path: Path, shared_models: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n[models]\ndir = "{shared_models}"\n')
    result = CliRunner().invoke(app, ["bench", "scale", "--weighings", "3", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(out) == {"p50_stable_to_candidates_ms", "p95_stable_to_candidates_ms", "weighings"}
    assert out["weighings"] == 3
    assert 0 < out["p50_stable_to_candidates_ms"] <= out["p95_stable_to_candidates_ms"] < 5000
