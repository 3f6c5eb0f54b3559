"""``store-agent identities``: init-key, enroll from photos with the real face models (embeddings only), stats,
list, forget with tombstone, confirm/dismiss recorded in the audit log."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.config import load_config
from agent.config.identity_models import IdentityConfig
from agent.identity.crypto import load_cipher
from agent.identity.pipeline import FacePipeline
from agent.identity.service import IdentityService
from agent.store import open_store
from sync.envelope import new_msg_id
from sync.outbox import Outbox

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
FACES = SHARED / "data" / "faces"
runner = CliRunner()


def cli(*args: str) -> tuple[int, dict | str]:
    result = runner.invoke(app, list(args))
    out = result.stdout.strip()
    try:
        return result.exit_code, json.loads(out.splitlines()[-1]) if out else {}
    except (json.JSONDecodeError, IndexError):
        return result.exit_code, out + result.stderr if hasattr(result, "stderr") else out


@pytest.fixture
def config(tmp_path: Path) -> Path:
    key = tmp_path / "identity.key"
    code, _ = cli("identities", "init-key", str(key))
    assert code == 0 and os.stat(key).st_mode & 0o777 == 0o600
    assert cli("identities", "init-key", str(key))[0] == 1  # never silently replaced
    path = tmp_path / "agent.toml"
    path.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n[sync]\nenabled = false\n'
                    f'[models]\ndir = "{SHARED / "models"}"\n[identity]\nembedding_key_file = "{key}"\n')
    return path


def _folder(tmp_path: Path, name: str, people: dict[str, range]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for person, numbers in people.items():
        for n in numbers:
            os.symlink(FACES / person / f"{person}_{n:04d}.jpg", folder / f"{person}_{n:04d}.jpg")
    return folder


def test_enroll_stats_list_forget_and_tombstone(config: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "colin", {"Colin_Powell": range(1, 4)})
    code, out = cli("identities", "enroll", "--kind", "vip", "--from-dir", str(folder), "--id", "vip-colin",
                    "--config", str(config), "--json")
    assert code == 0, out
    assert out["id"] == "vip-colin" and out["photos"] == 3 and out["embeddings"] >= 2
    data_files = [p.name for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert all(n.startswith("agent.db") for n in data_files), data_files  # the photos were not kept
    code, info = cli("identities", "stats", "--config", str(config), "--json")
    assert info["galleries"]["vip"] == 1 and info["galleries"]["member"] == 0
    code, listed = cli("identities", "list", "--kind", "vip", "--config", str(config), "--json")
    assert [r["id"] for r in listed["identities"]] == ["vip-colin"] and "embedding" not in json.dumps(
        {k: v for r in listed["identities"] for k, v in r.items() if k != "embeddings"})

    # Another photo of the same person, through the real face pipeline, matches the VIP and raises an alert.
    cfg = load_config(config)
    pipeline = FacePipeline.from_config(cfg.identity, Path(cfg.models.dir))
    vec, quality = pipeline.embed_photo(cv2.imread(str(FACES / "Colin_Powell" / "Colin_Powell_0005.jpg")))
    db = open_store(cfg.data_dir)
    outbox = Outbox(db, store_id="s1", boot_id=new_msg_id(), priority_for=cfg.sync.priority_for)
    svc = IdentityService(cfg.identity, db, load_cipher(cfg.identity.embedding_key_file), outbox)
    decision = svc.observe("door", 1, vec, quality.quality, time.time())
    assert decision.kind == "vip" and decision.visitor_id == "vip-colin" and decision.alert_id
    code, out = cli("identities", "confirm", decision.alert_id, "--by", "manager", "--config", str(config), "--json")
    assert code == 0 and out["recorded"] is True
    assert cli("identities", "dismiss", decision.alert_id, "--config", str(config), "--json")[0] == 1
    code, log = cli("identities", "audit", "--config", str(config), "--json")
    actions = [(a["action"], a["actor"]) for a in log["audit"]]
    assert ("alert_confirmed", "cli:manager") in actions and ("hit", "agent") in actions and ("enrol", "cli") in actions

    code, out = cli("identities", "forget", "vip-colin", "--config", str(config), "--json")
    assert code == 0 and out["deleted"] is True
    svc.refresh()
    assert "vip-colin" not in svc.galleries
    assert svc.observe("door", 2, vec, quality.quality, time.time()).kind == "new"
    code, info = cli("identities", "stats", "--config", str(config), "--json")
    assert info["galleries"]["vip"] == 0 and info["tombstones"] == 1
    code, out = cli("identities", "enroll", "--kind", "vip", "--from-dir", str(folder), "--id", "vip-colin",
                    "--config", str(config))
    assert code == 1
    svc.close()
    outbox.close()


def test_enroll_refuses_a_folder_of_two_people_and_bad_kinds(config: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "mixed", {"Colin_Powell": range(1, 3), "Bill_Clinton": range(1, 2)})
    result = runner.invoke(app, ["identities", "enroll", "--kind", "member", "--from-dir", str(folder),
                                 "--config", str(config)])
    assert result.exit_code == 1 and "same person" in result.output
    result = runner.invoke(app, ["identities", "enroll", "--kind", "visitor", "--from-dir", str(folder),
                                 "--config", str(config)])
    assert result.exit_code == 2 and "member, vip, staff, watchlist" in result.output
    assert cli("identities", "stats", "--config", str(config), "--json")[1]["galleries"]["member"] == 0


def test_enroll_optout_suppresses_the_person(config: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, "optout", {"Bill_Clinton": range(1, 3)})
    code, out = cli("identities", "enroll", "--kind", "optout", "--from-dir", str(folder), "--config", str(config),
                    "--json")
    assert code == 0 and out["gallery"] == "optout", out
    cfg = load_config(config)
    pipeline = FacePipeline.from_config(cfg.identity, Path(cfg.models.dir))
    vec, quality = pipeline.embed_photo(cv2.imread(str(FACES / "Bill_Clinton" / "Bill_Clinton_0003.jpg")))
    db = open_store(cfg.data_dir)
    outbox = Outbox(db, store_id="s1", boot_id=new_msg_id(), priority_for=cfg.sync.priority_for)
    svc = IdentityService(cfg.identity, db, load_cipher(cfg.identity.embedding_key_file), outbox)
    try:
        decision = svc.observe("door", 1, vec, quality.quality, time.time())
        assert decision.kind == "optout" and decision.visitor_id is None
        assert svc.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    finally:
        svc.close()
        outbox.close()
