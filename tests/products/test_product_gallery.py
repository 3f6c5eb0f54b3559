"""The product gallery: max-per-class search, dedupe, the per-PLU cap keeping diverse entries, persistence,
and weight plausibility re-ranking."""

from __future__ import annotations

import numpy as np
import pytest

from agent.products.gallery import Gallery
from agent.products.plausibility import implausibility, rerank
from agent.products.recognizer import Recognizer
from agent.products.store import GalleryRepository
from sync.sqlite import transaction
from agent.store import connect, open_store


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def test_search_scores_each_plu_by_its_best_entry_and_returns_distinct_plus() -> None:
    g = Gallery(3, cap_per_plu=5)
    g.add("apple", unit(1, 0, 0), uid="a1")
    g.add("apple", unit(0.9, 0.1, 0), uid="a2")
    g.add("pear", unit(0.6, 0.8, 0), uid="p1")
    g.add("kiwi", unit(0, 0, 1), uid="k1")
    found = g.search(unit(1, 0.05, 0), top_k=3)
    assert [c.plu for c in found] == ["apple", "pear", "kiwi"]
    assert [c.rank for c in found] == [1, 2, 3]
    q = unit(1, 0.05, 0)
    assert found[0].score == pytest.approx(max(float(q @ unit(1, 0, 0)), float(q @ unit(0.9, 0.1, 0))), abs=1e-4)
    assert found[0].score >= found[1].score >= found[2].score


def test_near_identical_images_are_not_added_twice() -> None:
    g = Gallery(3, dedupe_cosine=0.98)
    assert g.add("apple", unit(1, 0, 0), uid="a").reason == "added"
    assert g.add("apple", unit(1, 0.01, 0), uid="b").reason == "duplicate"
    assert g.add("pear", unit(1, 0.01, 0), uid="c").reason == "added"  # dedupe is per PLU
    assert g.count("apple") == 1 and len(g) == 2


def test_cap_replaces_the_most_redundant_entry_and_keeps_the_outlier() -> None:
    g = Gallery(3, cap_per_plu=3, dedupe_cosine=0.999)
    g.add("apple", unit(1, 0, 0), uid="front")
    g.add("apple", unit(1, 0.1, 0), uid="front-2")  # nearly the same view as "front"
    g.add("apple", unit(0, 1, 0), uid="side")
    result = g.add("apple", unit(0, 0, 1), uid="top")  # a new view: one of the two near-twins must go
    assert result.reason == "replaced" and result.removed in {"front", "front-2"}
    assert g.count("apple") == 3
    assert {"side", "top"} <= set(g.uids("apple"))
    # A vector that would be the most redundant of all is not added at all.
    redundant = g.add("apple", unit(0.02, 1, 0), uid="side-2")
    assert redundant.reason in {"redundant", "duplicate"} and not redundant.added
    assert g.count("apple") == 3 and "side" in g.uids("apple")


def test_remove_by_uid_and_by_plu() -> None:
    g = Gallery(2)
    g.add("a", unit(1, 0), uid="x")
    g.add("b", unit(0, 1), uid="y")
    assert g.remove(["x", "nope"]) == 1
    assert [c.plu for c in g.search(unit(1, 0), 5)] == ["b"]
    assert g.remove_plu("b") == ["y"] and g.search(unit(1, 0), 5) == []


def test_repository_persists_adds_and_replacements(tmp_path) -> None:  # noqa: ANN001
    conn = connect(open_store(tmp_path))
    repo = GalleryRepository(Gallery(3, cap_per_plu=2, dedupe_cosine=0.999), "space-a")
    with transaction(conn):
        repo.enrol(conn, "apple", unit(1, 0, 0), source="t", uid="u1")
        repo.enrol(conn, "apple", unit(1, 0.05, 0), source="t", uid="u2")
        result = repo.enrol(conn, "apple", unit(0, 1, 0), source="t", uid="u3")
    assert result.removed in {"u1", "u2"}
    assert GalleryRepository.counts(conn, "space-a") == {"apple": 2}
    fresh = GalleryRepository(Gallery(3, cap_per_plu=2), "space-a")
    assert fresh.load(conn) == 2 and set(fresh.gallery.uids()) == {"u3", ({"u1", "u2"} - {result.removed}).pop()}
    other = GalleryRepository(Gallery(3), "space-b")
    assert other.load(conn) == 0  # vectors of another embedding space are never mixed in
    conn.close()


def test_weight_plausibility_moves_an_implausible_plu_down() -> None:
    assert implausibility(0.2, (0.15, 0.25)) == 0.0
    assert implausibility(0.45, (0.15, 0.25)) == 0.0  # two pieces
    assert implausibility(0.05, (2.0, 8.0)) == 1.0
    assert 0 < implausibility(1.5, (2.0, 8.0)) < 1
    assert implausibility(0.05, None) == 0.0
    ranked = rerank([("melon", 0.80), ("apple", 0.78), ("kiwi", 0.5)], 0.2,
                    {"melon": (2.0, 8.0), "apple": (0.15, 0.25)}, max_penalty=0.2)
    assert [p for p, _ in ranked] == ["apple", "melon", "kiwi"]
    assert ranked[1][1] == pytest.approx(0.6)


def test_recognizer_reorders_candidates_by_weight_and_keeps_top_k() -> None:
    class Fixed:
        name = space = "fixed"
        dim = 2

        def embed(self, image: np.ndarray) -> np.ndarray:
            return unit(1, 0)

    g = Gallery(2)
    g.add("melon", unit(1, 0.05), uid="m")
    g.add("apple", unit(1, 0.2), uid="a")
    g.add("kiwi", unit(0, 1), uid="k")
    r = Recognizer(Fixed(), g, top_k=2, weight_penalty=0.3)
    vec = r.embed(np.zeros((8, 8, 3), np.uint8))
    assert [c.plu for c in r.rank(vec)] == ["melon", "apple"]
    reordered = r.rank(vec, weight_kg=0.2, piece_kg={"melon": (2.0, 8.0), "apple": (0.15, 0.25)})
    assert [c.plu for c in reordered] == ["apple", "melon"] and [c.rank for c in reordered] == [1, 2]
