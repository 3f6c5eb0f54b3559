"""Load, merge and validate the agent configuration.

Precedence, lowest to highest: schema defaults < TOML file < cloud overlay
(``config.update``) < ``STORE_AGENT__*`` environment variables. Every problem
is collected and reported together with its field path and, when it comes
from the file, its line number.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from agent.config.env_source import use_env
from agent.config.errors import ConfigError, ConfigProblem
from agent.config.models import AgentConfig
from agent.config.secret_files import find_secret_keys, mask_secrets, read_secret, secret_key_message
from agent.config.toml_positions import KeyPath, key_lines, locate

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "ConfigError",
    "ConfigProblem",
    "config_schema",
    "format_path",
    "load_config",
    "masked_dump",
    "read_secret",
    "validate_file",
]

DEFAULT_CONFIG_PATH = Path("/etc/store-agent/agent.toml")
ENV_PREFIX = "STORE_AGENT__"
_ENV_DELIMITER = "__"

_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)\s*$")
_PLAIN_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def load_config(
    path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    overlay: dict[str, Any] | None = None,
) -> AgentConfig:
    """Build the effective :class:`AgentConfig`.

    ``path=None`` (or :data:`DEFAULT_CONFIG_PATH` when that file does not exist)
    means defaults only; any other missing file is an error. ``overlay`` is
    deep-merged over the file's data; ``env`` (default ``os.environ``) wins over
    both. Raises :class:`ConfigError` listing every problem.
    """
    return _load(path, env=os.environ if env is None else env, overlay=overlay, default_may_be_missing=True)


def validate_file(path: Path) -> list[ConfigProblem]:
    """Problems of the config file at ``path`` (empty list = valid), ignoring the environment."""
    try:
        _load(path, env={}, overlay=None, default_may_be_missing=False)
    except ConfigError as exc:
        return exc.problems
    return []


def masked_dump(cfg: AgentConfig) -> dict[str, Any]:
    """JSON-able dict of ``cfg`` with secret file paths shown as ``"***(set)"`` and secrets as ``"***"``."""
    return mask_secrets(cfg.model_dump(mode="json"))


def config_schema() -> dict[str, Any]:
    """JSON schema of :class:`AgentConfig` (titles, descriptions, bounds, defaults)."""
    return AgentConfig.model_json_schema()


def format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """Render a pydantic location as ``sync.tls.cert_file`` / ``cameras[1].url``."""
    out = ""
    for segment in loc:
        if isinstance(segment, int):
            out += f"[{segment}]"
        elif segment == "[key]":
            continue
        elif _PLAIN_SEGMENT.match(str(segment)):
            out += f".{segment}" if out else str(segment)
        else:
            out += f"[{json.dumps(str(segment))}]"
    return out


# -- internals ---------------------------------------------------------------


def _load(
    path: Path | None,
    *,
    env: Mapping[str, str],
    overlay: dict[str, Any] | None,
    default_may_be_missing: bool,
) -> AgentConfig:
    source = str(path) if path is not None else None
    data, lines = _read_toml(path, default_may_be_missing=default_may_be_missing)

    problems: list[ConfigProblem] = []
    secrets = find_secret_keys(data)
    for key_path in secrets:
        message = secret_key_message(str(key_path[-1]))
        problems.append(ConfigProblem(format_path(key_path), message, locate(lines, key_path)))
    data = _without(data, secrets)
    for key in [k for k in data if k.startswith("_")]:  # would reach BaseSettings' private init options
        problems.append(ConfigProblem(key, "unknown key; not a recognised setting", locate(lines, (key,))))
        del data[key]

    overlay_paths: list[KeyPath] = []
    if overlay:
        overlay_secrets = find_secret_keys(overlay)
        for key_path in overlay_secrets:
            message = secret_key_message(str(key_path[-1])).replace("written in the config file", "sent in an overlay")
            problems.append(ConfigProblem(format_path(key_path), message))
        clean_overlay = _without(overlay, overlay_secrets)
        for key in [k for k in clean_overlay if str(k).startswith("_")]:
            problems.append(ConfigProblem(str(key), "unknown key in overlay; not a recognised setting"))
            del clean_overlay[key]
        overlay_paths = _leaf_paths(clean_overlay)
        data = deep_merge(data, clean_overlay)

    config: AgentConfig | None = None
    try:
        with use_env(env):
            config = AgentConfig(**data)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, lines, overlay_paths, env))
    except SettingsError as exc:  # e.g. an environment variable holding invalid JSON
        problems.append(_settings_problem(exc))

    if problems or config is None:
        raise ConfigError(problems, source)
    return config


def _read_toml(path: Path | None, *, default_may_be_missing: bool) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    if path is None:
        return {}, {}
    path = Path(path)
    source = str(path)
    if not path.exists():
        if default_may_be_missing and path == DEFAULT_CONFIG_PATH:
            return {}, {}
        raise ConfigError([ConfigProblem("", f"config file {path} does not exist")], source)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not UTF-8 text: {exc.reason}")], source) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"cannot read config file: {exc.strerror}")], source) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_problem(str(exc), text)], source) from None
    return data, key_lines(text)


def _syntax_problem(message: str, text: str) -> ConfigProblem:
    match = _TOML_POSITION.search(message)
    if match is None:
        return ConfigProblem("", f"TOML syntax error: {message}")
    if match.group(1):
        line = int(match.group(1))
    else:  # "at end of document"
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return ConfigProblem("", f"TOML syntax error: {message[: match.start()]}", line)


def _problems_from(
    exc: ValidationError,
    lines: dict[KeyPath, int],
    overlay_paths: list[KeyPath],
    env: Mapping[str, str],
) -> list[ConfigProblem]:
    env_paths = _env_paths(env)
    problems: list[ConfigProblem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = _message(error)
        line = locate(lines, loc)
        origin = next((name for p, name in env_paths.items() if loc[: len(p)] == p), None)
        if origin is not None:
            message, line = f"{message} (from environment variable {origin})", None
        elif any(loc[: len(p)] == p for p in overlay_paths):
            message, line = f"{message} (from config overlay)", None
        problems.append(ConfigProblem(format_path(loc), message, line))
    return problems


def _settings_problem(exc: SettingsError) -> ConfigProblem:
    match = re.search(r'field "([^"]+)"', str(exc))
    if match is None:
        return ConfigProblem("", f"{exc} (from environment variables)")
    field = match.group(1)
    return ConfigProblem(
        field, f"cannot parse environment variable {ENV_PREFIX}{field.upper()}: a section or list must be JSON"
    )


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key; not a recognised setting"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def _env_paths(env: Mapping[str, str]) -> dict[KeyPath, str]:
    paths: dict[KeyPath, str] = {}
    for name in env:
        if name.upper().startswith(ENV_PREFIX):
            rest = name[len(ENV_PREFIX) :].lower()
            paths[tuple(rest.split(_ENV_DELIMITER))] = name
    return paths


def _leaf_paths(data: Any, path: KeyPath = ()) -> list[KeyPath]:
    if isinstance(data, dict) and data:
        return [leaf for key, value in data.items() for leaf in _leaf_paths(value, path + (key,))]
    return [path]


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``, recursively for nested tables."""
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _without(data: Any, paths: list[KeyPath]) -> Any:
    result = copy.deepcopy(data)
    for key_path in paths:
        node = result
        for segment in key_path[:-1]:
            node = node[segment]
        del node[key_path[-1]]
    return result
