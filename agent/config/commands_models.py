"""Schema of signed cloud commands: trusted Ed25519 keys and acceptance limits."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from agent.config.base import Section

KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_KEY_ID_RE = re.compile(KEY_ID_PATTERN)


def check_key_id(value: str) -> str:
    """Validate a trusted key id (also used as ``<key_id>.pub`` file name)."""
    if not _KEY_ID_RE.fullmatch(value):
        raise ValueError(
            f"invalid key id {value!r}: use 1-64 characters from letters, digits, '.', '_' and '-'"
        )
    return value


def check_ed25519_public_key(value: str) -> str:
    """Validate a base64 Ed25519 public key (raw 32 bytes); returns it without whitespace."""
    text = value.strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not valid base64; expected a base64 Ed25519 public key (32 raw bytes)") from exc
    if len(raw) != 32:
        raise ValueError(f"decodes to {len(raw)} bytes; an Ed25519 public key is 32 raw bytes, base64 encoded")
    return text


def load_key_dir(directory: Path) -> dict[str, str]:
    """Read every ``<key_id>.pub`` file of ``directory`` into ``{key_id: base64 key}``.

    Raises ``ValueError`` naming the first unreadable or invalid file.
    """
    if not directory.is_dir():
        raise ValueError(f"trusted_keys_dir {str(directory)!r} is not an existing directory")
    keys: dict[str, str] = {}
    for file in sorted(directory.glob("*.pub")):
        try:
            key_id = check_key_id(file.stem)
            keys[key_id] = check_ed25519_public_key(file.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{file}: {exc}") from exc
    return keys


KeyId = Annotated[str, AfterValidator(check_key_id)]
PublicKey = Annotated[str, AfterValidator(check_ed25519_public_key)]


class CommandsConfig(Section):
    """Verification of signed commands sent by the cloud."""

    trusted_keys: dict[KeyId, PublicKey] = Field(
        default_factory=dict,
        title="Trusted command keys",
        description="Key id -> Ed25519 public key (base64 of the raw 32 bytes). Commands must be signed "
        "by one of these keys. Public keys are not secret.",
    )
    trusted_keys_dir: Path | None = Field(
        default=None,
        title="Trusted keys directory",
        description="Optional directory of <key_id>.pub files (same base64 format), merged into "
        "trusted_keys at load time.",
    )
    max_bytes: int = Field(
        default=262_144,
        title="Max command size (bytes)",
        description="Larger commands are rejected before signature verification.",
        ge=1024,
        le=16 * 1024 * 1024,
    )
    max_clock_skew_s: float = Field(
        default=300,
        title="Max clock skew (s)",
        description="Reject commands whose timestamp differs from the local clock by more than this.",
        ge=0,
    )

    @field_validator("trusted_keys_dir")
    @classmethod
    def _check_key_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return value
        inline = info.data.get("trusted_keys") or {}
        for key_id, key in load_key_dir(value).items():
            if key_id in inline and inline[key_id] != key:
                raise ValueError(f"key id {key_id!r} is in trusted_keys and in {key_id}.pub with different keys")
        return value

    @model_validator(mode="after")
    def _merge_key_dir(self) -> CommandsConfig:
        if self.trusted_keys_dir is not None:
            self.trusted_keys = {**load_key_dir(self.trusted_keys_dir), **self.trusted_keys}
        return self
