"""Projection heads: the shipped files are pinned by sha256, fused heads round-trip, spaces are distinct."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import models.embedders as emb
from models.embedders import HeadBlock, ProjectionHead, load_head
from models.spec import ModelIntegrityError


def test_shipped_heads_load_with_their_dimensions() -> None:
    lda = load_head("grocery_projection")
    fused = load_head("grocery_wccn_lda")
    assert (lda.dim_in, lda.dim_out) == (1024, 80)
    assert (fused.dim_in, fused.dim_out) == (1024, 1024 + 80) and len(fused.blocks) == 2
    assert lda.digest != fused.digest
    v = fused(np.random.default_rng(0).normal(size=(3, 1024)).astype(np.float32))
    assert v.shape == (3, 1104) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_a_tampered_shipped_head_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(emb.HEADS_DIR / "grocery_projection.npz", tmp_path / "grocery_projection.npz")
    with open(tmp_path / "grocery_projection.npz", "r+b") as fh:
        fh.seek(200)
        fh.write(b"\x00\x01\x02")
    monkeypatch.setattr(emb, "HEADS_DIR", tmp_path)
    with pytest.raises(ModelIntegrityError):
        load_head("grocery_projection")


def test_fused_head_round_trips_in_half_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    head = ProjectionHead((HeadBlock(rng.normal(size=6).astype(np.float32), rng.normal(size=(6, 6)).astype(np.float32), 1.5),
                           HeadBlock(rng.normal(size=6).astype(np.float32), rng.normal(size=(6, 2)).astype(np.float32))))
    head.save(tmp_path / "h.npz", half=True)
    back = ProjectionHead.load(tmp_path / "h.npz")
    x = rng.normal(size=(4, 6)).astype(np.float32)
    assert back.dim_out == 8 and [b.weight for b in back.blocks] == [1.5, 1.0]
    assert np.allclose(back(x), head(x), atol=2e-3)
