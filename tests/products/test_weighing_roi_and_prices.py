"""A weighing embeds only the configured tray region of the camera image, and its prices come from the shared
price book as changed by signed ``price.update`` commands (the ESL side's command, through the real processor)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.config import SyncConfig
from agent.config.products_models import ProductsConfig
from agent.pricebook import register_pricebook
from agent.products.gallery import Gallery
from agent.products.rig import SimulatedScale
from agent.products.service import WeighingService
from agent.products.store import GalleryRepository
from sync.sqlite import transaction
from agent.store import connect, open_store
from sync.cloud.commands import build_command
from sync.commands import CommandProcessor
from sync.outbox import Outbox
from sync.signing import generate_keypair, load_public_key


class _Recording:
    """Delegates to the real embedder and remembers the shape of every image it was given."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.shapes = inner, []
        self.name, self.dim, self.space = inner.name, inner.dim, inner.space

    def embed(self, image: np.ndarray) -> np.ndarray:
        self.shapes.append(image.shape)
        return self.inner.embed(image)


def _wait(cond: Any, timeout: float = 8.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_tray_roi_is_embedded_and_prices_follow_price_update(tmp_path: Path, grocery: Path,
                                                              embedder) -> None:  # noqa: ANN001
    db_path = open_store(tmp_path / "data")
    key, pub = generate_keypair()
    outbox = Outbox(db_path, store_id="s1", boot_id="b", priority_for=SyncConfig().priority_for, connect=connect)
    processor = CommandProcessor(outbox, store_id="s1", trusted_keys={"k": load_public_key(pub)})
    register_pricebook(processor)

    def price_update(version: int, banana_price: float) -> None:
        body = {"version": version, "effective_at": None, "delete": [],
                "upsert": [{"plu": "4011", "name": "Bananas", "price": banana_price, "unit": "kg"},
                           {"plu": "4030", "name": "Kiwi", "price": 0.5, "unit": "piece",
                            "typical_weight_kg": [0.07, 0.11]}]}
        out = processor.process(json.dumps(build_command("price.update", "s1", body, key=key, key_id="k")).encode(),
                                "price.update")
        assert out.status == "applied", out

    price_update(1, 1.99)
    # Left half of the tray image: a kiwi; right half (the configured tray region): bananas.
    kiwi = cv2.imread(str(grocery / "val/Fruit/Kiwi/Kiwi_001.jpg"))
    banana = cv2.imread(str(grocery / "val/Fruit/Banana/Banana_001.jpg"))
    tray = tmp_path / "tray.png"
    cv2.imwrite(str(tray), np.hstack([cv2.resize(kiwi, (320, 360)), cv2.resize(banana, (320, 360))]))

    recording = _Recording(embedder)
    conn = connect(db_path)
    repo = GalleryRepository(Gallery(embedder.dim), embedder.space)
    with transaction(conn):
        for plu, rel in (("4011", "train/Fruit/Banana"), ("4030", "train/Fruit/Kiwi")):
            for path in sorted((grocery / rel).glob("*.jpg"))[:3]:
                repo.enrol(conn, plu, embedder.embed(cv2.imread(str(path))), source="test")
    conn.close()
    cfg = ProductsConfig(cameras=[{"scale": "s1", "url": str(tray), "roi": (0.5, 0.0, 1.0, 1.0)}], top_k=2)
    service = WeighingService(cfg, db_path=db_path, outbox=outbox, model_dir=tmp_path, embedder=recording)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    assert service.ready.wait(30)
    try:
        with SimulatedScale(service.on_scale_event, scale="s1") as rig:
            rig.place(0.5)
            assert _wait(lambda: service.counts["candidates"] == 1)
            first = service.latest("s1")
            assert recording.shapes[-1][:2] == (360, 320)  # only the right half was embedded
            assert first["candidates"][0]["plu"] == "4011"
            top = first["candidates"][0]
            assert top["unit_price"] == 1.99 and top["total"] == round(1.99 * 0.5, 2)

            price_update(2, 2.49)
            seq = rig.last_seq
            rig.clear()
            assert rig.wait_for("removed", after=seq, timeout=5) is not None
            assert _wait(lambda: service.latest("s1") is None)  # the emptied tray's screen shows no old choices
            rig.place(0.4)
            assert _wait(lambda: service.counts["candidates"] == 2)
            second = service.latest("s1")
            assert second["candidates"][0]["plu"] == "4011" and second["candidates"][0]["unit_price"] == 2.49
            price_update(3, 2.99)  # between the screen showing 2.49 and the customer's tap
            record = service.confirm({"weighing_id": second["weighing_id"], "plu": "4011"})
            shown = second["candidates"][0]["total"]
            assert record["unit_price"] == 2.49 and record["total"] == shown == round(2.49 * 0.4, 2)
            assert record["chosen_rank"] == 1 and record["name"] == "Bananas"
        assert service.counts["errors"] == 0
    finally:
        stop.set()
        worker.join(10)
        outbox.close()
