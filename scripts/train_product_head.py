#!/usr/bin/env python3
"""Train the product projection head (regularised LDA) shipped as ``models/heads/grocery_projection.npz``.

The head is a linear map fitted with numpy/scipy on the **train** split only: backbone vectors of every train
image (flip-averaged, as the embedder computes them at run time), within-class scatter shrunk towards the identity
by ``--reg`` (fraction of its mean eigenvalue), top ``--dim`` generalised eigenvectors of (between, within).
Evaluate with ``store-agent eval products`` on the **val** split (gallery shots also come from train).

Reproduce the shipped file (GroceryStoreDataset, MIT, from ../shared/data/grocery):

    .venv/bin/python scripts/train_product_head.py --data ../shared/data/grocery --split train \\
        --model-dir ../shared/models --out models/heads/grocery_projection.npz

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
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.products.dataset import load_labelled  # noqa: E402
from models.embedders import ProjectionHead, l2_normalize, open_embedder  # noqa: E402


def fit_lda(x: np.ndarray, labels: np.ndarray, dim: int, reg: float) -> ProjectionHead:
    """Regularised LDA on unit vectors ``x`` (N, D) with integer ``labels`` (N,) → a (D, dim) head."""
    mean = x.mean(0)
    xc = x - mean
    d = x.shape[1]
    sw = np.zeros((d, d))
    sb = np.zeros((d, d))
    for c in np.unique(labels):
        xi = xc[labels == c]
        m = xi.mean(0)
        sw += (xi - m).T @ (xi - m)
        sb += len(xi) * np.outer(m, m)
    sw /= len(x)
    sb /= len(x)
    sw += reg * np.trace(sw) / d * np.eye(d)
    _, vecs = scipy.linalg.eigh(sb, sw)
    matrix = vecs[:, ::-1][:, :dim]
    matrix = matrix * np.sign(matrix[np.abs(matrix).argmax(0), np.arange(dim)])  # deterministic signs
    return ProjectionHead(mean=mean.astype(np.float32), matrix=matrix.astype(np.float32))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="GroceryStoreDataset root or folder-per-class tree")
    ap.add_argument("--split", default="train", help="split file of a GroceryStoreDataset root")
    ap.add_argument("--model", default="mobilenet-v1-embedding", help="registry name or model file")
    ap.add_argument("--model-dir", type=Path, required=True, help="where the model is installed (or a mirror)")
    ap.add_argument("--dim", type=int, default=80)
    ap.add_argument("--reg", type=float, default=0.1)
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
    head = fit_lda(x, np.asarray(labels), dim, args.reg)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out, classes=np.asarray(classes), backbone=np.asarray(embedder.name),
              reg=np.float32(args.reg))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{len(x)} images, {len(classes)} classes, {x.shape[1]}→{dim} dims in {time.monotonic() - t0:.1f} s")
    print(f"wrote {args.out} sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
