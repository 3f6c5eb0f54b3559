"""``store-agent doctor`` check ``esl_gateways`` against the gateway simulators on loopback: up, down, hanging,
and a URL that is not a gateway."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from agent.doctor import exit_code, run_doctor
from agent.doctor.core import CheckResult
from devices.esl.sim.oepl_ap import OeplApSimulator
from devices.esl.sim.vendor_ap import VendorApSimulator
from tests.agent.test_doctor import write_config


def gateways(*entries: tuple[str, str, str]) -> str:
    return "".join(f'[[esl_gateways]]\nname = "{name}"\nurl = "{url}"\nbackend = "{backend}"\n\n'
                   for name, url, backend in entries)


def esl_check(tmp_path: Path, extra: str, timeout_s: float = 2.0) -> CheckResult:
    results = run_doctor(write_config(tmp_path, extra=extra), timeout_s=timeout_s)
    return next(r for r in results if r.name == "esl_gateways")


def test_no_gateways_configured_is_ok(tmp_path: Path) -> None:
    result = esl_check(tmp_path, "")
    assert (result.status, result.detail) == ("ok", "no shelf-label gateways configured")


def test_simulated_ap_up_then_down(tmp_path: Path) -> None:
    ap = OeplApSimulator(interval_s=1.0).start()
    vendor = VendorApSimulator(interval_s=1.0).start()
    try:
        extra = gateways(("aisle", ap.url, "openepaperlink"), ("chain", vendor.url, "vendor-rest"))
        up = esl_check(tmp_path, extra)
        assert up.status == "ok", up
        assert f"aisle (openepaperlink, {ap.url}): OpenEPaperLink AP sim" in up.detail
        assert f"chain (vendor-rest, {vendor.url}): 0 labels known" in up.detail
        assert up.fix == ""
        ap.stop()
        down = esl_check(tmp_path, extra)
    finally:
        ap.stop()
        vendor.stop()
    assert down.status == "fail"
    assert f"aisle (openepaperlink, {ap.url}): unreachable" in down.detail
    assert "chain (vendor-rest" in down.detail and "unreachable" not in down.detail.splitlines()[1]
    assert f"`curl {ap.url}/sysinfo`" in down.fix and "esl_gateways[0].url" in down.fix
    assert exit_code([down]) == 1


def test_hanging_gateway_fails_within_the_doctor_timeout(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the TCP connection, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        start = time.monotonic()
        result = esl_check(tmp_path, gateways(("aisle", url, "openepaperlink")), timeout_s=0.5)
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert result.status == "fail" and "unreachable" in result.detail
    assert elapsed < 5.0  # the gateway's 5 s request timeout is capped by the doctor's 0.5 s (plus the broker check)


def test_url_that_is_not_an_ap_says_so(tmp_path: Path) -> None:
    vendor = VendorApSimulator(interval_s=1.0).start()  # answers HTTP, but has no /sysinfo
    try:
        result = esl_check(tmp_path, gateways(("aisle", vendor.url, "openepaperlink")))
    finally:
        vendor.stop()
    assert result.status == "fail"
    assert "protocol" in result.detail and "not an OpenEPaperLink AP" in result.detail
    assert "does not point at a openepaperlink gateway" in result.fix
