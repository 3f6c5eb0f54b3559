"""models.registry: the catalogue matches the verified manifest; installs are sha256-checked and atomic; lookups
and verification say exactly what is wrong and how to fix it. Installs come from ../shared/models (a mirror) or a
file:// URL — never from the network."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest

from models import registry
from models.registry import (
    MIRROR_ENV,
    REGISTRY,
    ModelIntegrityError,
    ModelNotInstalled,
    ModelSourceError,
    UnknownModel,
    install,
    install_state,
    model_path,
    verify,
    verify_installed,
)

SMALL = "imagenet-labels"        # 21 kB: cheap to copy and corrupt
DETECTOR = "light-person"
REAL_OPEN_URL = registry._open_url


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would reach the upstream URLs, and ignore a mirror set in the caller's environment."""
    def refuse(spec):
        raise AssertionError(f"test tried to download {spec.url}")

    monkeypatch.setattr(registry, "_open_url", refuse)
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def _manifest_rows(shared_models: Path) -> dict[str, tuple[int, str, str]]:
    """relpath -> (bytes, sha256, source) from the manifest's table."""
    rows = {}
    for line in (shared_models / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"[0-9a-f]{64}", cells[2]):
            rows[cells[0]] = (int(cells[1]), cells[2], cells[3])
    return rows


def test_catalogue_matches_every_file_of_the_manifest(shared_models: Path) -> None:
    rows = _manifest_rows(shared_models)
    manifest_text = (shared_models / "MANIFEST.md").read_text()
    assert len(rows) == 11 and len(REGISTRY) == 11
    assert {s.relpath for s in REGISTRY.values()} == set(rows)
    for spec in REGISTRY.values():
        size, sha, source = rows[spec.relpath]
        assert (spec.size, spec.sha256) == (size, sha), spec.name
        repo, rest = spec.source.split("@", 1)
        commit, path = rest.split(":", 1)
        assert source.replace(" ", "") == spec.source, spec.name
        assert spec.url == f"https://github.com/{repo}/raw/{commit}/{path}"
        assert spec.url in manifest_text, spec.name
        assert (shared_models / spec.relpath).stat().st_size == spec.size


def test_only_mobilefacenet_carries_the_ms_celeb_caveat() -> None:
    caveats = {n for n, s in REGISTRY.items() if s.licence_caveat}
    assert caveats == {"mobilefacenet"}
    text = REGISTRY["mobilefacenet"].licence_caveat
    assert "MS-Celeb-1M" in text and "withdrew" in text and "commercial" in text.lower()


def test_runtime_follows_the_file_type() -> None:
    for spec in REGISTRY.values():
        expected = {".onnx": "onnx", ".tflite": "tflite", ".txt": "none"}[Path(spec.relpath).suffix]
        assert spec.runtime == expected, spec.name


