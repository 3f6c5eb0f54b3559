"""``store-agent products learn``: enrol a product from photos into the local gallery.

Each readable image is embedded with the configured embedder and added under the PLU (dedupe + per-PLU cap,
as for a confirmed weighing); each added embedding queues ``events/product_learned`` so the cloud can share
it. A running agent notices the new rows within a few seconds and reloads its gallery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from agent.products.commands import encode_vector
from agent.products.dataset import images_in
from agent.products.gallery import Gallery
from agent.products.store import GalleryRepository
from sync.sqlite import transaction
from agent.store import connect, open_store
from sync.outbox import Outbox, OutboxItem


def enrol_images(cfg: Any, plu: str, folder: Path, *, embedder: Any) -> dict[str, Any]:
    """Embed the photos under ``folder`` and add them under ``plu``; returns counts."""
    plu = plu.strip()
    if not plu or len(plu) > 64:
        raise ValueError("--plu must be 1-64 characters")
    paths = images_in(folder)
    if not paths:
        raise ValueError(f"no images under {folder}")
    db_path = open_store(cfg.data_dir)
    space = str(getattr(embedder, "space", embedder.name))
    repo = GalleryRepository(Gallery(embedder.dim, cap_per_plu=cfg.products.cap_per_plu,
                                     dedupe_cosine=cfg.products.dedupe_cosine), space)
    outbox = Outbox(db_path, store_id=cfg.store_id, boot_id="cli", priority_for=cfg.sync.priority_for,
                    connect=connect)
    conn = connect(db_path)
    counts = {"added": 0, "replaced": 0, "duplicates": 0, "unreadable": 0}
    try:
        repo.load(conn, plu=plu)
        for path in paths:
            image = cv2.imread(str(path))
            if image is None:
                counts["unreadable"] += 1
                continue
            vector = embedder.embed(image)
            with transaction(conn):
                result = repo.enrol(conn, plu, vector, source=f"photo:{path.name}")
                if result.added and cfg.products.share_learned:
                    outbox.enqueue_in(conn, [OutboxItem("events/product_learned", {
                        "space": space, "plu": plu, "uid": result.uid, "replaced": result.removed,
                        "vector": encode_vector(vector), "source": "enrolment"})])
            if result.added:
                counts["added"] += 1
                counts["replaced"] += bool(result.removed)
            else:
                counts["duplicates"] += 1
        counts["plu_entries"] = repo.gallery.count(plu)
    finally:
        conn.close()
        outbox.close()
    return {"plu": plu, "space": space, "images": len(paths), **counts}
