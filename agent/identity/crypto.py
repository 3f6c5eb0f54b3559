"""Encryption of face embeddings at rest: AES-256-GCM with a key kept outside the config and the database.

The key file holds 32 random bytes in base64 (one line). Each embedding is sealed with a fresh 96-bit nonce and
its opaque storage reference as associated data, so a ciphertext cannot be moved to another record unnoticed.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.config import read_secret

__all__ = ["EmbeddingCipher", "IdentityKeyError", "generate_key_file", "load_cipher"]

_NONCE = 12


class IdentityKeyError(RuntimeError):
    """The embedding key is missing, unreadable or malformed, or a ciphertext does not open with it."""


class EmbeddingCipher:
    """Seal and open float32 embeddings with AES-GCM."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise IdentityKeyError(f"embedding key must be 32 bytes (AES-256), got {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, vector: np.ndarray, ref: str) -> bytes:
        """``nonce || ciphertext`` of ``vector`` (D,) as little-endian float32, bound to ``ref``."""
        nonce = os.urandom(_NONCE)
        data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return nonce + self._aead.encrypt(nonce, data, ref.encode())

    def open(self, blob: bytes, ref: str) -> np.ndarray:
        """The float32 vector sealed in ``blob`` for ``ref``; raises :class:`IdentityKeyError` on a wrong key
        or tampered data."""
        try:
            data = self._aead.decrypt(bytes(blob[:_NONCE]), bytes(blob[_NONCE:]), ref.encode())
        except InvalidTag:
            raise IdentityKeyError("an embedding does not decrypt with the configured key (wrong key file?)") from None
        return np.frombuffer(data, dtype="<f4").astype(np.float32)


def load_cipher(path: Path, *, field: str = "identity.embedding_key_file") -> EmbeddingCipher:
    """Read the base64 key file (systemd credential paths allowed) and build the cipher."""
    try:
        text = read_secret(path, field=field)
    except Exception as exc:  # ConfigError: missing/empty/unreadable
        raise IdentityKeyError(str(exc)) from exc
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise IdentityKeyError(f"{field}: {path} is not base64 (create one with "
                               "`store-agent identities init-key PATH`)") from None
    return EmbeddingCipher(key)


def generate_key_file(path: Path, *, force: bool = False) -> Path:
    """Write a new random key to ``path`` with mode 0600; refuses to overwrite unless ``force`` (a lost key
    makes every stored embedding unreadable)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; replacing the key makes stored embeddings unreadable (use --force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    os.chmod(path, 0o600)
    return path
