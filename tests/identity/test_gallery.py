"""The faiss gallery: exact and IVF agree on the top-1 of a synthetic gallery; removal; switching index type."""

from __future__ import annotations

import numpy as np
import pytest

from agent.identity.gallery import FaissGallery

DIM = 128


def _identities(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _faces_of(base: np.ndarray, seed: int, noise: float = 0.8) -> np.ndarray:
    g = np.random.default_rng(seed).standard_normal(base.shape).astype(np.float32)
    unit = base / np.linalg.norm(base, axis=1, keepdims=True)
    return unit + noise * g / np.linalg.norm(g, axis=1, keepdims=True)


def test_exact_and_ivf_agree_on_top1() -> None:
    n = 30_000
    base = _identities(n)
    exact = FaissGallery(DIM, ann_min_size=10**8)
    ann = FaissGallery(DIM, ann_min_size=5_000, nprobe=32)
    for g in (exact, ann):
        g.add(np.arange(n), base)
    assert exact.kind == "exact" and ann.kind == "ivf" and len(ann) == n
    probes = np.random.default_rng(1).choice(n, 400, replace=False)
    queries = _faces_of(base[probes], 2)
    s_exact, l_exact = exact.search(queries, k=1)
    s_ann, l_ann = ann.search(queries, k=1)
    assert (l_exact[:, 0] == probes).mean() == 1.0  # the exact index finds every synthetic identity
    assert (l_ann[:, 0] == l_exact[:, 0]).mean() >= 0.95
    same = l_ann[:, 0] == l_exact[:, 0]
    np.testing.assert_allclose(s_ann[same, 0], s_exact[same, 0], atol=1e-5)


@pytest.mark.parametrize("ann_min_size", [10**8, 2_000])
def test_remove_and_empty_results(ann_min_size: int) -> None:
    g = FaissGallery(DIM, ann_min_size=ann_min_size)
    scores, labels = g.search(_identities(1, 5), k=2)
    assert labels.tolist() == [[-1, -1]] and np.isneginf(scores).all()
    base = _identities(3000, 3)
    g.add(np.arange(100, 3100), base)
    assert g.search(base[:1], k=1)[1][0, 0] == 100
    assert g.remove([100, 101, 99999]) == 2
    assert g.search(base[:1], k=1)[1][0, 0] != 100
    g.remove(np.arange(102, 3000))
    assert g.kind == "exact" and len(g) == 100  # shrank below half the threshold: back to exact
    with pytest.raises(ValueError):
        g.add(np.arange(2), np.ones((2, DIM + 1), np.float32))
