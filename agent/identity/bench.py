"""``store-agent bench identity``: faiss gallery search latency with synthetic identities and the per-face
detect + align + embed time.

Search: ``sizes`` galleries of random unit vectors (one per synthetic identity, the embedder's dimension) in the
identity service's :class:`~agent.identity.gallery.FaissGallery` (exact below ``ann_min_size``, IVF above, as in
production); queries are enrolled vectors plus noise (cosine ≈ 0.7 to their source, like a new photo of an
enrolled person), searched one at a time (k = 1) as the pipeline does; the figure is the mean latency per query.
``recall_at_1`` (the source identity found) is reported next to it, so a fast but wrong index shows.

Face pipeline: the mean time per photo of :meth:`FacePipeline.embed_photo` (YuNet on a head-sized image, quality
measures, 5-point alignment, embedding) over photos from a face folder, or over head crops of a video.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.identity.pipeline import FacePipeline

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def bench_search(size: int, dim: int = 128, *, queries: int = 200, ann_min_size: int = 50_000, nprobe: int = 32,
                 seed: int = 7) -> dict[str, Any]:
    """Mean ms per single query and recall@1 on a gallery of ``size`` synthetic identities."""
    from agent.identity.gallery import FaissGallery

    rng = np.random.default_rng(seed)
    gallery = FaissGallery(dim, ann_min_size=ann_min_size, nprobe=nprobe)
    t0 = time.perf_counter()
    chunk = 200_000
    for start in range(0, size, chunk):
        n = min(chunk, size - start)
        gallery.add(np.arange(start, start + n, dtype=np.int64), _unit(rng, n, dim))
    build_s = time.perf_counter() - t0
    targets = rng.choice(size, size=queries, replace=False)
    # Re-generate the targets' vectors deterministically: draw them again from the same stream is not possible,
    # so read them back through a search-free path: a fresh RNG with the same seed reproduces the chunks.
    rng2 = np.random.default_rng(seed)
    source = np.empty((queries, dim), np.float32)
    for start in range(0, size, chunk):
        n = min(chunk, size - start)
        block = _unit(rng2, n, dim)
        mask = (targets >= start) & (targets < start + n)
        source[mask] = block[targets[mask] - start]
    noise = _unit(rng, queries, dim)
    q = 0.7 * source + 0.714 * noise  # cos(q, source) ≈ 0.7
    for i in range(min(10, queries)):  # warm-up (thread pool, caches)
        gallery.search(q[i:i + 1], k=1)
    found = np.empty(queries, np.int64)
    t0 = time.perf_counter()
    for i in range(queries):
        _, labels = gallery.search(q[i:i + 1], k=1)
        found[i] = labels[0, 0]
    per_query_ms = 1000 * (time.perf_counter() - t0) / queries
    return {"ms": round(per_query_ms, 3), "recall_at_1": round(float(np.mean(found == targets)), 4),
            "index": gallery.kind, "build_s": round(build_s, 1)}


def photos_for_bench(directory: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` decoded photos from a folder-per-identity directory (round-robin over identities)."""
    folders = sorted(p for p in Path(directory).iterdir() if p.is_dir())
    lists = [sorted(f.glob("*.jpg")) + sorted(f.glob("*.png")) for f in folders]
    out: list[np.ndarray] = []
    depth = 0
    while len(out) < limit and any(depth < len(lst) for lst in lists):
        for lst in lists:
            if depth < len(lst) and len(out) < limit:
                image = cv2.imread(str(lst[depth]))
                if image is not None:
                    out.append(image)
        depth += 1
    return out


def head_crops_from_video(path: Path, pipeline: FacePipeline, limit: int = 100, grow: float = 2.2) -> list[np.ndarray]:
    """Head-region crops (each face box grown ``grow`` times, like a tracked person's head region) from a video."""
    from agent.vision.replay import frames_from_file
    from agent.vision.snapshots import grow_boxes

    crops: list[np.ndarray] = []
    for frame in frames_from_file(Path(path)):
        image = frame.image
        faces = pipeline.detector.detect(image)
        for x1, y1, x2, y2 in grow_boxes(faces.boxes, grow, (image.shape[1], image.shape[0])):
            if x2 - x1 >= 16 and y2 - y1 >= 16:
                crops.append(image[y1:y2, x1:x2].copy())
        if len(crops) >= limit:
            break
    return crops[:limit]


def bench_face_pipeline(pipeline: FacePipeline, images: list[np.ndarray], repeat: int = 2) -> dict[str, Any]:
    """Mean ms per face (detect + quality + align + embed) over ``images``, after one warm-up."""
    if not images:
        raise ValueError("no images to benchmark the face pipeline on")
    pipeline.embed_photo(images[0])
    faces = 0
    t0 = time.perf_counter()
    for _ in range(repeat):
        for image in images:
            faces += pipeline.embed_photo(image) is not None
    elapsed = time.perf_counter() - t0
    return {"ms": round(1000 * elapsed / max(1, faces), 2), "faces": faces}


def run_identity_bench(pipeline: FacePipeline, images: list[np.ndarray], *, sizes: tuple[int, ...] = DEFAULT_SIZES,
                       dim: int = 128, queries: int = 200, ann_min_size: int = 50_000,
                       nprobe: int = 32) -> dict[str, Any]:
    """The ``bench identity`` figures; ``details`` holds recall, index kind and build time per size."""
    search = {str(n): bench_search(n, dim, queries=queries, ann_min_size=ann_min_size, nprobe=nprobe)
              for n in sizes}
    face = bench_face_pipeline(pipeline, images)
    return {"search_ms": {k: v["ms"] for k, v in search.items()}, "face_pipeline_ms": face["ms"],
            "details": {"search": search, "faces_timed": face["faces"], "dim": dim}}
