"""Tests of agent.config: schema, precedence, error reporting, secrets and example configs."""

from __future__ import annotations

import base64
import os
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.config import (
    AgentConfig,
    CommandsConfig,
    ConfigError,
    ConfigProblem,
    SyncConfig,
    TlsConfig,
    config_schema,
    load_config,
    masked_dump,
    read_secret,
    validate_file,
)
from agent.config import loader as loader_module

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(1, 33))).decode()


def write_toml(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(path: Path | None, **kwargs: Any) -> dict[str, ConfigProblem]:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return {problem.path: problem for problem in info.value.problems}


# -- defaults and schema ---------------------------------------------------------------


def test_defaults_alone_form_a_valid_config() -> None:
    cfg = load_config(None, env={})
    assert cfg == AgentConfig()
    assert cfg.store_id == "demo-store"
    assert cfg.data_dir == Path("/var/lib/store-agent")
    assert cfg.db_path == Path("/var/lib/store-agent/agent.db")
    assert cfg.sync.broker == "mqtt://localhost:1883"
    assert cfg.sync.stream_priorities["cmd-result"] == 0
    assert cfg.cameras == [] and cfg.scales == [] and cfg.esl_gateways == []
    assert cfg.mqtt_client_id == "store-agent-demo-store"


def test_schema_gives_every_property_a_title_and_description() -> None:
    schema = config_schema()
    models = {"AgentConfig": schema, **schema["$defs"]}
    assert "SyncConfig" in models and "TlsConfig" in models
    assert {"CameraConfig", "ZoneConfig", "ScaleConfig", "EslGatewayConfig", "FridgeGroupConfig", "IdentityConfig",
            "FaceQualityConfig", "ProductsConfig", "ScaleCameraConfig", "LocalBusConfig", "VisionConfig",
            "ModelsConfig"} <= set(models)
    missing = [
        f"{model}.{name}"
        for model, definition in models.items()
        for name, prop in definition.get("properties", {}).items()
        if not prop.get("title") or not prop.get("description")
    ]
    assert missing == []
    sync_props = models["SyncConfig"]["properties"]
    assert set(sync_props) == set(SyncConfig.model_fields)
    assert sync_props["keepalive_s"]["minimum"] == 5 and sync_props["keepalive_s"]["maximum"] == 600


# -- store_id --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["Store-1", "store_1", "store 1", "-store", ""])
def test_store_id_rejects_uppercase_underscore_and_spaces_naming_allowed_characters(bad: str) -> None:
    problems = problems_of(None, overlay={"store_id": bad})
    message = problems["store_id"].message
    assert "a-z" in message and "0-9" in message and "'-'" in message


def test_store_id_accepts_lowercase_digits_and_dashes() -> None:
    assert load_config(None, env={}, overlay={"store_id": "store-0001"}).store_id == "store-0001"


# -- precedence ------------------------------------------------------------------------


def test_env_beats_overlay_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[sync]\nkeepalive_s = 20\nmax_inflight = 7\n")
    cfg = load_config(
        path,
        env={"STORE_AGENT__SYNC__KEEPALIVE_S": "45"},
        overlay={"sync": {"keepalive_s": 33}},
    )
    assert cfg.sync.keepalive_s == 45
    assert cfg.sync.max_inflight == 7  # untouched file value survives the nested env merge


def test_overlay_beats_file_and_merges_deeply(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[sync]\nkeepalive_s = 20\nmax_inflight = 7\n[health]\ninterval_s = 3\n")
    cfg = load_config(path, env={}, overlay={"sync": {"keepalive_s": 33}})
    assert cfg.sync.keepalive_s == 33
    assert cfg.sync.max_inflight == 7
    assert cfg.health.interval_s == 3


def test_load_config_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORE_AGENT__SYNC__BROKER", "mqtts://broker.test")
    monkeypatch.setenv("STORE_AGENT__LOG_LEVEL", "debug")
    cfg = load_config(None)
    assert cfg.sync.broker == "mqtts://broker.test"
    assert cfg.log_level == "DEBUG"


def test_validate_file_ignores_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, 'store_id = "s1"\n')
    monkeypatch.setenv("STORE_AGENT__SYNC__KEEPALIVE_S", "1")  # invalid, but must not matter
    assert validate_file(path) == []


# -- error reporting -------------------------------------------------------------------


def test_all_errors_are_reported_with_field_paths_and_toml_lines(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        store_id = "s1"                                  # line 1

        [sync]                                           # line 3
        keepalive_s = 2                                  # line 4
        stream_priorities = { "events" = 12 }            # line 5

        [sync.tls]                                       # line 7
        cert_file = "/etc/store-agent/tls/client.pem"    # line 8

        [[cameras]]                                      # line 10
        name = "front"
        url = "rtsp://cam-1/stream"

        [[cameras]]                                      # line 14
        name = "Back Door"                               # line 15
        enabled = "maybe"                                # line 16

        [health]                                         # line 18
        interval_s = 0                                   # line 19
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    found = {p.path: p.line for p in info.value.problems}
    assert found == {
        "sync.keepalive_s": 4,
        "sync.stream_priorities.events": 5,
        "sync.tls.key_file": 7,  # missing key: reported at its table header
        "cameras[1].name": 15,
        "cameras[1].url": 14,  # missing key inside the 2nd [[cameras]] entry
        "cameras[1].enabled": 16,
        "health.interval_s": 19,
    }
    text = str(info.value)
    assert f"{path}:4: sync.keepalive_s: Input should be greater than or equal to 5" in text.splitlines()


def test_unknown_keys_are_errors_at_their_line(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[sync]\nkeepalive_s = 10\nbrokr = 'mqtt://x'\n")
    problems = problems_of(path)
    assert problems["sync.brokr"].line == 3
    assert "unknown key" in problems["sync.brokr"].message


def test_errors_from_env_and_overlay_say_where_they_came_from(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[sync]\nkeepalive_s = 10\n[health]\ninterval_s = 5\n")
    problems = problems_of(
        path,
        env={"STORE_AGENT__SYNC__KEEPALIVE_S": "1"},
        overlay={"health": {"interval_s": -1}},
    )
    assert problems["sync.keepalive_s"].line is None
    assert "STORE_AGENT__SYNC__KEEPALIVE_S" in problems["sync.keepalive_s"].message
    assert problems["health.interval_s"].line is None
    assert "overlay" in problems["health.interval_s"].message


def test_toml_syntax_error_reports_its_line(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'store_id = "s1"\n[sync]\nkeepalive_s = = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.line == 3
    assert "syntax" in problem.message
    assert str(info.value).startswith(f"{path}:3: ")


def test_explicitly_given_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing, env={})
    assert validate_file(missing)[0].message.endswith("does not exist")


def test_missing_default_path_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "etc" / "agent.toml"
    monkeypatch.setattr(loader_module, "DEFAULT_CONFIG_PATH", default)
    assert load_config(default, env={}) == AgentConfig()


# -- secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ('[sync]\nusername = "u"\npassword = "x"\n', "sync.password", 3),
        ('store_id = "s1"\ntoken = "abc"\n', "token", 2),
        ('[[cameras]]\nname = "a"\nurl = "rtsp://a"\nsecret = "s"\n', "cameras[0].secret", 4),
    ],
)
def test_secrets_written_in_toml_are_refused(tmp_path: Path, text: str, path: str, line: int) -> None:
    problems = problems_of(write_toml(tmp_path, text))
    assert list(problems) == [path]  # no duplicate "unknown key" error for the same key
    assert "secrets must not be written in the config file" in problems[path].message
    assert f"{path.rsplit('.', 1)[-1]}_file" in problems[path].message
    assert problems[path].line == line


def test_read_secret_resolves_relative_paths_in_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.chdir(tmp_path)  # the same name in the cwd must not be used
    (tmp_path / "mqtt-password").write_text("wrong\n", encoding="utf-8")
    assert read_secret(Path("mqtt-password")) == "s3cret"


def test_read_secret_without_credentials_directory_uses_cwd_and_reports_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pw").write_text("hunter2\r\n", encoding="utf-8")
    assert read_secret(Path("pw")) == "hunter2"
    with pytest.raises(ConfigError, match="does not exist"):
        read_secret(tmp_path / "absent")


def test_masked_dump_hides_password_file_and_tls_key_file() -> None:
    cfg = load_config(
        None,
        env={},
        overlay={
            "sync": {
                "broker": "mqtts://mqtt.example.com",
                "username": "store-0001",
                "password_file": "/etc/store-agent/mqtt-password",
                "tls": {"cert_file": "/tls/client.pem", "key_file": "/tls/client.key"},
            },
            "commands": {"trusted_keys": {"ops": KEY_A}},
            "cameras": [{"name": "door", "url": "rtsp://admin:pa55@10.0.0.2:554/s"}],
        },
    )
    dumped = masked_dump(cfg)
    assert dumped["sync"]["password_file"] == "***(set)"
    assert dumped["sync"]["tls"]["key_file"] == "***(set)"
    assert dumped["sync"]["tls"]["cert_file"] == "/tls/client.pem"
    assert dumped["sync"]["username"] == "store-0001"
    assert dumped["commands"]["trusted_keys"] == {"ops": KEY_A}  # public keys stay visible
    assert "pa55" not in dumped["cameras"][0]["url"]
    assert dumped["data_dir"] == "/var/lib/store-agent"  # JSON-able
    assert masked_dump(AgentConfig())["sync"]["password_file"] is None  # unset stays unset


# -- sync ------------------------------------------------------------------------------


def test_priority_for_uses_longest_prefix_on_whole_segments() -> None:
    sync = SyncConfig()
    assert sync.priority_for("events") == 1
    assert sync.priority_for("events/entry/cam-1") == 1
    assert sync.priority_for("events/gap") == 0
    assert sync.priority_for("events/gap/cam-1") == 0
    assert sync.priority_for("telemetry/aggregates/hourly") == 0
    assert sync.priority_for("telemetry/fps") == 2
    assert sync.priority_for("eventsx") == 5  # not a segment prefix
    assert sync.priority_for("unknown/stream") == 5


def test_configured_priorities_merge_over_defaults_and_are_bounded() -> None:
    sync = SyncConfig(stream_priorities={"events/pos": 3})
    assert sync.priority_for("events/pos/till-1") == 3
    assert sync.priority_for("cmd-result") == 0
    with pytest.raises(ValueError, match="less than or equal to 9"):
        SyncConfig(stream_priorities={"events": 10})


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://localhost", "localhost", 1883, False),
        ("mqtts://mqtt.example.com", "mqtt.example.com", 8883, True),
        ("mqtts://10.1.2.3:9000", "10.1.2.3", 9000, True),
        ("mqtt://[::1]:1884", "::1", 1884, False),
    ],
)
def test_broker_url_properties(url: str, host: str, port: int, tls: bool) -> None:
    sync = SyncConfig(broker=url)
    assert (sync.host, sync.port, sync.use_tls) == (host, port, tls)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://mqtt.example.com", "scheme must be mqtt:// or mqtts://"),
        ("tcp://mqtt.example.com:1883", "scheme must be mqtt:// or mqtts://"),
        ("mqtt://", "host is required"),
        ("mqtt://host:notaport", "port"),
        ("mqtts://user:pw@host", "credentials must not be written"),
    ],
)
def test_broker_url_is_validated(url: str, fragment: str) -> None:
    problems = problems_of(None, overlay={"sync": {"broker": url}})
    assert fragment in problems["sync.broker"].message


