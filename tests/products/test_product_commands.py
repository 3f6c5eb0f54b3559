"""Signed ``products.gallery_update`` through the real command processor, and ``products learn``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.products.commands import KIND, apply_gallery_update, encode_vector, register_products
from sync.sqlite import transaction
from agent.store import connect, open_store
from sync.commands import CommandRejected

SPACE, DIM = "test-space", 4


def _unit(*v: float) -> np.ndarray:
    a = np.asarray(v, np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture
def conn(tmp_path: Path):  # noqa: ANN201
    c = connect(open_store(tmp_path))
    yield c
    c.close()


def _apply(conn, body):  # noqa: ANN001, ANN202
    with transaction(conn):
        return apply_gallery_update(body, conn, space=SPACE, dim=DIM, cap_per_plu=2, dedupe_cosine=0.99)


def test_adds_and_removes_embeddings_with_dedupe_and_cap(conn) -> None:  # noqa: ANN001
    add = [{"plu": "4011", "uid": f"u{i}", "vector": encode_vector(v)}
           for i, v in enumerate([_unit(1, 0, 0, 0), _unit(1, 0.001, 0, 0), _unit(1, 0.5, 0, 0), _unit(0, 0, 1, 0)])]
    result = _apply(conn, {"space": SPACE, "add": add})
    assert result["added"] == 3 and result["skipped"] == 1  # u1 is a near-duplicate of u0
    # cap 2: the new, different view (u3) replaced one of the two similar ones (u0, u2)
    kept = {r[0] for r in conn.execute("SELECT uid FROM product_embeddings WHERE plu = '4011'")}
    assert len(kept) == 2 and "u3" in kept
    assert _apply(conn, {"space": SPACE, "remove": [{"plu": "4011"}]})["removed"] == 2
    assert conn.execute("SELECT COUNT(*) FROM product_embeddings").fetchone()[0] == 0


@pytest.mark.parametrize(("body", "reason"), [
    ("not an object", "invalid_body"),
    ({"space": "other", "add": []}, "wrong_space"),
    ({"space": SPACE}, "invalid_body"),
    ({"space": SPACE, "add": [{"plu": "1", "uid": "a", "vector": "!!!"}]}, "invalid_body"),
    ({"space": SPACE, "add": [{"plu": "1", "uid": "a", "vector": encode_vector(np.ones(3))}]}, "wrong_dimension"),
    ({"space": SPACE, "add": [{"plu": "1", "uid": "a", "vector": encode_vector(np.zeros(4))}]}, "invalid_body"),
    ({"space": SPACE, "add": [{"uid": "a", "vector": encode_vector(np.ones(4))}]}, "invalid_body"),
    ({"space": SPACE, "remove": [{"what": 1}]}, "invalid_body"),
    ({"space": SPACE, "add": [], "extra": 1}, "invalid_body"),
])
def test_malformed_updates_are_rejected_with_a_reason(conn, body, reason) -> None:  # noqa: ANN001
    with pytest.raises(CommandRejected) as err:
        _apply(conn, body)
    assert err.value.reason == reason
    assert conn.execute("SELECT COUNT(*) FROM product_embeddings").fetchone()[0] == 0


def test_registered_kind_applies_and_notifies(tmp_path: Path) -> None:
    registered = {}

    class Processor:
        def register(self, kind, handler):  # noqa: ANN001, ANN202
            registered[kind] = handler

    changed = []
    register_products(Processor(), space=lambda: (SPACE, DIM), cap_per_plu=5, dedupe_cosine=0.99,
                      on_change=lambda: changed.append(1))
    handler = registered[KIND]

    class Cmd:
        body = {"space": SPACE, "add": [{"plu": "7", "uid": "x", "vector": encode_vector(_unit(1, 2, 3, 4))}]}

    conn = connect(open_store(tmp_path))
    with transaction(conn):
        result = handler.apply(Cmd(), conn)
    handler.after_commit(Cmd(), result)
    assert result["added"] == 1 and changed == [1]
    conn.close()


def test_products_learn_enrols_photos_and_queues_product_learned(tmp_path: Path, grocery: Path,
                                                                 shared_models: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n[models]\ndir = "{shared_models}"\n'
                      '[products]\ncap_per_plu = 4\n')
    result = CliRunner().invoke(app, ["products", "learn", "--plu", "4011", "--images",
                                      str(grocery / "train/Fruit/Banana"), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plu_entries"] == 4 and out["added"] >= 4 and out["images"] > 4
    conn = connect(tmp_path / "data" / "agent.db")
    assert conn.execute("SELECT COUNT(*) FROM product_embeddings WHERE plu = '4011'").fetchone()[0] == 4
    assert conn.execute("SELECT COUNT(*) FROM outbox WHERE stream = 'events/product_learned'").fetchone()[0] == out["added"]
    conn.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = CliRunner().invoke(app, ["products", "learn", "--plu", "4011", "--images", str(empty),
                                   "--config", str(config)])
    assert bad.exit_code == 1 and "no images" in bad.output


def test_update_is_rejected_when_the_embedder_is_not_installed(tmp_path: Path) -> None:
    from models.spec import ModelNotInstalled

    registered = {}

    class Processor:
        def register(self, kind, handler):  # noqa: ANN001, ANN202
            registered[kind] = handler

    def missing() -> tuple[str, int]:
        raise ModelNotInstalled("model 'mobilenet-v1-embedding' is not installed")

    register_products(Processor(), space=missing, cap_per_plu=5, dedupe_cosine=0.99)

    class Cmd:
        body = {"space": SPACE, "add": []}

    conn = connect(open_store(tmp_path))
    with pytest.raises(CommandRejected) as err:
        registered[KIND].apply(Cmd(), conn)
    assert err.value.reason == "model_unavailable" and "not installed" in str(err.value)
    conn.close()
