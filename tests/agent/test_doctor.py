"""Tests of agent.doctor against real parts: a mosquitto broker, real files, a pseudo-terminal, real PKI."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.doctor import (
    CheckResult,
    DoctorContext,
    exit_code,
    register_check,
    registered_checks,
    render_text,
    results_to_json,
    run_doctor,
    unregister_check,
)
from agent.store import open_store
from tests.support.certs import TlsFiles
from tests.support.mosquitto import MosquittoBroker, free_port

KEY = base64.b64encode(bytes(range(32))).decode()
BUILTIN = ["config", "data_dir", "disk", "clock", "broker", "serial_ports", "signing_keys", "models", "identity",
           "esl_gateways", "label_fonts", "products", "local_bus"]
NEEDS_CONFIG = [name for name in BUILTIN if name not in ("config", "clock")]


def write_config(tmp_path: Path, broker: str = "mqtt://127.0.0.1:1", *, data_dir: Path | None = None,
                 sync: str = "", tls: str = "", keys: bool = True, extra: str = "") -> Path:
    """A config file in ``tmp_path``; ``sync``/``tls``/``extra`` are TOML lines for those sections."""
    data_dir = data_dir or tmp_path / "data"
    trusted = f'[commands.trusted_keys]\n"ops-1" = "{KEY}"\n' if keys else ""
    text = (
        f'store_id = "store-a"\ndata_dir = "{data_dir}"\n\n'
        f'[sync]\nbroker = "{broker}"\n{textwrap.dedent(sync)}\n'
        f"[sync.tls]\n{textwrap.dedent(tls)}\n"
        f"{trusted}\n{textwrap.dedent(extra)}\n"
    )
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def doctor(path: Path, **kwargs: object) -> dict[str, CheckResult]:
    kwargs.setdefault("timeout_s", 2.0)
    return by_name(run_doctor(path, **kwargs))  # type: ignore[arg-type]


# -- whole run and the config check ----------------------------------------------------------------


def test_healthy_box_with_a_real_broker_has_no_failure(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    results = run_doctor(write_config(tmp_path, mosquitto.url), timeout_s=2.0)
    assert [r.name for r in results] == BUILTIN
    checks = by_name(results)
    assert checks["broker"].status == "ok", checks["broker"]
    assert "CONNACK: Success" in checks["broker"].detail
    assert f"127.0.0.1:{mosquitto.port} reachable" in checks["broker"].detail
    assert all(r.status != "fail" for r in results), render_text(results)
    assert all(r.fix == "" for r in results if r.status == "ok")
    assert exit_code(results) == 0


def test_doctor_uses_its_own_client_id_so_a_running_agent_keeps_its_session(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    doctor(write_config(tmp_path, mosquitto.url))
    mosquitto.wait_for_log(r"store-agent-store-a-doctor")


def test_invalid_config_fails_with_line_number_and_skips_checks_that_need_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('store_id = "store-a"\n\n[sync]\nkeepalive_s = 1\nbroker = "http://x"\n')
    checks = doctor(path)
    config = checks["config"]
    assert config.status == "fail"
    assert f"{path}:4: sync.keepalive_s" in config.detail
    assert f"{path}:5: sync.broker" in config.detail
    assert "2 problems" in config.detail
    assert config.fix == f"run `store-agent config validate {path}` and correct the listed keys"
    for name in NEEDS_CONFIG:
        assert (checks[name].status, checks[name].detail) == ("warn", "skipped, config invalid")
    assert checks["clock"].status in ("ok", "warn")  # does not need the config
    assert exit_code(list(checks.values())) == 1


def test_toml_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('store_id = "store-a"\n[sync\n')
    config = doctor(path)["config"]
    assert config.status == "fail" and f"{path}:2: TOML syntax error" in config.detail


def test_missing_config_file_fails_instead_of_using_defaults(tmp_path: Path) -> None:
    config = doctor(tmp_path / "nope.toml")["config"]
    assert config.status == "fail"
    assert "does not exist" in config.detail and "configs/agent.example.toml" in config.fix


def test_environment_overrides_are_applied(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    path = write_config(tmp_path, "mqtt://127.0.0.1:1")
    checks = doctor(path, env={"STORE_AGENT__SYNC__BROKER": mosquitto.url})
    assert checks["broker"].status == "ok", checks["broker"]


# -- broker ----------------------------------------------------------------------------------------


def test_stopped_broker_fails_with_a_fix(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    path = write_config(tmp_path, mosquitto.url)
    mosquitto.stop()
    broker = doctor(path)["broker"]
    assert broker.status == "fail"
    assert f"cannot reach 127.0.0.1:{mosquitto.port}" in broker.detail
    assert "sync.broker" in broker.fix and "broker is running" in broker.fix


def test_sync_disabled_skips_the_broker(tmp_path: Path) -> None:
    broker = doctor(write_config(tmp_path, sync="enabled = false"))["broker"]
    assert (broker.status, broker.detail) == ("ok", "sync disabled")


def test_anonymous_client_refused_reports_the_connack_reason(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker]
) -> None:
    broker = mosquitto_factory(allow_anonymous=False)
    result = doctor(write_config(tmp_path, broker.url))["broker"]
    assert result.status == "fail"
    assert "broker refused the connection: Not authorized" in result.detail
    assert "sync.username" in result.fix and "password_file" in result.fix and "ACL" in result.fix


def test_username_and_password_file_authenticate(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker]
) -> None:
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd not installed")
    users = tmp_path / "users"
    subprocess.run([passwd, "-c", "-b", str(users), "store-a", "s3cret"], check=True, capture_output=True)
    broker = mosquitto_factory(allow_anonymous=False, extra_config=[f"password_file {users}"])
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n")
    (creds / "mqtt-password").chmod(0o600)
    right = write_config(tmp_path, broker.url, sync='username = "store-a"\npassword_file = "mqtt-password"')
    # a relative password_file is looked up in $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
    ok = doctor(right, env={"CREDENTIALS_DIRECTORY": str(creds)})["broker"]
    assert ok.status == "ok", ok
    assert "as 'store-a'" in ok.detail
    (creds / "mqtt-password").write_text("wrong\n")
    bad = doctor(right, env={"CREDENTIALS_DIRECTORY": str(creds)})["broker"]
    # mosquitto 2.0 answers a wrong password with "Not authorized" (0x87), not 0x86
    assert bad.status == "fail" and "broker refused the connection: Not authorized" in bad.detail
    assert "sync.password_file" in bad.fix


def test_missing_password_file_fails_before_connecting(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    path = write_config(tmp_path, mosquitto.url, sync=f'username = "u"\npassword_file = "{tmp_path}/absent"')
    broker = doctor(path)["broker"]
    assert broker.status == "fail"
    assert "cannot read the MQTT password" in broker.detail and "does not exist" in broker.detail


def test_plain_mqtt_to_a_port_that_is_not_a_broker_gets_no_connack(tmp_path: Path) -> None:
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    try:
        broker = doctor(write_config(tmp_path, f"mqtt://127.0.0.1:{port}"), timeout_s=0.5)["broker"]
    finally:
        for conn in accepted:
            conn.close()
        server.close()
    assert broker.status == "fail" and "no CONNACK within 0.5 s" in broker.detail
    assert "mqtts://" in broker.fix


# -- broker over TLS -------------------------------------------------------------------------------


def tls_lines(ca: Path, cert: Path | None = None, key: Path | None = None) -> str:
    lines = f'ca_file = "{ca}"\n'
    if cert and key:
        lines += f'cert_file = "{cert}"\nkey_file = "{key}"\n'
    return lines


def test_mutual_tls_connects_and_warns_about_the_certificate_expiry(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], pki: TlsFiles
) -> None:
    broker = mosquitto_factory(tls=pki, require_certificate=True, use_identity_as_username=True)
    cert, key = pki.client("store-a")
    result = doctor(write_config(tmp_path, broker.url, tls=tls_lines(pki.ca_file, cert, key)))["broker"]
    # the test PKI's certificates are valid for 30 days: inside the 30-day warning window
    assert result.status == "warn", result
    assert "client certificate expires on" in result.detail
    assert "TLS handshake ok" in result.detail and "CONNACK: Success" in result.detail
    assert "renew" in result.fix


def test_broker_certificate_from_an_unknown_ca_is_reported_clearly(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], pki: TlsFiles
) -> None:
    broker = mosquitto_factory(tls=pki)
    assert pki.wrong_ca_file is not None
    result = doctor(write_config(tmp_path, broker.url, tls=tls_lines(pki.wrong_ca_file)))["broker"]
    assert result.status == "fail"
    # OpenSSL's words depend on the chain the broker sends ("self-signed certificate in certificate chain")
    assert "broker certificate verification failed: " in result.detail
    assert "sync.tls.ca_file" in result.fix


def test_broker_requiring_a_client_certificate_refuses_a_store_without_one(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], pki: TlsFiles
) -> None:
    broker = mosquitto_factory(tls=pki, require_certificate=True, use_identity_as_username=True)
    result = doctor(write_config(tmp_path, broker.url, tls=tls_lines(pki.ca_file)))["broker"]
    assert result.status == "fail", result
    assert "TLS handshake ok" in result.detail  # TLS 1.3: the refusal comes after the handshake
    assert "closed the connection before CONNACK" in result.detail
    assert "requires a client certificate" in result.fix and "sync.tls.cert_file" in result.fix


def test_broker_refuses_a_client_certificate_from_another_ca(
    tmp_path: Path, mosquitto_factory: Callable[..., MosquittoBroker], pki: TlsFiles
) -> None:
    broker = mosquitto_factory(tls=pki, require_certificate=True, use_identity_as_username=True)
    assert pki.untrusted_client is not None
    cert, key = pki.untrusted_client
    result = doctor(write_config(tmp_path, broker.url, tls=tls_lines(pki.ca_file, cert, key)))["broker"]
    assert result.status == "fail", result
    assert "refused the client certificate" in result.fix


def test_expired_client_certificate_fails_without_connecting(tmp_path: Path, pki: TlsFiles) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "store-a")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=60))
            .not_valid_after(now - dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "old.crt", tmp_path / "old.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    path = write_config(tmp_path, f"mqtts://127.0.0.1:{free_port()}", tls=tls_lines(pki.ca_file, cert_file, key_file))
    result = doctor(path)["broker"]
    assert result.status == "fail"
    assert result.detail.startswith("client certificate expired on")
    assert "renew" in result.fix


# -- data_dir, disk --------------------------------------------------------------------------------


def test_data_dir_that_cannot_be_created_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    checks = doctor(write_config(tmp_path, data_dir=blocker / "sub"))
    assert checks["data_dir"].status == "fail"
    assert f"{blocker} is not a directory" in checks["data_dir"].detail
    assert "data_dir" in checks["data_dir"].fix
    assert checks["disk"].status in ("ok", "warn")  # measured on the nearest existing directory


def test_data_dir_not_created_yet_is_ok_and_is_not_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "later" / "data"
    result = doctor(write_config(tmp_path, data_dir=data_dir))["data_dir"]
    assert result.status == "ok" and "does not exist yet" in result.detail
    assert not data_dir.exists()


def test_existing_database_passes_the_integrity_check(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    open_store(data_dir)
    result = doctor(write_config(tmp_path, data_dir=data_dir))["data_dir"]
    assert result.status == "ok" and "passes the integrity check" in result.detail


def test_empty_data_dir_is_writable_and_the_doctor_does_not_create_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = doctor(write_config(tmp_path, data_dir=data_dir))["data_dir"]
    assert result.status == "ok" and "not created yet" in result.detail
    assert list(data_dir.iterdir()) == []


def test_damaged_database_fails(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "agent.db").write_bytes(b"this is not an SQLite database" * 100)
    result = doctor(write_config(tmp_path, data_dir=data_dir))["data_dir"]
    assert result.status == "fail" and "does not open" in result.detail
    assert ".recover" in result.fix


def test_disk_thresholds(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    huge = write_config(tmp_path, extra=f"[health]\ndisk_min_free_mb = {free_mb * 10:.0f}\n")
    assert doctor(huge)["disk"].status == "fail"
    near = write_config(tmp_path, extra=f"[health]\ndisk_min_free_mb = {free_mb / 1.5:.0f}\n")
    disk = doctor(near)["disk"]
    assert disk.status == "warn" and "twice the minimum" in disk.detail
    assert "health.disk_min_free_mb" in disk.fix
    zero = write_config(tmp_path, extra="[health]\ndisk_min_free_mb = 0\n")
    assert doctor(zero)["disk"].status == "ok"


# -- clock -----------------------------------------------------------------------------------------


def fake_tool(directory: Path, name: str, script: str) -> None:
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + script + "\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def test_clock_without_timedatectl_is_ok_with_unknown_ntp(tmp_path: Path) -> None:
    (tmp_path / "empty-bin").mkdir()
    clock = doctor(write_config(tmp_path), env={"PATH": str(tmp_path / "empty-bin")})["clock"]
    assert clock.status == "ok"
    assert clock.detail.endswith("NTP status unknown (timedatectl not available)")


def test_clock_not_ntp_synchronised_warns(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "timedatectl", 'echo no')
    clock = doctor(write_config(tmp_path), env={"PATH": str(tmp_path / "bin")})["clock"]
    assert clock.status == "warn"
    assert clock.fix == "enable NTP: timedatectl set-ntp true"


def test_clock_ntp_synchronised_is_ok(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "timedatectl", 'echo yes')
    clock = doctor(write_config(tmp_path), env={"PATH": str(tmp_path / "bin")})["clock"]
    assert clock.status == "ok" and clock.detail.endswith("NTP-synchronised")


def test_clock_when_timedatectl_cannot_talk_to_systemd(tmp_path: Path) -> None:
    fake_tool(tmp_path / "bin", "timedatectl", 'echo "Failed to connect to bus: Host is down" >&2; exit 1')
    clock = doctor(write_config(tmp_path), env={"PATH": str(tmp_path / "bin")})["clock"]
    assert clock.status == "ok" and "NTP status unknown (timedatectl: Failed to connect to bus" in clock.detail


# -- serial ports, keys, models --------------------------------------------------------------------


def scale(port: str, name: str = "deli-1") -> str:
    return f'[[scales]]\nname = "{name}"\nport = "{port}"\nprotocol = "toledo8217"\n'


def test_missing_scale_port_fails(tmp_path: Path) -> None:
    result = doctor(write_config(tmp_path, extra=scale("/dev/ttyUSB-does-not-exist")))["serial_ports"]
    assert result.status == "fail"
    assert "deli-1: /dev/ttyUSB-does-not-exist does not exist" in result.detail
    assert "scales[0].port" in result.fix


def test_pseudo_terminal_as_scale_port_is_ok(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    try:
        result = doctor(write_config(tmp_path, extra=scale(tty)))["serial_ports"]
    finally:
        os.close(master)
        os.close(slave)
    assert (result.status, result.detail) == ("ok", f"deli-1: {tty} ok")


def test_regular_file_as_scale_port_fails(tmp_path: Path) -> None:
    fake = tmp_path / "ttyUSB0"
    fake.write_text("")
    result = doctor(write_config(tmp_path, extra=scale(str(fake))))["serial_ports"]
    assert result.status == "fail" and "not a character device" in result.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root may open any device")
def test_unreadable_scale_port_mentions_dialout(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        os.fchmod(slave, 0)
        result = doctor(write_config(tmp_path, extra=scale(os.ttyname(slave))))["serial_ports"]
    finally:
        os.close(master)
        os.close(slave)
    assert result.status == "fail" and "dialout" in result.fix


def test_no_trusted_keys_warns(tmp_path: Path) -> None:
    result = doctor(write_config(tmp_path, keys=False))["signing_keys"]
    assert result.status == "warn"
    assert "refuse every cloud command" in result.detail
    assert "commands.trusted_keys" in result.fix and "trusted_keys_dir" in result.fix


def test_trusted_keys_are_listed(tmp_path: Path) -> None:
    result = doctor(write_config(tmp_path))["signing_keys"]
    assert (result.status, result.detail) == ("ok", "1 trusted command key(s): ops-1")


MODELS = '[models]\ndir = "{dir}"\n'


def test_models_not_installed_are_fine_unless_a_camera_needs_them(tmp_path: Path) -> None:
    models = MODELS.format(dir=tmp_path / "models")
    result = doctor(write_config(tmp_path, extra=models))["models"]
    assert result.status == "ok" and result.detail.startswith("0 verified in ")  # a box needs only what it uses
    camera = '[[cameras]]\nname = "door"\nurl = "/dev/video0"\n'
    result = doctor(write_config(tmp_path, extra=models + camera))["models"]
    assert result.status == "fail" and "yolox-nano" in result.detail
    assert "store-agent models pull yolox-nano" in result.fix


def test_damaged_installed_model_fails(tmp_path: Path) -> None:
    registry = pytest.importorskip("models.registry")
    name, spec = next(iter(registry.REGISTRY.items()))
    target = tmp_path / "models" / spec.relpath
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the model")
    result = doctor(write_config(tmp_path, extra=MODELS.format(dir=tmp_path / "models")))["models"]
    assert result.status == "fail", result
    assert "1 of " in result.detail and f"\n{name}: " in result.detail
    assert name in result.fix


# -- registry, rendering, exit code ----------------------------------------------------------------


def test_registered_check_runs_and_a_crashing_check_is_reported_not_raised(tmp_path: Path) -> None:
    def check_cameras(ctx: DoctorContext) -> CheckResult:
        return CheckResult("cameras", "ok", f"{len(ctx.cfg.cameras)} cameras")

    def check_broken(ctx: DoctorContext) -> CheckResult:
        raise RuntimeError("boom")

    register_check(check_cameras)
    register_check(check_broken, needs_config=False)
    try:
        results = run_doctor(write_config(tmp_path), timeout_s=1.0)
        invalid = tmp_path / "bad.toml"
        invalid.write_text("store_id = 'BAD ID'\n")
        skipped = by_name(run_doctor(invalid, timeout_s=1.0))
    finally:
        unregister_check("cameras")
        unregister_check("broken")
    checks = by_name(results)
    assert [r.name for r in results][-2:] == ["cameras", "broken"]
    assert checks["cameras"].detail == "0 cameras"
    assert checks["broken"].status == "fail" and "RuntimeError: boom" in checks["broken"].detail
    assert skipped["cameras"].detail == "skipped, config invalid"
    assert [c.name for c in registered_checks()] == BUILTIN


def test_exit_code_is_one_only_when_a_check_failed() -> None:
    ok, warn, fail = (CheckResult("a", "ok", ""), CheckResult("b", "warn", "", "x"), CheckResult("c", "fail", "", "y"))
    assert exit_code([]) == 0
    assert exit_code([ok, warn]) == 0
    assert exit_code([ok, warn, fail]) == 1
    assert results_to_json([ok, warn])["status"] == "warn"
    assert results_to_json([ok, fail]) == {"status": "fail", "exit_code": 1,
                                           "checks": [ok.to_dict(), fail.to_dict()]}


def test_check_result_rejects_an_unknown_status() -> None:
    with pytest.raises(ValueError):
        CheckResult("a", "bad", "")  # type: ignore[arg-type]


def test_render_text_names_every_check_with_its_fix(tmp_path: Path) -> None:
    results = run_doctor(write_config(tmp_path, keys=False, extra=scale("/dev/nope")), timeout_s=1.0)
    text = render_text(results)
    for name in BUILTIN:
        assert f" {name}: " in text
    assert "✘ serial_ports: deli-1: /dev/nope does not exist" in text
    assert "! signing_keys: no trusted command keys" in text
    assert "✔ config: " in text
    assert "  fix: add commands.trusted_keys" in text
    assert text.splitlines()[-1].startswith("overall: FAIL (")


def test_render_text_indents_multi_line_details() -> None:
    text = render_text([CheckResult("config", "fail", "two problems\nline 1\nline 2", "edit it")])
    assert text.splitlines()[:4] == ["✘ config: two problems", "    line 1", "    line 2", "  fix: edit it"]
    assert text.splitlines()[-1] == "overall: FAIL (0 ok, 0 warnings, 1 failure)"
