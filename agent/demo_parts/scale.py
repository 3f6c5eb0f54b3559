"""Demo part ``scale``: a self-service scale that recognises what is put on it and learns from the screen.

With ``--no-camera`` the part stands aside (like ``faces``).

1. ``prepare``: installs the product embedder and nine GroceryStoreDataset photos (sha256-verified, upstream or
   mirror ``<mirror>/data/grocery/…``), starts a pty-simulated MT-SICS scale, and adds ``[[scales]]``
   ``demo-scale`` on it whose tray camera (a disabled ``[[cameras]]`` entry, so no people analytics runs on it)
   is a still image that the part swaps to put another product on the scale.
2. ``exercise``: writes three articles to the price book (bananas, kiwi, red pepper), enrols bananas and kiwi
   (three photos each) like ``store-agent products learn`` does, then puts weights on the simulated scale; the
   agent's ``scale-demo-scale`` component turns them into ``stable`` events for the weighing service:
   a banana → candidates, the screen confirms the top one (learned); a red pepper, a product the gallery has
   never seen → not among the candidates, the screen picks it by hand (learned as its first photo); another red
   pepper → now recognised.
3. ``summary`` (key ``scale``): each weighing's candidates, chosen PLU and rank, stable→candidates ms; the
   service's counts (each confirmation queues events/weighing, each learned embedding events/product_learned).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from agent.demo_parts import DemoContext, wait_until

SCALE = "demo-scale"
ARTICLES = [
    {"plu": "4011", "name": "Bananas", "price": 1.99, "unit": "kg", "typical_weight_kg": [0.12, 0.25]},
    {"plu": "4030", "name": "Kiwi", "price": 0.45, "unit": "piece", "typical_weight_kg": [0.07, 0.11]},
    {"plu": "4088", "name": "Red bell pepper", "price": 3.49, "unit": "kg", "typical_weight_kg": [0.15, 0.3]},
]
ENROL = {"4011": ["train/Fruit/Banana/Banana_001.jpg", "train/Fruit/Banana/Banana_002.jpg",
                  "train/Fruit/Banana/Banana_003.jpg"],
         "4030": ["train/Fruit/Kiwi/Kiwi_001.jpg", "train/Fruit/Kiwi/Kiwi_002.jpg", "train/Fruit/Kiwi/Kiwi_003.jpg"]}
#: (photo on the tray, weight kg, what the screen confirms: "top" = the first candidate, or a PLU).
WEIGHINGS = [("val/Fruit/Banana/Banana_001.jpg", 0.482, "top"),
             ("train/Vegetables/Pepper/Red-Bell-Pepper/Red-Bell-Pepper_001.jpg", 0.214, "4088"),
             ("val/Vegetables/Pepper/Red-Bell-Pepper/Red-Bell-Pepper_001.jpg", 0.251, "top")]
WAIT_S = 20.0

_TOML = """
[products]
embedder = "{embedder}"
top_k = 3
aggregate_interval_s = 5

[[cameras]]
name = "{scale}-tray"
url = "{tray}"
enabled = false

