"""The doctor's checks of the capabilities' needs: local bus broker, label fonts, products projection head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.doctor import CheckResult, run_doctor
from agent.doctor.capability_checks import check_label_fonts, check_local_bus, check_products
from agent.doctor.core import Check
from models.embedders import ProjectionHead
from tests.agent.test_doctor import write_config
from tests.support.mosquitto import MosquittoBroker, free_port

CHECKS = [Check("local_bus", check_local_bus, True), Check("label_fonts", check_label_fonts, True),
          Check("products", check_products, True)]


def run(path: Path, env: dict[str, str] | None = None) -> dict[str, CheckResult]:
    return {r.name: r for r in run_doctor(path, env=env or {}, timeout_s=1.0, checks=CHECKS)}


def test_nothing_configured_is_ok_everywhere(tmp_path: Path) -> None:
    checks = run(write_config(tmp_path))
    assert {n: c.status for n, c in checks.items()} == {"local_bus": "ok", "label_fonts": "ok", "products": "ok"}


def test_local_bus_reachable_and_unreachable(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    ok = run(write_config(tmp_path, extra=f'[local_bus]\nenabled = true\nbroker = "{mosquitto.url}"\n'))
    assert ok["local_bus"].status == "ok" and "store/store-a/local/" in ok["local_bus"].detail
    port = free_port()
    bad = run(write_config(tmp_path, extra=f'[local_bus]\nenabled = true\nbroker = "mqtt://127.0.0.1:{port}"\n'))
    assert bad["local_bus"].status == "fail" and f"127.0.0.1:{port}" in bad["local_bus"].detail
    assert "mosquitto" in bad["local_bus"].fix


GATEWAY = '[[esl_gateways]]\nname = "ap-1"\nurl = "http://127.0.0.1:1"\n'


def test_label_fonts_missing_fail_cjk_only_warns_all_found_ok(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("devices.esl.fonts._SYSTEM_DIRS", (str(tmp_path / "none"),))
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    monkeypatch.setenv("STORE_AGENT_FONT_DIR", str(fonts))
    path = write_config(tmp_path, extra=GATEWAY)
    missing = run(path)["label_fonts"]
    assert missing.status == "fail" and "fonts-dejavu-core" in missing.fix
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf"):
        (fonts / name).write_bytes(b"\0")  # found by name; not loaded
    cjk_only = run(path)["label_fonts"]
    assert cjk_only.status == "warn" and "'cjk' not found" in cjk_only.detail and "fonts-wqy-microhei" in cjk_only.fix
    (fonts / "wqy-microhei.ttc").write_bytes(b"\0")
    found = run(path)["label_fonts"]
    assert found.status == "ok" and "sans=DejaVuSans.ttf" in found.detail and "cjk=wqy-microhei.ttc" in found.detail


def _products(head: str) -> str:
    return (f'[[scales]]\nname = "deli-1"\nport = "/dev/null"\nprotocol = "mt-sics"\n'
            f'[products]\nhead = "{head}"\n[[products.cameras]]\nscale = "deli-1"\nurl = "/dev/video9"\n')


def test_products_head_shipped_custom_and_broken(tmp_path: Path) -> None:
    shipped = run(write_config(tmp_path, extra=_products("grocery_wccn_lda")))["products"]
    assert shipped.status == "ok" and "deli-1" in shipped.detail and "grocery_wccn_lda" in shipped.detail
    custom = tmp_path / "head.npz"
    rng = np.random.default_rng(0)
    ProjectionHead.linear(np.zeros(1024, np.float32), rng.normal(size=(1024, 64))).save(custom)
    assert run(write_config(tmp_path, extra=_products(str(custom))))["products"].status == "ok"
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz")
    bad = run(write_config(tmp_path, extra=_products(str(broken))))["products"]
    assert bad.status == "fail" and "products.head" in bad.fix
    missing = run(write_config(tmp_path, extra=_products(str(tmp_path / "nope.npz"))))["products"]
    assert missing.status == "fail"


def test_a_disabled_scale_port_is_not_checked(tmp_path: Path) -> None:
    scales = ('[[scales]]\nname = "a"\nport = "/dev/nope-a"\nprotocol = "mt-sics"\nenabled = false\n'
              '[[scales]]\nname = "b"\nport = "/dev/nope-b"\nprotocol = "mt-sics"\n')
    checks = {r.name: r for r in run_doctor(write_config(tmp_path, extra=scales), env={}, timeout_s=1.0)}
    serial = checks["serial_ports"]
    assert serial.status == "fail" and "a: disabled" in serial.detail and "/dev/nope-b does not exist" in serial.detail
    assert "/dev/nope-a does not exist" not in serial.detail
