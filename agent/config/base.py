"""Shared building blocks for the configuration schema."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Device names (cameras, scales, ESL gateways): lowercase letters, digits, '-' and '_'.
DEVICE_NAME_PATTERN = r"^[a-z0-9_-]{1,63}$"
_DEVICE_NAME_RE = re.compile(DEVICE_NAME_PATTERN)


class Section(BaseModel):
    """Base class of every nested config section: unknown keys are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")


def check_device_name(value: str) -> str:
    """Validate a device name, raising ``ValueError`` with the allowed characters named."""
    if not _DEVICE_NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-63 characters from lowercase letters a-z, digits 0-9, '-' and '_'"
        )
    return value


def check_unique_names(items: Sequence[Any], kind: str) -> None:
    """Raise ``ValueError`` if two entries of ``items`` share a ``name``."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for item in items:
        if item.name in seen and item.name not in duplicates:
            duplicates.append(item.name)
        seen.add(item.name)
    if duplicates:
        raise ValueError(f"{kind} names must be unique; duplicated: {', '.join(duplicates)}")
