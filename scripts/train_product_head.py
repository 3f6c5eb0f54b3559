#!/usr/bin/env python3
"""Train the product projection heads shipped in ``models/heads/`` (numpy/scipy, no deep-learning framework).

Fitted on the **train** split only, from the backbone vectors of every train image (flip-averaged, as the
embedder computes them at run time). Within-class scatter is shrunk towards the identity by ``--reg`` (a
fraction of its mean eigenvalue).

- ``--kind lda``: regularised LDA, top ``--dim`` generalised eigenvectors of (between, within) — best on the
  products it was trained on, worse than no head on unseen ones;
- ``--kind wccn+lda`` (default head): within-class covariance normalisation (whitening of the within-class
  scatter, full rank: it suppresses nuisance variation — light, background, hands — and generalises to unseen
  products) fused with the LDA block; ``--wccn-weight`` sets their balance.

Evaluate with ``store-agent eval products`` on the **val** split (gallery shots also come from train).
Reproduce the shipped files (GroceryStoreDataset, MIT, from ../shared/data/grocery):

    .venv/bin/python scripts/train_product_head.py --data ../shared/data/grocery --split train \\
        --model-dir ../shared/models --kind lda --out models/heads/grocery_projection.npz
    .venv/bin/python scripts/train_product_head.py --data ../shared/data/grocery --split train \\
        --model-dir ../shared/models --kind wccn+lda --out models/heads/grocery_wccn_lda.npz

It accepts a folder-per-class tree too (e.g. photos of a chain's own assortment): a head only helps the products
it was trained on (see docs/scale.md, "What limits accuracy").
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.products.dataset import load_labelled  # noqa: E402
from models.embedders import ProjectionHead, l2_normalize, open_embedder  # noqa: E402
from models.head_fit import fit_lda, fit_wccn  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="GroceryStoreDataset root or folder-per-class tree")
    ap.add_argument("--split", default="train", help="split file of a GroceryStoreDataset root")
    ap.add_argument("--model", default="mobilenet-v1-embedding", help="registry name or model file")
    ap.add_argument("--model-dir", type=Path, required=True, help="where the model is installed (or a mirror)")
    ap.add_argument("--dim", type=int, default=80)
    ap.add_argument("--reg", type=float, default=0.1)
    ap.add_argument("--kind", choices=("lda", "wccn+lda"), default="wccn+lda")
    ap.add_argument("--wccn-weight", type=float, default=1.5, help="weight of the WCCN block (LDA block: 1)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    samples = load_labelled(args.data, args.split)
    classes = sorted({label for _, label in samples})
    index = {c: i for i, c in enumerate(classes)}
    embedder = open_embedder(args.model, model_dir=args.model_dir, flip_tta=True)
    t0 = time.monotonic()
    vectors, labels = [], []
    for path, label in samples:
        image = cv2.imread(str(path))
        if image is None:
            print(f"skipping unreadable {path}", file=sys.stderr)
            continue
        vectors.append(embedder.backbone(image))
        labels.append(index[label])
    x = l2_normalize(np.asarray(vectors))
    dim = min(args.dim, len(classes) - 1)
    y = np.asarray(labels)
    if args.kind == "lda":
        head = ProjectionHead((fit_lda(x, y, dim, args.reg),))
    else:
        head = ProjectionHead((fit_wccn(x, y, args.reg, args.wccn_weight), fit_lda(x, y, dim, args.reg)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out, half=args.kind != "lda", classes=np.asarray(classes), backbone=np.asarray(embedder.name),
              reg=np.float32(args.reg))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{len(x)} images, {len(classes)} classes, {x.shape[1]}→{head.dim_out} dims in "
          f"{time.monotonic() - t0:.1f} s")
    print(f"wrote {args.out} sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