[[scales]]
name = "{scale}"
port = "{port}"
protocol = "mt-sics"
poll_interval_s = 0.05
stable_window_s = 0.3
camera = "{scale}-tray"
"""




class ScalePart:
    """See the module doc."""

    name = "scale"

    def __init__(self) -> None:
        self.photos: dict[str, Path] = {}
        self.tray: Path | None = None
        self.sim: Any = None
        self.skipped = ""
        self.events: list[Any] = []
        self.weighings: list[dict[str, Any]] = []

    def prepare(self, ctx: DemoContext) -> str:
        if not getattr(ctx, "camera", True):
            self.skipped = "--no-camera (the scale's tray camera is a camera too)"
            return ""
        from devices.scale.sim import ScaleSimulator
        from models.product_samples import GROCERY_SAMPLES
        from models.registry import install

        embedder = install("mobilenet-v1-embedding", ctx.workdir / "models",
                           mirror=ctx.mirror / "models" if ctx.mirror else None)
        for path, spec in GROCERY_SAMPLES.items():
            self.photos[path] = install(spec, ctx.workdir / "media",
                                        mirror=ctx.mirror / "data" if ctx.mirror else None)
        self.tray = ctx.workdir / "media" / "tray.jpg"
        shutil.copy(self.photos[ENROL["4011"][0]], self.tray)
        self.sim = ScaleSimulator("mt-sics", link=ctx.workdir / "ttyUSB-scale", motion_jitter_kg=0.0)
        self.sim.start()
        ctx.say(f"scale      {SCALE}: simulated MT-SICS scale on {self.sim.path}, tray camera {self.tray.name} "
                f"({len(self.photos)} GroceryStoreDataset photos verified)")
        return _TOML.format(embedder=embedder, scale=SCALE, tray=self.tray, port=self.sim.path)

    def exercise(self, ctx: DemoContext) -> None:
        if self.skipped:
            return
        import cv2

        from agent.pricebook import PriceBook, article_from_dict
        from agent.products.gallery import Gallery
        from agent.products.store import GalleryRepository
        from sync.sqlite import transaction
        from agent.store import connect

        agent = ctx.agent
        assert agent is not None
        agent.scale_listeners.setdefault(SCALE, []).append(self.events.append)
        if not wait_until(lambda: agent.products.service is not None and agent.products.service.ready.is_set(), WAIT_S):
            ctx.errors.append("scale: the products component did not start")
            return
        service = agent.products.service
        conn = connect(agent.db_path)
        try:
            PriceBook(conn).upsert([article_from_dict(a) for a in ARTICLES])
            # Written like `store-agent products learn` does (own gallery, then the service reloads), so the
            # service's in-memory gallery only ever holds committed rows.
            repo = GalleryRepository(Gallery(service.recognizer.gallery.dim), service.repo.space)
            with transaction(conn):
                for plu, paths in ENROL.items():
                    for path in paths:
                        repo.enrol(conn, plu, service.recognizer.embed(cv2.imread(str(self.photos[path]))),
                                   source=f"photo:{Path(path).name}")
        finally:
            conn.close()
        service.reload_gallery()
        if not wait_until(lambda: len(service.recognizer.gallery) == len(repo.gallery), WAIT_S):
            ctx.errors.append("scale: the gallery was not reloaded")
        ctx.say(f"scale      gallery: bananas and kiwi, 3 photos each; red pepper is in the price book only")
        for photo, weight, choice in WEIGHINGS:
            self._weigh(ctx, service, photo, weight, choice)

    def _weigh(self, ctx: DemoContext, service: Any, photo: str, weight: float, choice: str) -> None:
        assert self.tray is not None
        shutil.copy(self.photos[photo], self.tray)
        before = service.counts["candidates"]
        self.sim.set_weight(weight)
        if not wait_until(lambda: service.counts["candidates"] > before, WAIT_S):
            ctx.errors.append(f"scale: no candidates for {Path(photo).name}")
            return
        shown = service.latest(SCALE)
        names = ", ".join(f"{c.get('name', c['plu'])} {c['score']:.2f}" for c in shown["candidates"])
        ctx.say(f"scale      {Path(photo).name} {weight:.3f} kg → candidates in "
                f"{shown['stable_to_candidates_ms']:.0f} ms: {names}")
        plu = shown["candidates"][0]["plu"] if choice == "top" else choice
        record = service.confirm({"weighing_id": shown["weighing_id"], "plu": plu})
        learned = record.get("learned") or {}
        ctx.say(f"scale      screen confirms {record['name']} (rank {record['chosen_rank'] or 'not shown'}), "
                f"total {record['total']}; learned: {learned.get('reason')}")
        self.weighings.append({"photo": Path(photo).name, "weight_kg": weight,
                               "candidates": [c["plu"] for c in shown["candidates"]],
                               "stable_to_candidates_ms": shown["stable_to_candidates_ms"], "chosen": plu,
                               "chosen_rank": record["chosen_rank"], "total": record["total"],
                               "learned": learned.get("reason")})
        removed = sum(e.kind == "removed" for e in self.events)
        self.sim.set_weight(0.0)
        wait_until(lambda: sum(e.kind == "removed" for e in self.events) > removed, WAIT_S)

    def summary(self, ctx: DemoContext) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        out: dict[str, Any] = {"weighings": self.weighings}
        agent = ctx.agent
        service = agent.products.service if agent is not None else None
        if service is not None:
            out["counts"] = {k: service.counts[k] for k in ("candidates", "confirmed", "learned")}
            out["gallery"] = len(service.recognizer.gallery) if service.recognizer else 0
        pepper = [w for w in self.weighings if w["chosen"] == "4088"]
        out["learned_new_product"] = len(pepper) == 2 and pepper[0]["chosen_rank"] is None and \
            pepper[1]["chosen_rank"] == 1
        return out

    def close(self) -> None:
        if self.sim is not None:
            self.sim.stop()
            self.sim = None
