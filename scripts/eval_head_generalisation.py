#!/usr/bin/env python3
"""Does a projection head help products it was NOT trained on? (the self-learning case)

Splits the GroceryStoreDataset classes in two halves (seed 1): heads are fitted on the train images of half A
only; k-shot retrieval is then measured on half B (gallery = k train images per B class, seed 0 as in
``store-agent eval products``; queries = the val images of B classes). Prints JSON for no head, LDA and
WCCN+LDA (the default), so the figures in docs/benchmarks.md can be re-run:

    .venv/bin/python scripts/eval_head_generalisation.py --data ../shared/data/grocery --model-dir ../shared/models
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.products.dataset import load_labelled  # noqa: E402
from agent.products.evaluate import shot_order  # noqa: E402
from models.embedders import ProjectionHead, l2_normalize, open_embedder  # noqa: E402
from models.head_fit import fit_lda, fit_wccn  # noqa: E402


def _embed(embedder, samples):  # noqa: ANN001, ANN202
    vecs, labels = [], []
    for path, label in samples:
        image = cv2.imread(str(path))
        if image is not None:
            vecs.append(embedder.backbone(image))
            labels.append(label)
    return l2_normalize(np.asarray(vecs)), labels


def _topk(gallery, g_labels, queries, q_labels, k):  # noqa: ANN001, ANN202
    classes = sorted(set(g_labels))
    order = shot_order(g_labels)
    idx = [i for c in classes for i in order[c][:k]]
    sims = queries @ gallery[idx].T
    lab = np.asarray(g_labels)[idx]
    per_class = np.stack([sims[:, lab == c].max(1) for c in classes], 1)
    ranked = np.asarray(classes)[np.argsort(-per_class, 1)]
    truth = np.asarray(q_labels)
    return {"top1": round(float((ranked[:, 0] == truth).mean()), 4),
            "top5": round(float((ranked[:, :5] == truth[:, None]).any(1).mean()), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--shots", default="1,5,20")
    args = ap.parse_args()
    embedder = open_embedder("mobilenet-v1-embedding", model_dir=args.model_dir, flip_tta=True)
    xtr, ytr = _embed(embedder, load_labelled(args.data, "train"))
    xva, yva = _embed(embedder, load_labelled(args.data, "val"))
    classes = sorted(set(ytr))
    perm = np.random.default_rng(1).permutation(len(classes))
    half_a = {classes[i] for i in perm[:len(classes) // 2]}
    in_a = np.array([y in half_a for y in ytr])
    index = {c: i for i, c in enumerate(classes)}
    ya = np.array([index[y] for y, keep in zip(ytr, in_a) if keep])
    xa = xtr[in_a]
    dim = len(half_a) - 1
    heads = {"none": None,
             "lda": ProjectionHead((fit_lda(xa, ya, dim, 0.1),)),
             "wccn+lda": ProjectionHead((fit_wccn(xa, ya, 0.1, 1.5), fit_lda(xa, ya, dim, 0.1)))}
    gb = ~in_a
    qb = np.array([y not in half_a for y in yva])
    g_labels = [y for y, keep in zip(ytr, gb) if keep]
    q_labels = [y for y, keep in zip(yva, qb) if keep]
    out = {"trained_on_classes": len(half_a), "evaluated_classes": len(set(g_labels)), "queries": len(q_labels),
           "heads": {}}
    for name, head in heads.items():
        g = xtr[gb] if head is None else head(xtr[gb])
        q = xva[qb] if head is None else head(xva[qb])
        out["heads"][name] = {k: _topk(g, g_labels, q, q_labels, int(k)) for k in args.shots.split(",")}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
