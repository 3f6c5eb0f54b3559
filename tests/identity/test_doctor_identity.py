"""``store-agent doctor`` check ``identity``: identification without a key fails with the fix, a wrong key for the
stored embeddings fails, a readable key warns."""

from __future__ import annotations

import os
from pathlib import Path

from agent.doctor import Check, run_doctor
from agent.identity.crypto import generate_key_file, load_cipher
from agent.identity import repository as repo
from agent.identity.doctor_check import check_identity
from agent.store import connect, open_store
from tests.identity.conftest import person
from sync.sqlite import transaction


def _run(tmp_path: Path, *, identification: bool, key: Path | None) -> tuple[str, str, str]:
    lines = [f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n',
             f'[[cameras]]\nname = "door"\nurl = "/dev/video0"\nidentification = {str(identification).lower()}\n']
    if key is not None:
        lines.append(f'[identity]\nembedding_key_file = "{key}"\n')
    config = tmp_path / "agent.toml"
    config.write_text("\n".join(lines))
    (result,) = run_doctor(config, checks=[Check("identity", check_identity)])
    return result.status, result.detail, result.fix


def test_identity_doctor(tmp_path: Path) -> None:
    assert _run(tmp_path, identification=False, key=None)[0] == "ok"
    status, detail, fix = _run(tmp_path, identification=True, key=None)
    assert status == "fail" and "door" in detail and "init-key" in fix
    key = generate_key_file(tmp_path / "identity.key")
    assert _run(tmp_path, identification=True, key=key)[0] == "ok"
    conn = connect(open_store(tmp_path / "data"))
    with transaction(conn):
        repo.insert_identity(conn, load_cipher(key), identity_id="m1", gallery="member",
                             embeddings=[(person(1), 1.0)])
    conn.close()
    assert _run(tmp_path, identification=True, key=key)[0] == "ok"
    other = generate_key_file(tmp_path / "other.key")
    status, detail, _ = _run(tmp_path, identification=True, key=other)
    assert status == "fail" and "does not decrypt" in detail
    os.chmod(key, 0o644)
    status, _, fix = _run(tmp_path, identification=True, key=key)
    assert status == "warn" and fix == f"chmod 600 {key}"
    (tmp_path / "bad.key").write_text("not base64 !!\n")
    assert _run(tmp_path, identification=True, key=tmp_path / "bad.key")[0] == "fail"
