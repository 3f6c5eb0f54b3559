"""Build and sign commands for a store (the cloud side of DESIGN.md §5)."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.envelope import new_msg_id
from sync.signing import sign

#: The resource whose version a command kind advances; kinds not listed are unversioned.
KIND_RESOURCES: dict[str, str] = {"config.update": "config"}


def build_command(kind: str, store_id: str, body: dict[str, Any], *, key: Ed25519PrivateKey, key_id: str,
                  version: int | None = None, resource: str | None = None, ttl_s: float = 3600.0,
                  reply_to: str | None = None, now: float | None = None) -> dict[str, Any]:
    """A signed command. Versioned kinds default to the issue time in milliseconds as ``version``, which
    increases across issuers without coordination."""
    now = time.time() if now is None else now
    resource = resource if resource is not None else KIND_RESOURCES.get(kind)
    if resource is not None and version is None:
        version = int(now * 1000)
    cmd: dict[str, Any] = {
        "v": 1, "cmd_id": new_msg_id(), "kind": kind, "store_id": store_id, "issued_at": now,
        "expires_at": now + ttl_s, "body": body,
    }
    if version is not None:
        cmd["version"] = version
    if resource is not None:
        cmd["resource"] = resource
    if reply_to is not None:
        cmd["reply_to"] = reply_to
    return sign(cmd, key, key_id)
