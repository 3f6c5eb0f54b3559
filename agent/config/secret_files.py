"""Secrets live in files, never in the config: detection, reading and masking."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.config.errors import ConfigError, ConfigProblem

log = logging.getLogger(__name__)

#: Key names that hold a secret value and are therefore refused in the config file.
SECRET_KEY_NAMES = frozenset({"password", "secret", "private_key", "token", "encryption_key"})

MASK = "***"
MASK_SET = "***(set)"


def is_secret_key(name: str) -> bool:
    """True for ``password``, ``secret``, ``token``, ... and names ending in ``_<one of them>``."""
    lowered = name.lower()
    return lowered in SECRET_KEY_NAMES or any(lowered.endswith("_" + secret) for secret in SECRET_KEY_NAMES)


def find_secret_keys(data: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Paths of every secret-named key in nested dicts/lists ``data``."""
    found: list[tuple[str | int, ...]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if is_secret_key(str(key)):
                found.append(path + (key,))
            else:
                found.extend(find_secret_keys(value, path + (key,)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(find_secret_keys(value, path + (index,)))
    return found


def secret_key_message(key: str) -> str:
    """The error shown when a secret is written in the config file."""
    return (
        "secrets must not be written in the config file; put it in a file and set "
        f"{key}_file (or use a systemd credential)"
    )


def read_secret(path: Path, *, field: str = "") -> str:
    """Read a secret file and return its content without the trailing newline.

    A relative ``path`` is resolved against ``$CREDENTIALS_DIRECTORY`` (systemd
    ``LoadCredential=``) when that variable is set, else against the current
    directory. Raises :class:`ConfigError` if the file is missing, unreadable or
    empty. ``field`` names the config field in the error (e.g. ``sync.password_file``).
    """
    target = Path(path).expanduser()
    if not target.is_absolute():
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        target = (Path(credentials) if credentials else Path.cwd()) / target
    try:
        raw = target.read_bytes()
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(field, f"secret file {target} does not exist")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(field, f"cannot read secret file {target}: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(field, f"secret file {target} is not UTF-8 text")]) from None
    if not text:
        raise ConfigError([ConfigProblem(field, f"secret file {target} is empty")])
    if mode & stat.S_IROTH:
        log.warning("secret file is world-readable; chmod 600 it", extra={"path": str(target)})
    return text


def _mask_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.query:  # webhook and camera URLs often carry their token in the query string
        parts = parts._replace(query=MASK)
    if parts.password is None:
        return urlunsplit(parts)
    netloc = f"{parts.username or ''}:{MASK}@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def mask_secrets(node: Any, key: str = "") -> Any:
    """Copy of JSON-like ``node`` with secret values and secret file paths masked.

    Fields ending in ``password_file`` / ``key_file`` show ``"***(set)"`` when set,
    secret-named fields show ``"***"``, passwords and query strings inside URLs become ``***``.
    ``trusted_keys`` (public keys) are kept.
    """
    if key == "trusted_keys":
        return node
    if node is None or node == "":
        return node
    if key.endswith("password_file") or key.endswith("key_file"):
        return MASK_SET
    if key and is_secret_key(key):
        return MASK
    if isinstance(node, dict):
        return {k: mask_secrets(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [mask_secrets(v) for v in node]
    if isinstance(node, str) and "://" in node:
        try:
            return _mask_url(node)
        except ValueError:
            return MASK
    return node
