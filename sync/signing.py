"""Ed25519 signatures over commands' canonical JSON, and the key files that hold them.

Canonical form: the command object without ``sig``, serialised with sorted keys, no spaces, UTF-8. Key files:
the private key is PKCS#8 PEM (mode 0600); the public key is the raw 32 bytes in base64 on one line, the
form listed under ``commands.trusted_keys`` in the agent's config.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SignatureError(ValueError):
    """A signature is missing, malformed, from an unknown key, or does not verify."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def canonical_bytes(obj: dict[str, Any]) -> bytes:
    """The bytes that are signed: ``obj`` minus ``sig``, sorted keys, compact, UTF-8."""
    unsigned = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sign(obj: dict[str, Any], key: Ed25519PrivateKey, key_id: str) -> dict[str, Any]:
    """Return a copy of ``obj`` with ``key_id`` and ``sig`` (base64) set."""
    signed = {k: v for k, v in obj.items() if k != "sig"}
    signed["key_id"] = key_id
    signed["sig"] = base64.b64encode(key.sign(canonical_bytes(signed))).decode("ascii")
    return signed


def verify(obj: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> str:
    """Check ``obj['sig']`` against the trusted key named by ``obj['key_id']``; return the key id."""
    key_id = obj.get("key_id")
    sig = obj.get("sig")
    if not isinstance(sig, str) or not sig:
        raise SignatureError("unsigned", "command carries no signature")
    if not isinstance(key_id, str) or key_id not in trusted:
        raise SignatureError("untrusted_key", f"key id {key_id!r} is not among the trusted keys")
    try:
        raw = base64.b64decode(sig, validate=True)
    except ValueError as exc:
        raise SignatureError("bad_signature", "signature is not valid base64") from exc
    try:
        trusted[key_id].verify(raw, canonical_bytes(obj))
    except InvalidSignature as exc:
        raise SignatureError("bad_signature", "signature does not match the command") from exc
    return key_id


def generate_keypair() -> tuple[Ed25519PrivateKey, str]:
    """A new private key and its public key in base64 (raw 32 bytes)."""
    key = Ed25519PrivateKey.generate()
    return key, public_key_b64(key)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key(b64: str) -> Ed25519PublicKey:
    """Parse a base64 raw public key; ``ValueError`` when it is not 32 bytes."""
    raw = base64.b64decode(b64.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def write_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write PKCS#8 PEM readable by the owner only (created 0600, never world-readable in between)."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # the mode above applies only when the file is created
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PKCS#8 PEM Ed25519 private key."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key
