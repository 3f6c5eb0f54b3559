"""Signed identity commands through the real CommandProcessor and SQLite: watchlist upsert/delete, identity.delete
with tombstone, optout.add, and clear rejections of malformed bodies."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from agent.config.identity_models import IdentityConfig
from agent.identity import repository as repo
from agent.identity.commands import register_identity
from agent.identity.crypto import load_cipher
from sync.cloud.commands import build_command
from sync.commands import CommandProcessor
from sync.signing import generate_keypair, load_public_key
from tests.identity.conftest import DIM, person, sighting

STORE = "s1"


@pytest.fixture
def env(make_service, outbox, key_file):
    key, public = generate_keypair()
    processor = CommandProcessor(outbox, store_id=STORE, trusted_keys={"k": load_public_key(public)})
    svc = make_service(share_embeddings_with_cloud=False)
    register_identity(processor, cfg=svc.cfg, cipher=svc.cipher, on_change=svc.reload)

    def send(kind: str, body: dict):
        return processor.process(json.dumps(build_command(kind, STORE, body, key=key, key_id="k")).encode())

    return svc, send, processor


def b64(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, "<f4").tobytes()).decode()


def entry(entry_id: str, seed: int, kind: str = "theft", **kw) -> dict:
    return {"id": entry_id, "kind": kind, "reason": "shoplifting 2026-11-02", "source": "cloud:hq",
            "expires_at": None, "embeddings": [b64(person(seed)), person(seed).tolist()], **kw}


def test_watchlist_upsert_then_hit_then_delete(env) -> None:
    svc, send, _ = env
    out = send("watchlist.upsert", {"entries": [entry("wl-1", 1), entry("wl-2", 2, kind="scalper")]})
    assert out.status == "applied", out.detail
    assert out.result == {"upserted": ["wl-1", "wl-2"], "skipped_tombstoned": []}
    hit = svc.observe("door", 1, sighting(person(1), 0), 0.9, 1_780_000_000.0)
    assert hit.kind == "watchlist" and hit.visitor_id == "wl-1" and hit.watchlist_kind == "theft"
    actions = [a["action"] for a in repo.audit_log(svc.conn)]
    assert actions.count("watchlist_add") == 2 and "hit" in actions
    out = send("watchlist.delete", {"ids": ["wl-1", "nope"]})
    assert out.result == {"deleted": ["wl-1"], "missing": ["nope"]}
    assert svc.observe("door", 2, sighting(person(1), 1), 0.9, 1_780_000_100.0).kind == "new"
    assert "watchlist_remove" in [a["action"] for a in repo.audit_log(svc.conn)]


def test_expired_watchlist_entries_do_not_match(env) -> None:
    svc, send, _ = env
    send("watchlist.upsert", {"entries": [entry("wl-old", 3, expires_at=1_700_000_000)]})
    assert svc.observe("door", 1, sighting(person(3), 0), 0.9, 1_780_000_000.0).kind == "new"


def test_identity_delete_leaves_a_tombstone_against_re_enrolment(env) -> None:
    svc, send, _ = env
    visitor = svc.observe("door", 1, sighting(person(4), 0), 0.9, 1_780_000_000.0)
    send("watchlist.upsert", {"entries": [entry("wl-9", 5)]})
    out = send("identity.delete", {"ids": [visitor.visitor_id, "wl-9"]})
    assert out.status == "applied" and out.result["deleted"] == [visitor.visitor_id, "wl-9"]
    conn = svc.conn
    for gone in (visitor.visitor_id, "wl-9"):
        assert repo.get_identity(conn, gone) is None and repo.is_tombstoned(conn, gone) and gone not in svc.galleries
    assert conn.execute("SELECT COUNT(*) FROM identity_visits").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM identity_embeddings").fetchone()[0] == 0
    # A later sync carrying the deleted id does not bring it back.
    again = send("watchlist.upsert", {"entries": [entry("wl-9", 5), entry("wl-10", 6)]})
    assert again.result == {"upserted": ["wl-10"], "skipped_tombstoned": ["wl-9"]}
    assert repo.get_identity(conn, "wl-9") is None
    assert svc.observe("door", 2, sighting(person(5), 0), 0.9, 1_780_000_100.0).kind == "new"


def test_optout_add_by_embedding_and_by_visitor(env) -> None:
    svc, send, _ = env
    out = send("optout.add", {"embeddings": [b64(person(7))]})
    assert out.status == "applied" and out.result["optout_id"]
    assert svc.observe("door", 1, sighting(person(7), 0), 0.9, 1_780_000_000.0).kind == "optout"
    seen = svc.observe("door", 2, sighting(person(8), 0), 0.9, 1_780_000_000.0)
    out = send("optout.add", {"visitor_id": seen.visitor_id})
    assert out.status == "applied" and out.result["removed"] == seen.visitor_id
    assert svc.observe("door", 3, sighting(person(8), 1), 0.9, 1_780_086_400.0).kind == "optout"
    assert send("optout.add", {"visitor_id": "unknown"}).reason == "unknown_id"


@pytest.mark.parametrize("body, reason, words", [
    ({}, "invalid_body", "entries"),
    ({"entries": [{"id": "x", "kind": "theft"}]}, "invalid_body", "missing field(s) embeddings"),
    ({"entries": [{"id": "x", "kind": "pickpocket", "embeddings": [[0.1] * DIM]}]}, "unknown_kind", "pickpocket"),
    ({"entries": [{"id": "x", "kind": "theft", "embeddings": [[0.1] * 64]}]}, "wrong_dimension", "64 values"),
    ({"entries": [{"id": "x", "kind": "theft", "embeddings": ["***"]}]}, "invalid_body", "not valid base64"),
    ({"entries": [{"id": "x", "kind": "theft", "embeddings": [b64(np.ones(DIM + 1))]}]}, "wrong_dimension", "129"),
    ({"entries": [{"id": "x", "kind": "theft", "embeddings": [[0.0] * DIM]}]}, "invalid_body", "non-zero"),
    ({"entries": [{"id": "x", "kind": "theft", "embeddings": [["a"] * DIM]}]}, "invalid_body", "list of numbers"),
    ({"entries": [{"id": "", "kind": "theft", "embeddings": [[0.1] * DIM]}]}, "invalid_body", "'id'"),
    ({"entries": [{"id": "x", "kind": "theft", "expires_at": "soon", "embeddings": [[0.1] * DIM]}]},
     "invalid_body", "expires_at"),
    ({"entries": [{"id": "x", "kind": "theft", "expires_at": 10**400, "embeddings": [[0.1] * DIM]}]},
     "invalid_body", "expires_at"),
    ({"entries": [{"id": "x", "kind": "theft", "embeddings": [[10**400] + [0.1] * (DIM - 1)]}]},
     "invalid_body", "out of range"),
])
def test_malformed_watchlist_bodies_are_rejected_clearly(env, body, reason, words) -> None:
    svc, send, processor = env
    out = send("watchlist.upsert", body)
    assert out.status == "rejected" and out.reason == reason and words in out.detail
    assert repo.stats(svc.conn)["galleries"]["watchlist"] == 0


@pytest.mark.parametrize("kind, body", [("identity.delete", {}), ("identity.delete", {"ids": [1]}),
                                        ("watchlist.delete", {"ids": "wl-1"}), ("optout.add", {}),
                                        ("optout.add", {"embeddings": [[1.0] * 3]})])
def test_other_malformed_bodies(env, kind, body) -> None:
    _, send, _ = env
    out = send(kind, body)
    assert out.status == "rejected" and out.reason in ("invalid_body", "wrong_dimension") and out.detail


def test_without_a_key_embedding_commands_are_refused_but_deletion_works(outbox, db_path) -> None:
    key, public = generate_keypair()
    processor = CommandProcessor(outbox, store_id=STORE, trusted_keys={"k": load_public_key(public)})
    register_identity(processor, cfg=IdentityConfig(), cipher=None)
    send = lambda kind, body: processor.process(  # noqa: E731
        json.dumps(build_command(kind, STORE, body, key=key, key_id="k")).encode())
    out = send("watchlist.upsert", {"entries": [entry("wl-1", 1)]})
    assert out.status == "rejected" and out.reason == "identity_disabled" and "embedding_key_file" in out.detail
    assert send("identity.delete", {"id": "01ABC"}).status == "applied"
    assert repo.is_tombstoned(outbox.conn, "01ABC")


def test_the_cloud_cannot_switch_on_embedding_export_by_config_update(outbox) -> None:
    from agent.commands.builtin import register_builtin

    key, public = generate_keypair()
    processor = CommandProcessor(outbox, store_id=STORE, trusted_keys={"k": load_public_key(public)})
    register_builtin(processor, config_path=None, boot_id="b", started_at=0.0, versions=dict, on_config=lambda c: None)
    for patch in ({"identity": {"share_embeddings_with_cloud": True}},
                  {"identity": {"embedding_key_file": "/tmp/evil.key"}}):
        cmd = build_command("config.update", STORE, {"config": patch}, key=key, key_id="k")
        out = processor.process(json.dumps(cmd).encode())
        assert out.status == "rejected" and out.reason == "forbidden_key" and "identity." in out.detail


def test_fuzzed_watchlist_bodies_never_crash_the_processor(env) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    svc, send, _ = env
    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                     st.text(max_size=8), st.sampled_from(["theft", "scalper", "custom", b64(person(1))]))
    values = st.recursive(leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "kind", "embeddings", "reason", "source", "expires_at", "x"]), inner, max_size=5),
        max_leaves=12)
    bodies = st.one_of(st.dictionaries(st.sampled_from(["entries", "ids", "id"]), values, max_size=2),
                       st.builds(lambda e: {"entries": e}, st.lists(values, min_size=1, max_size=3)))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["watchlist.upsert", "watchlist.delete", "identity.delete", "optout.add"]),
           body=bodies)
    def run(kind: str, body: dict) -> None:
        out = send(kind, body)
        assert out.status in ("applied", "rejected"), (out.status, out.detail)
        if out.status == "rejected":
            assert out.reason and out.detail

    run()
    assert svc.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_watchlist_embeddings_from_a_command_are_stored_only_encrypted(env, db_path) -> None:
    svc, send, _ = env
    assert send("watchlist.upsert", {"entries": [entry("wl-enc", 31)]}).status == "applied"
    assert send("optout.add", {"embeddings": [person(32).tolist()]}).status == "applied"
    svc.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert svc.conn.execute("SELECT COUNT(*) FROM identity_embeddings").fetchone()[0] == 3
    for seed in (31, 32):
        vec = person(seed)
        assert vec.astype("<f4").tobytes()[:16] not in raw  # neither the command's nor the normalised floats
        assert b64(vec)[:24].encode() not in raw and repr(float(vec[0]))[:10].encode() not in raw
