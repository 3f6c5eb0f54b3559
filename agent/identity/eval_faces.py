"""``store-agent eval faces DIR``: verification, identification and open-set figures on folder-per-identity photos.

Each image's face nearest the image centre (LFW convention) is detected, aligned and embedded in memory; nothing
is written. Metrics (cosine similarity of unit embeddings):

- ``tar_at_far_1e-2`` / ``tar_at_far_1e-3``: over ALL genuine (same identity) and impostor (different identities)
  pairs, the threshold is the smallest score at which at most that fraction of impostor pairs score above it;
  TAR is the fraction of genuine pairs above it.
- ``rank1``: gallery = the first photo (name order) of each identity; every other photo is a probe; correct when
  its most similar gallery photo is of the same identity.
- ``open_set_false_accept``: every third identity (name order, starting with the second) is left out of the
  gallery; the fraction of those people's photos whose best gallery similarity reaches ``threshold`` (the
  configured ``identity.match_threshold``) — a stranger taken for someone enrolled.
- ``ms_per_face``: mean detect + align + embed time per photo.

Photos without a detectable face count in ``images`` but not in the metrics (they are logged).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.identity.pipeline import FacePipeline

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_identities(directory: Path) -> dict[str, list[Path]]:
    """``{identity: [photo, ...]}`` from one sub-folder per identity (name order; empty folders dropped)."""
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in Path(directory).iterdir() if p.is_dir()):
        photos = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            out[sub.name] = photos
    if not out:
        raise ValueError(f"{directory}: no identity folders with photos ({', '.join(IMAGE_SUFFIXES)})")
    return out


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, threshold) at false-accept rate ``far``: the threshold lets at most ``far`` of impostors score above.

    Example:
        >>> tar_at_far(np.array([0.9, 0.8, 0.3]), np.linspace(0, 0.5, 101), 0.01)
        (0.6667, 0.495)
    """
    imp = np.sort(np.asarray(impostor, np.float64))[::-1]
    if len(imp) == 0 or len(genuine) == 0:
        return float("nan"), float("nan")
    k = int(np.floor(far * len(imp)))
    threshold = float(imp[min(k, len(imp) - 1)])
    return round(float(np.mean(np.asarray(genuine) > threshold)), 4), round(threshold, 4)


def pair_scores(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of all genuine and all impostor pairs (i < j) of (N, D) unit embeddings with (N,) labels."""
    sims = embeddings @ embeddings.T
    iu = np.triu_indices(len(labels), k=1)
    same = labels[iu[0]] == labels[iu[1]]
    scores = sims[iu]
    return scores[same], scores[~same]


def rank1_and_open_set(embeddings: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Rank-1 identification (all identities enrolled with their first photo) and the open-set false-accept rate
    (every third identity left out); see the module doc."""
    first = np.array([int(np.nonzero(labels == lab)[0][0]) for lab in np.unique(labels)])
    probes = np.setdiff1d(np.arange(len(labels)), first)
    sims = embeddings[probes] @ embeddings[first].T
    rank1 = float(np.mean(labels[first][np.argmax(sims, axis=1)] == labels[probes])) if len(probes) else float("nan")
    identities = np.unique(labels)
    unknown = identities[1::3]
    known_first = first[~np.isin(labels[first], unknown)]
    strangers = np.nonzero(np.isin(labels, unknown))[0]
    if len(strangers) == 0 or len(known_first) == 0:
        return round(rank1, 4), float("nan")
    best = (embeddings[strangers] @ embeddings[known_first].T).max(axis=1)
    return round(rank1, 4), round(float(np.mean(best >= threshold)), 4)


def evaluate_faces(directory: Path, pipeline: FacePipeline, threshold: float) -> dict[str, Any]:
    """Run the whole evaluation; returns the ``eval faces --json`` object."""
    identities = list_identities(directory)
    embeddings, labels, times = [], [], []
    images = no_face = 0
    for index, (_, photos) in enumerate(identities.items()):
        for photo in photos:
            image = cv2.imread(str(photo))
            images += 1
            if image is None:
                no_face += 1
                continue
            t0 = time.perf_counter()
            result = pipeline.embed_photo(image)
            times.append(time.perf_counter() - t0)
            if result is None:
                no_face += 1
                continue
            embeddings.append(result[0])
            labels.append(index)
    if no_face:
        log.warning("eval faces: %d of %d photos without a detectable face", no_face, images)
    if len(embeddings) < 2:
        raise ValueError(f"{directory}: fewer than two photos with a detectable face")
    emb = np.stack(embeddings).astype(np.float32)
    lab = np.asarray(labels)
    genuine, impostor = pair_scores(emb, lab)
    tar2, _ = tar_at_far(genuine, impostor, 1e-2)
    tar3, _ = tar_at_far(genuine, impostor, 1e-3)
    rank1, open_set = rank1_and_open_set(emb, lab, threshold)
    out = {"identities": len(identities), "images": images, "tar_at_far_1e-2": tar2, "tar_at_far_1e-3": tar3,
           "rank1": rank1, "open_set_false_accept": open_set, "threshold": threshold,
           "ms_per_face": round(1000 * float(np.mean(times)), 2)}
    # A figure without pairs to measure (e.g. one photo per identity) is null: NaN is not valid JSON.
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in out.items()}
