"""scripts/store-agent.service still lets the agent reach what its components need under the hardening:
serial scales, USB cameras, the network (cloud, local bus, ESL gateways) and a writable data_dir."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.config import AgentConfig

UNIT = Path(__file__).resolve().parents[2] / "scripts" / "store-agent.service"


def directives() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (comments skipped), values in order."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_serial_scales_and_cameras_are_allowed_devices() -> None:
    unit = directives()
    assert unit.get("PrivateDevices", ["no"])[-1] == "no"  # yes would hide /dev/ttyUSB*
    allowed = set(unit["DeviceAllow"])
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-video4linux rw"} <= allowed
    assert "dialout" in unit["SupplementaryGroups"][-1].split()
    assert unit.get("DevicePolicy", ["auto"])[-1] != "strict"  # strict would also drop /dev/null, /dev/urandom


def test_network_and_writable_paths_cover_the_components() -> None:
    unit = directives()
    families = unit["RestrictAddressFamilies"][-1].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert unit.get("PrivateNetwork", ["no"])[-1] == "no"
    cfg = AgentConfig()
    writable = [Path(p) for p in unit["ReadWritePaths"]] + [Path("/var/lib") / d for d in unit["StateDirectory"]]
    for path in (cfg.data_dir, cfg.models.dir):  # database, outbox, galleries; installed models
        assert any(path == w or w in path.parents for w in writable), path
    assert unit.get("MemoryDenyWriteExecute", ["no"])[-1] == "no"  # onnxruntime / ctypes need it off


def test_stop_timeout_leaves_room_for_the_supervisor() -> None:
    unit = directives()
    limit = AgentConfig.model_fields["supervisor"].annotation.model_fields["stop_timeout_s"]
    max_stop = next(m.le for m in limit.metadata if hasattr(m, "le"))
    assert float(unit["TimeoutStopSec"][-1]) > max_stop


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_finds_nothing_but_the_missing_install(tmp_path: Path) -> None:
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8"))
    out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if line.strip() and "/opt/store-agent/.venv/bin/store-agent is not executable" not in line]
    assert problems == []