def test_client_certificate_without_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="key_file"):
        TlsConfig(cert_file=Path("/tls/client.pem"))
    with pytest.raises(ValueError, match="cert_file"):
        TlsConfig(key_file=Path("/tls/client.key"))
    assert TlsConfig(cert_file=Path("/c.pem"), key_file=Path("/c.key")).key_file == Path("/c.key")


def test_tls_settings_require_mqtts_broker() -> None:
    problems = problems_of(None, overlay={"sync": {"broker": "mqtt://h", "tls": {"ca_file": "/ca.pem"}}})
    assert "mqtts://" in problems["sync.tls"].message


def test_reconnect_max_must_not_be_below_min() -> None:
    problems = problems_of(None, overlay={"sync": {"reconnect_min_s": 10, "reconnect_max_s": 5}})
    assert "reconnect_min_s" in problems["sync.reconnect_max_s"].message


# -- commands --------------------------------------------------------------------------


def test_trusted_keys_must_be_base64_of_32_bytes() -> None:
    assert CommandsConfig(trusted_keys={"ops": KEY_A}).trusted_keys == {"ops": KEY_A}
    short = base64.b64encode(b"x" * 31).decode()
    problems = problems_of(None, overlay={"commands": {"trusted_keys": {"short": short, "junk": "not base64!"}}})
    assert "32" in problems["commands.trusted_keys.short"].message
    assert "base64" in problems["commands.trusted_keys.junk"].message


