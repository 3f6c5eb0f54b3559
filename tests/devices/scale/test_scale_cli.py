"""``store-agent scale probe|read|simulate`` against the pty simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from devices.scale.sim import ScaleSimulator

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.mark.parametrize("protocol", ["toledo8217", "mt-sics", "scp01"])
def test_probe_detects_the_protocol(protocol: str) -> None:
    with ScaleSimulator(protocol) as sim:
        sim.set_weight(0.25)
        result = runner.invoke(app, ["scale", "probe", sim.path, "--timeout", "0.3", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["detected"] == protocol
    assert [p for p, r in out["protocols"].items() if r["reading"]] == [protocol]
    assert out["protocols"][protocol]["reading"]["weight_kg"] == pytest.approx(0.25, abs=0.003)


def test_probe_of_a_silent_port_exits_1() -> None:
    with ScaleSimulator("mt-sics") as sim:
        sim.mute(5)
        result = runner.invoke(app, ["scale", "probe", sim.path, "--timeout", "0.2"])
    assert result.exit_code == 1 and "detected: none" in result.stdout


def test_read_count_json() -> None:
    with ScaleSimulator("toledo8217") as sim:
        sim.set_weight(1.5)
        result = runner.invoke(app, ["scale", "read", sim.path, "--protocol", "toledo8217", "--count", "3",
                                     "--interval", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3 and all(r["weight_kg"] == 1.5 and r["unit"] == "kg" for r in lines)
    assert lines[0]["raw"] == "\\x02001.500\\r"


def test_read_rejects_an_unknown_protocol() -> None:
    result = runner.invoke(app, ["scale", "read", "/dev/null", "--protocol", "cas"])
    assert result.exit_code == 2 and "unknown protocol" in result.output


def test_simulate_prints_the_pty_and_serves_until_interrupted(tmp_path: Path) -> None:
    script = tmp_path / "w.txt"
    script.write_text("0 0.000\n0.1 0.700\n", encoding="utf-8")
    exe = Path(sys.executable).with_name("store-agent")
    proc = subprocess.Popen([str(exe), "scale", "simulate", "--protocol", "scp01", "--unit", "kg", "--script",
                             str(script), "--garbage-rate", "0.5", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        port = json.loads(proc.stdout.readline())["port"]
        result = runner.invoke(app, ["scale", "read", port, "--protocol", "scp01", "--count", "5",
                                     "--interval", "0.05", "--json"])
        assert result.exit_code == 0, result.output
        weights = [json.loads(line)["weight_kg"] for line in result.stdout.splitlines()]
        assert weights[-1] == 0.7 and all(w in (0.0, 0.7) for w in weights)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])["stats"]
    assert stats["requests"] >= 5 and stats["garbage_bytes"] > 0
    assert not os.path.exists(port)


def test_simulate_rejects_a_unit_the_scale_cannot_show() -> None:
    result = runner.invoke(app, ["scale", "simulate", "--protocol", "mt-sics", "--unit", "stone", "--duration", "1"])
    assert result.exit_code == 2 and "stone" in result.output