def test_install_from_the_mirror_verifies_and_reports_progress(tmp_path: Path, shared_models: Path) -> None:
    calls: list[tuple[int, int]] = []
    path = install(DETECTOR, tmp_path, mirror=shared_models, progress=lambda d, t: calls.append((d, t)))
    spec = REGISTRY[DETECTOR]
    assert path == tmp_path / spec.relpath
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert calls[0] == (0, spec.size) and calls[-1] == (spec.size, spec.size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert path.stat().st_mode & 0o777 == 0o644
    assert verify(DETECTOR, tmp_path).ok
    assert list(path.parent.glob(".*.part")) == []


def test_the_mirror_can_come_from_the_environment(tmp_path: Path, shared_models: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIRROR_ENV, str(shared_models))
    path = install(SMALL, tmp_path)
    assert path.is_file() and verify(SMALL, tmp_path).ok


def test_download_path_streams_a_url_and_verifies(tmp_path: Path, shared_models: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL code path, fed a file:// URL so nothing leaves the box."""
    monkeypatch.setattr(registry, "_open_url", REAL_OPEN_URL)  # the URL below is local
    spec = REGISTRY[SMALL]
    local = dataclasses.replace(spec, url=(shared_models / spec.relpath).resolve().as_uri())
    calls: list[int] = []
    path = install(local, tmp_path, progress=lambda d, t: calls.append(d))
    assert path.read_bytes() == (shared_models / spec.relpath).read_bytes()
    assert calls[-1] == spec.size
    bad = dataclasses.replace(spec, url=(tmp_path / "absent.txt").as_uri())
    with pytest.raises(ModelSourceError, match="--mirror"):
        install(bad, tmp_path / "other")


def _corrupt_mirror(tmp_path: Path, shared_models: Path, name: str) -> Path:
    """A mirror holding ``name`` with one byte flipped (same size)."""
    spec = REGISTRY[name]
    mirror = tmp_path / "bad-mirror"
    (mirror / spec.relpath).parent.mkdir(parents=True)
    data = bytearray((shared_models / spec.relpath).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (mirror / spec.relpath).write_bytes(bytes(data))
    return mirror


def test_a_sha_mismatch_installs_nothing_and_names_both_hashes(tmp_path: Path, shared_models: Path) -> None:
    mirror = _corrupt_mirror(tmp_path, shared_models, SMALL)
    model_dir = tmp_path / "models"
    spec = REGISTRY[SMALL]
    with pytest.raises(ModelIntegrityError) as info:
        install(SMALL, model_dir, mirror=mirror)
    actual = hashlib.sha256((mirror / spec.relpath).read_bytes()).hexdigest()
    assert info.value.expected == spec.sha256 and info.value.actual == actual
    assert spec.sha256 in str(info.value) and actual in str(info.value)
    target_dir = (model_dir / spec.relpath).parent
    assert not (model_dir / spec.relpath).exists()
    assert list(target_dir.iterdir()) == []  # no temp file left behind


def test_a_failed_reinstall_keeps_the_good_file(tmp_path: Path, shared_models: Path) -> None:
    model_dir = tmp_path / "models"
    good = install(SMALL, model_dir, mirror=shared_models)
    before = good.read_bytes()
    with pytest.raises(ModelIntegrityError):
        install(SMALL, model_dir, mirror=_corrupt_mirror(tmp_path, shared_models, SMALL), force=True)
    assert good.read_bytes() == before and verify(SMALL, model_dir).ok


def test_a_longer_source_is_cut_off_at_the_expected_size(tmp_path: Path, shared_models: Path) -> None:
    spec = REGISTRY[SMALL]
    mirror = tmp_path / "mirror"
    (mirror / spec.relpath).parent.mkdir(parents=True)
    (mirror / spec.relpath).write_bytes((shared_models / spec.relpath).read_bytes() + b"extra")
    with pytest.raises(ModelIntegrityError, match="more than the expected"):
        install(SMALL, tmp_path / "models", mirror=mirror)
    assert not (tmp_path / "models" / spec.relpath).exists()


def test_a_mirror_without_the_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="mirror"):
        install(SMALL, tmp_path / "models", mirror=tmp_path / "empty")


def test_an_installed_file_that_verifies_is_not_copied_again(tmp_path: Path, shared_models: Path) -> None:
    path = install(SMALL, tmp_path, mirror=shared_models)
    stamp = path.stat().st_mtime_ns
    path2 = install(SMALL, tmp_path, mirror=tmp_path / "no-such-mirror")  # would fail if it tried to copy
    assert path2 == path and path.stat().st_mtime_ns == stamp


def test_model_path_gives_the_exact_pull_hint(tmp_path: Path, shared_models: Path) -> None:
    with pytest.raises(ModelNotInstalled) as info:
        model_path("yolox-nano", tmp_path)
    assert str(info.value).endswith("run `store-agent models pull yolox-nano`")
    install(SMALL, tmp_path, mirror=shared_models)
    assert model_path(SMALL, tmp_path) == tmp_path / REGISTRY[SMALL].relpath
    with pytest.raises(UnknownModel, match="yolox-nano"):
        model_path("yolov99", tmp_path)


def test_a_truncated_file_is_caught_by_lookup_and_verify(tmp_path: Path, shared_models: Path) -> None:
    path = install(SMALL, tmp_path, mirror=shared_models)
    path.write_bytes(path.read_bytes()[:-10])
    assert install_state(SMALL, tmp_path) == "wrong size"
    with pytest.raises(ModelIntegrityError, match="pull imagenet-labels"):
        model_path(SMALL, tmp_path)
    result = verify(SMALL, tmp_path)
    assert not result.ok and "size mismatch" in result.detail


def test_verify_names_expected_and_actual_sha(tmp_path: Path, shared_models: Path) -> None:
    path = install(SMALL, tmp_path, mirror=shared_models)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    result = verify(SMALL, tmp_path)
    assert not result.ok and result.installed
    assert REGISTRY[SMALL].sha256 in result.detail
    assert hashlib.sha256(bytes(data)).hexdigest() in result.detail
    assert "store-agent models pull imagenet-labels" in result.detail


def test_verify_installed_passes_missing_models_and_fails_corrupt_or_required_ones(
        tmp_path: Path, shared_models: Path) -> None:
    assert all(ok and detail == "not installed" for _, ok, detail in verify_installed(tmp_path))
    install(SMALL, tmp_path, mirror=shared_models)
    install(DETECTOR, tmp_path, mirror=shared_models)
    entries = {name: (ok, detail) for name, ok, detail in verify_installed(tmp_path)}
    assert set(entries) == set(REGISTRY)
    assert entries[SMALL][0] and entries[SMALL][1].startswith("ok")
    assert entries["yolox-nano"] == (True, "not installed")
    required = {n: ok for n, ok, _ in verify_installed(tmp_path, required=["yolox-nano", DETECTOR])}
    assert required["yolox-nano"] is False and required[DETECTOR] is True
    (tmp_path / REGISTRY[DETECTOR].relpath).write_bytes(b"not a model")
    entries = {name: ok for name, ok, _ in verify_installed(tmp_path)}
    assert entries[DETECTOR] is False and entries[SMALL] is True