def test_trusted_keys_dir_is_merged_and_validated(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "ops-2.pub").write_text(KEY_B + "\n", encoding="ascii")
    (keys / "README").write_text("ignored", encoding="ascii")
    cfg = CommandsConfig(trusted_keys={"ops-1": KEY_A}, trusted_keys_dir=keys)
    assert cfg.trusted_keys == {"ops-1": KEY_A, "ops-2": KEY_B}

    (keys / "bad.pub").write_text("AAAA", encoding="ascii")
    problems = problems_of(None, overlay={"commands": {"trusted_keys_dir": str(keys)}})
    assert "bad.pub" in problems["commands.trusted_keys_dir"].message


# -- devices ---------------------------------------------------------------------------


def test_device_names_must_be_unique_and_well_formed() -> None:
    cams = [{"name": "door", "url": "rtsp://a"}, {"name": "door", "url": "rtsp://b"}]
    assert "duplicated: door" in problems_of(None, overlay={"cameras": cams})["cameras"].message
    bad = problems_of(None, overlay={"scales": [{"name": "Deli 1", "port": "/dev/ttyUSB0", "protocol": "scp01"}]})
    assert "a-z" in bad["scales[0].name"].message


def test_camera_identification_is_off_by_default() -> None:
    cfg = load_config(None, env={}, overlay={"cameras": [{"name": "door", "url": "rtsp://a"}]})
    assert cfg.cameras[0].identification is False and cfg.cameras[0].enabled is True


