"""``store-agent doctor`` check ``identity``: identification and its embedding key agree, and the key opens what is
stored."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from agent.doctor.core import CheckResult, DoctorContext
from agent.identity.crypto import IdentityKeyError, load_cipher
from agent.identity.runtime import identification_enabled

INIT_KEY_FIX = ("create a key with `store-agent identities init-key /etc/store-agent/identity.key` and set "
                "identity.embedding_key_file to it")


def check_identity(ctx: DoctorContext) -> CheckResult:
    """Identification needs a readable, private AES key that decrypts the stored embeddings."""
    cfg = ctx.cfg
    enabled = identification_enabled(cfg)
    cameras = [c.name for c in cfg.cameras if c.enabled and c.identification]
    key_file = cfg.identity.embedding_key_file
    if key_file is None:
        if enabled:
            return CheckResult("identity", "fail", f"identification is on for {', '.join(cameras)} but no "
                               "embedding key is configured: identification will not start", INIT_KEY_FIX)
        return CheckResult("identity", "ok", "identification is off on every camera")
    try:
        cipher = load_cipher(key_file)
    except IdentityKeyError as exc:
        return CheckResult("identity", "fail", str(exc), INIT_KEY_FIX)
    path = Path(key_file)
    if not path.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / path
    mode = path.stat().st_mode if path.exists() else 0
    detail = f"embedding key {path} ok; identification {'on for ' + ', '.join(cameras) if enabled else 'off'}"
    problem = _check_stored(cfg.db_path, cipher)
    if problem:
        return CheckResult("identity", "fail", problem, "restore the key file the embeddings were stored with, or "
                           "`store-agent identities forget` the identities")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return CheckResult("identity", "warn", detail + "; the key file is readable by other users",
                           f"chmod 600 {path}")
    return CheckResult("identity", "ok", detail)


def _check_stored(db_path: Path, cipher) -> str:  # noqa: ANN001 - EmbeddingCipher
    if not db_path.exists():
        return ""
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT ref, blob FROM identity_embeddings LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return ""  # not migrated yet: nothing stored
    if row is None:
        return ""
    try:
        cipher.open(row[1], row[0])
    except IdentityKeyError:
        return "the configured key does not decrypt the stored embeddings (wrong key file?)"
    return ""
