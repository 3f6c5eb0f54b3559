"""``store-agent models …`` (agent/cli/models_cmd.py) through typer's CliRunner: pull from the ../shared mirror,
verify, detect a corrupted file with a message that says what and how to fix, repair it with pull; info shows every
field and the licence caveat; export fails clearly without the ultralytics extra. Nothing is downloaded."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.models_cmd import app
from models import registry
from models.registry import MIRROR_ENV, REGISTRY

SMALL = "imagenet-labels"
REAL_OPEN_URL = registry._open_url


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(spec):
        raise AssertionError(f"the CLI tried to download {spec.url}")

    monkeypatch.setattr(registry, "_open_url", refuse)
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.delenv("STORE_AGENT_CONFIG", raising=False)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_pull_verify_corrupt_repair(tmp_path: Path, shared_models: Path) -> None:
    d = str(tmp_path / "models")
    code, out, _ = cli("pull", "yolox-nano", SMALL, "--mirror", str(shared_models), "--dir", d)
    assert code == 0, out
    assert "yolox-nano: installed from mirror" in out and "sha256 verified" in out

    code, out, _ = cli("verify", "--dir", d)
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert code == 0 and lines["yolox-nano"].startswith("ok") and "not installed" in lines["mobilefacenet"]

    path = tmp_path / "models" / REGISTRY["yolox-nano"].relpath
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x55
    path.write_bytes(bytes(data))

    code, out, _ = cli("verify", "--dir", d)
    assert code == 1
    line = next(line for line in out.splitlines() if "yolox-nano" in line)
    assert line.startswith("FAIL") and "sha256 mismatch" in line and REGISTRY["yolox-nano"].sha256 in line
    assert "run `store-agent models pull yolox-nano` to repair" in line

    code, out, _ = cli("pull", "yolox-nano", "--mirror", str(shared_models), "--dir", d)
    assert code == 0 and "installed from mirror" in out
    code, out, _ = cli("verify", "yolox-nano", SMALL, "--dir", d, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and [m["name"] for m in report["models"]] == ["yolox-nano", SMALL]


def test_pull_twice_keeps_the_verified_file(tmp_path: Path, shared_models: Path) -> None:
    d = str(tmp_path)
    assert cli("pull", SMALL, "--mirror", str(shared_models), "--dir", d)[0] == 0
    code, out, _ = cli("pull", SMALL, "--dir", d, "--mirror", str(tmp_path / "nowhere"))
    assert code == 0 and "already installed and verified" in out


def test_pull_from_a_bad_mirror_fails_and_installs_nothing(tmp_path: Path) -> None:
    code, _, err = cli("pull", SMALL, "--mirror", str(tmp_path / "empty"), "--dir", str(tmp_path / "m"),
                          "--json")
    assert code == 1 and "cannot read" in err
    assert not (tmp_path / "m" / REGISTRY[SMALL].relpath).exists()


def test_verify_of_a_named_missing_model_fails(tmp_path: Path) -> None:
    code, out, _ = cli("verify", "mobilefacenet", "--dir", str(tmp_path))
    assert code == 1 and "store-agent models pull mobilefacenet" in out


def test_dir_and_mirror_default_to_the_config(tmp_path: Path, shared_models: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n\n[models]\n'
                      f'dir = "{tmp_path / "cfg-models"}"\nmirror = "{shared_models}"\n')
    code, out, _ = cli("pull", SMALL, "--config", str(config))
    assert code == 0 and f"mirror {shared_models}" in out
    assert (tmp_path / "cfg-models" / REGISTRY[SMALL].relpath).is_file()
    code, out, _ = cli("list", "--config", str(config), "--json")
    states = {m["name"]: m["state"] for m in json.loads(out)["models"]}
    assert states[SMALL] == "installed" and states["yolox-nano"] == "missing"


def test_the_mirror_env_var_overrides_the_config(tmp_path: Path, shared_models: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'store_id = "s1"\n\n[models]\ndir = "{tmp_path / "m"}"\nmirror = "{tmp_path / "bad"}"\n')
    monkeypatch.setenv(MIRROR_ENV, str(shared_models))
    code, out, _ = cli("pull", SMALL, "--config", str(config))
    assert code == 0 and f"mirror {shared_models}" in out


def test_download_shows_progress_and_verifies(tmp_path: Path, shared_models: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The download branch (no mirror), pointed at a file:// URL so nothing leaves the box."""
    spec = REGISTRY[SMALL]
    monkeypatch.setitem(REGISTRY, SMALL, dataclasses.replace(spec, url=(shared_models / spec.relpath).as_uri()))
    monkeypatch.setattr(registry, "_open_url", REAL_OPEN_URL)
    calls: list[tuple[int, int]] = []
    real_install = registry.install

    def spy(*args, progress=None, **kwargs):
        assert progress is not None, "a download must report progress"
        return real_install(*args, progress=lambda d, t: (calls.append((d, t)), progress(d, t)), **kwargs)

    monkeypatch.setattr("agent.cli.models_cmd.install", spy)
    config = tmp_path / "agent.toml"
    config.write_text(f'store_id = "s1"\n\n[models]\ndir = "{tmp_path / "m"}"\n')
    code, out, _ = cli("pull", SMALL, "--config", str(config))
    assert code == 0 and "installed from upstream" in out
    assert calls[-1] == (spec.size, spec.size)
    assert registry.verify(SMALL, tmp_path / "m").ok



def test_pull_needs_names_or_all_and_refuses_unknown_names(tmp_path: Path) -> None:
    code, _, err = cli("pull", "--dir", str(tmp_path))
    assert code == 2 and "--all" in err
    code, _, err = cli("pull", "yolov99", "--dir", str(tmp_path))
    assert code == 2 and "unknown model(s): yolov99" in err


def test_pull_all_from_the_mirror(tmp_path: Path, shared_models: Path) -> None:
    code, out, _ = cli("pull", "--all", "--mirror", str(shared_models), "--dir", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and len(report["models"]) == len(REGISTRY)
    assert all(registry.verify(n, tmp_path).ok for n in REGISTRY)


def test_info_prints_every_field_and_the_caveat(tmp_path: Path) -> None:
    code, out, _ = cli("info", "mobilefacenet", "--dir", str(tmp_path))
    assert code == 0
    for field in dataclasses.fields(registry.ModelSpec):
        assert any(line.startswith(field.name) for line in out.splitlines()), field.name
    assert "MS-Celeb-1M" in out and REGISTRY["mobilefacenet"].sha256 in out
    assert "install with: store-agent models pull mobilefacenet" in out
    code, out, _ = cli("info", "yolox-nano", "--dir", str(tmp_path), "--json")
    info = json.loads(out)
    assert info["input_size"] == [416, 416] and info["licence_caveat"] == "" and info["state"] == "missing"


def test_list_shows_every_model(tmp_path: Path) -> None:
    code, out, _ = cli("list", "--dir", str(tmp_path))
    assert code == 0
    for name in REGISTRY:
        assert name in out
    assert "(*)" in out  # the caveat marker of mobilefacenet


def test_export_without_the_extra_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import ultralytics -> ImportError
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really weights")
    code, _, err = cli("export", str(weights))
    assert code == 1 and "pip install 'store-edge-agent[ultralytics]'" in err
    code, _, err = cli("export", str(tmp_path / "missing.pt"))
    assert code == 2 and "no such weights file" in err