# -- example configs -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["agent.example.toml", "demo.toml"])
def test_example_configs_validate(name: str) -> None:
    path = REPO_ROOT / "configs" / name
    assert validate_file(path) == []


def test_agent_example_matches_documented_values() -> None:
    cfg = load_config(REPO_ROOT / "configs" / "agent.example.toml", env={})
    assert cfg.store_id == "store-0001"
    assert (cfg.sync.host, cfg.sync.port, cfg.sync.use_tls) == ("mqtt.example.com", 8883, True)
    assert str(cfg.sync.tls.key_file).startswith("/etc/store-agent/tls/")
    assert cfg.sync.password_file is None
    defaults = AgentConfig()
    assert cfg.supervisor == defaults.supervisor and cfg.health == defaults.health
    assert cfg.sync.model_dump(exclude={"broker", "tls"}) == defaults.sync.model_dump(exclude={"broker", "tls"})


def test_agent_example_commented_device_blocks_are_valid(tmp_path: Path) -> None:
    text = (REPO_ROOT / "configs" / "agent.example.toml").read_text(encoding="utf-8")
    head, devices = text.split("# [[cameras]]", 1)
    block = ("# [[cameras]]" + devices).splitlines()
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in block)
    cfg = load_config(write_toml(tmp_path, head + uncommented), env={})
    assert [c.name for c in cfg.cameras] == ["entrance"]
    assert len(cfg.scales) == 1 and len(cfg.esl_gateways) == 1
    analytics = cfg.cameras[0].analytics
    assert [x.name for x in analytics.lines] == ["door"] and analytics.zones[0].kind == "queue"
    assert cfg.identity.embedding_key_file is not None and cfg.products.cameras[0].scale == "deli-1"


def test_agent_example_has_every_section() -> None:
    text = (REPO_ROOT / "configs" / "agent.example.toml").read_text(encoding="utf-8")
    tables = set(re.findall(r"^[# ]*\[\[?([a-z_]+)\]\]?\s*(?:#.*)?$", text, re.MULTILINE))
    sections = {name for name, field in AgentConfig.model_fields.items()
                if name not in ("store_id", "data_dir", "log_level")}
    assert sorted(sections - tables) == []


def test_demo_config_values() -> None:
    cfg = load_config(REPO_ROOT / "configs" / "demo.toml", env={})
    assert cfg.store_id == "demo-store"
    assert cfg.data_dir == Path("./var/demo")
    assert (cfg.sync.keepalive_s, cfg.health.interval_s, cfg.sync.require_cloud_ack) == (10, 1, True)


def test_os_environ_is_not_modified_by_loading() -> None:
    before = dict(os.environ)
    load_config(None, env={"STORE_AGENT__SYNC__KEEPALIVE_S": "50"})
    assert dict(os.environ) == before


def test_masked_dump_hides_tokens_in_url_query_strings() -> None:
    cfg = load_config(None, env={}, overlay={
        "identity": {"alert_webhook_url": "https://hooks.example.com/alert?token=s3cr3t&room=1"},
        "cameras": [{"name": "door", "url": "http://10.0.0.2/video.mjpg?auth=abc123"}],
    })
    dumped = masked_dump(cfg)
    assert "s3cr3t" not in dumped["identity"]["alert_webhook_url"]
    assert dumped["identity"]["alert_webhook_url"].startswith("https://hooks.example.com/alert?")
    assert "abc123" not in dumped["cameras"][0]["url"]
    assert masked_dump(AgentConfig())["sync"]["broker"] == AgentConfig().sync.broker  # nothing to hide
