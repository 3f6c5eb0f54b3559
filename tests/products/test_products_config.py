"""Which scales get recognition: ``[[products.cameras]]`` tables and ``[[scales]] camera``/``tray_roi``."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from agent.products.runtime import effective_products_config


def test_scales_naming_a_camera_get_a_tray_camera(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[[cameras]]\nname = "deli-cam"\nurl = "/tmp/tray.jpg"\nenabled = false\n'
                    '[[scales]]\nname = "deli-1"\nport = "/dev/null"\nprotocol = "mt-sics"\ncamera = "deli-cam"\n'
                    'tray_roi = [0.1, 0.2, 0.9, 0.8]\n'
                    '[[scales]]\nname = "deli-2"\nport = "/dev/null"\nprotocol = "scp01"\n'
                    '[products]\nhttp_port = 8099\n[[products.cameras]]\nscale = "self-1"\nurl = "rtsp://cam/1"\n')
    cameras = {c.scale: c for c in effective_products_config(load_config(path)).cameras}
    assert set(cameras) == {"deli-1", "self-1"}  # deli-2 names no camera
    assert cameras["deli-1"].url == "/tmp/tray.jpg" and cameras["deli-1"].roi == (0.1, 0.2, 0.9, 0.8)


def test_invalid_products_values_name_the_field(tmp_path: Path) -> None:
    from agent.config import ConfigError

    path = tmp_path / "agent.toml"
    path.write_text('[products]\ntop_k = 0\n[[products.cameras]]\nscale = "s"\nurl = "x.jpg"\nroi = [0.5, 0, 0.4, 1]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "top_k" in str(err.value) and "roi" in str(err.value)


def test_doctor_requires_the_product_embedder_only_when_a_scale_has_a_camera(tmp_path: Path) -> None:
    from agent.doctor import run_doctor

    base = f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n[models]\ndir = "{tmp_path / "models"}"\n'
    path = tmp_path / "agent.toml"
    path.write_text(base)
    models = {r.name: r for r in run_doctor(path, timeout_s=2.0)}["models"]
    assert models.status == "ok"
    path.write_text(base + '[[products.cameras]]\nscale = "deli"\nurl = "/dev/video0"\n')
    models = {r.name: r for r in run_doctor(path, timeout_s=2.0)}["models"]
    assert models.status == "fail" and "mobilenet-v1-embedding" in models.detail
    assert "store-agent models pull mobilenet-v1-embedding" in models.fix


def test_a_scale_camera_that_names_no_camera_is_a_config_error(tmp_path: Path) -> None:
    from agent.config import ConfigError

    path = tmp_path / "agent.toml"
    path.write_text('[[cameras]]\nname = "deli-cam"\nurl = "/tmp/tray.jpg"\n'
                    '[[scales]]\nname = "deli-1"\nport = "/dev/null"\nprotocol = "mt-sics"\ncamera = "deli-cma"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "deli-cma" in str(err.value) and "deli-cam" in str(err.value) and "scales" in str(err.value)
    path.write_text(path.read_text().replace("deli-cma", "deli-cam"))
    assert load_config(path).scales[0].camera == "deli-cam"


def test_a_products_camera_for_an_unknown_scale_is_warned_about(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[[scales]]\nname = "deli-1"\nport = "/dev/null"\nprotocol = "mt-sics"\n'
                    '[[products.cameras]]\nscale = "deli1"\nurl = "rtsp://cam/1"\n')
    with caplog.at_level("WARNING", logger="agent.products.runtime"):
        effective_products_config(load_config(path))
    assert any("'deli1'" in r.getMessage() and "not a [[scales]] entry" in r.getMessage() for r in caplog.records)
    caplog.clear()
    path.write_text(path.read_text().replace('scale = "deli1"', 'scale = "deli-1"'))
    with caplog.at_level("WARNING", logger="agent.products.runtime"):
        effective_products_config(load_config(path))
    assert not caplog.records
