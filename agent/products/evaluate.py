"""``store-agent eval products``: k-shot product retrieval accuracy and the self-learning curve.

Protocol (stated in docs/scale.md):

- gallery: for each shot count ``k``, the first ``k`` images of each class in a fixed shuffled order (seed 0) of
  the gallery set (GroceryStoreDataset: the **train** split), enrolled as they are (no dedupe); the nested
  selection means the 5-shot gallery contains the 1-shot one;
- queries: every image of the query set (GroceryStoreDataset: the **val** split); top-1 / top-5 by max-per-class
  cosine; a query whose class has no gallery image counts as a miss;
- ``ms_per_query``: embedding (crop, inference, head) plus gallery search, per query;
- ``--learn``: start from the smallest shot count's gallery and process the queries in a fixed shuffled order
  (seed 0; the split files are sorted by class; ``--order file`` keeps the file order); after each prediction the query is "confirmed" with its true
  label and goes through the same add path as a confirmed weighing (dedupe + per-PLU cap). The curve reports
  accuracy per block of queries and cumulatively.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.products.dataset import Sample, load_labelled
from agent.products.gallery import Gallery
from models.embedders import Embedder

SEED = 0
CURVE_POINTS = 8


def _embed_all(embedder: Embedder, samples: Sequence[Sample]) -> tuple[np.ndarray, list[str], list[float]]:
    vectors, labels, ms = [], [], []
    for path, label in samples:
        image = cv2.imread(str(path))
        if image is None:
            continue
        t0 = time.perf_counter()
        vectors.append(embedder.embed(image))
        ms.append((time.perf_counter() - t0) * 1000)
        labels.append(label)
    if not vectors:
        return np.zeros((0, embedder.dim), np.float32), labels, ms
    return np.stack(vectors).astype(np.float32), labels, ms


def shot_order(labels: Sequence[str], seed: int = SEED) -> dict[str, list[int]]:
    """Indices of each class's samples in a fixed shuffled order (nested k-shot selections)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    return {c: [idx[j] for j in rng.permutation(len(idx))] for c, idx in sorted(by_class.items())}


def _build(vectors: np.ndarray, labels: Sequence[str], order: dict[str, list[int]], shots: int, cap: int,
           dedupe: float) -> Gallery:
    gallery = Gallery(vectors.shape[1], cap_per_plu=max(cap, shots), dedupe_cosine=dedupe)
    for label, idx in order.items():
        for i in idx[:shots]:
            gallery.add(label, vectors[i], uid=f"g{i}", force=True)
    return gallery


def _score(gallery: Gallery, queries: np.ndarray, labels: Sequence[str]) -> tuple[float, float, float]:
    top1 = top5 = 0
    t0 = time.perf_counter()
    for vec, label in zip(queries, labels):
        plus = [c.plu for c in gallery.search(vec, 5)]
        top1 += bool(plus) and plus[0] == label
        top5 += label in plus
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(labels))
    n = max(1, len(labels))
    return top1 / n, top5 / n, ms


def learning_curve(gallery: Gallery, queries: np.ndarray, labels: Sequence[str], *, points: int = CURVE_POINTS,
                   seed: int = SEED, shuffle: bool = True) -> list[dict[str, Any]]:
    """Predict-then-confirm each query (in a shuffled order, or the given one); accuracy per block and
    cumulative."""
    order = np.random.default_rng(seed).permutation(len(labels)) if shuffle else np.arange(len(labels))
    blocks = np.array_split(order, min(points, len(order))) if len(order) else []
    curve: list[dict[str, Any]] = []
    seen = hit1 = hit5 = 0
    for block in blocks:
        b1 = b5 = 0
        for i in block:
            plus = [c.plu for c in gallery.search(queries[i], 5)]
            b1 += bool(plus) and plus[0] == labels[i]
            b5 += labels[i] in plus
            gallery.add(labels[i], queries[i], uid=f"q{i}")
        seen += len(block)
        hit1 += b1
        hit5 += b5
        curve.append({"queries": seen, "top1": round(b1 / len(block), 4), "top5": round(b5 / len(block), 4),
                      "cumulative_top1": round(hit1 / seen, 4), "cumulative_top5": round(hit5 / seen, 4),
                      "gallery_size": len(gallery)})
    return curve


def evaluate_products(embedder: Embedder, gallery_dir: Path, query_dir: Path, *, shots: Sequence[int],
                      gallery_split: str | None = "train", query_split: str | None = "val", learn: bool = False,
                      cap_per_plu: int = 20, dedupe_cosine: float = 0.97, shuffle: bool = True,
                      progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The ``eval products`` result (keys: classes, queries, shots, learning_curve, plus the protocol)."""
    if not shots or any(k <= 0 for k in shots):
        raise ValueError("shots must be positive integers, e.g. 1,5,20")
    gallery_samples = load_labelled(gallery_dir, gallery_split)
    query_samples = load_labelled(query_dir, query_split)
    order_all = shot_order([label for _, label in gallery_samples])
    needed = sorted({i for idx in order_all.values() for i in idx[:max(shots)]})
    if progress:
        progress(f"embedding {len(needed)} gallery and {len(query_samples)} query images")
    g_vec, g_lab, _ = _embed_all(embedder, [gallery_samples[i] for i in needed])
    q_vec, q_lab, q_ms = _embed_all(embedder, query_samples)
    order = shot_order(g_lab)
    embed_ms = float(np.mean(q_ms)) if q_ms else 0.0
    result: dict[str, Any] = {"classes": len(order), "queries": len(q_lab), "shots": {}}
    for k in sorted(set(shots)):
        gallery = _build(g_vec, g_lab, order, k, cap_per_plu, dedupe_cosine)
        top1, top5, search_ms = _score(gallery, q_vec, q_lab)
        result["shots"][str(k)] = {"top1": round(top1, 4), "top5": round(top5, 4),
                                   "ms_per_query": round(embed_ms + search_ms, 2)}
    result["learning_curve"] = []
    if learn:
        start = min(shots)
        gallery = _build(g_vec, g_lab, order, start, cap_per_plu, dedupe_cosine)
        gallery.cap_per_plu = cap_per_plu
        result["learning_curve"] = learning_curve(gallery, q_vec, q_lab, shuffle=shuffle)
        result["learning_start_shots"] = start
        result["learning_order"] = "shuffled" if shuffle else "file"
    result["embedder"] = str(getattr(embedder, "space", embedder.name))
    result["query_classes"] = len(set(q_lab))
    return result
