"""End to end: a pty-simulated scale places a weight, the tray camera is a photo of the product, the top-k
arrive on the local topic of a real mosquitto, a confirmation (HTTP and local bus) is recorded in SQLite, the
embedding is learned and queued as events/product_learned, and the interval aggregate is queued."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import pytest

from agent.config.products_models import ProductsConfig
from agent.pricebook import Article, PriceBook
from agent.products.rig import SimulatedScale
from agent.products.service import WeighingService
from agent.products.gallery import Gallery
from agent.products.store import GalleryRepository
from sync.sqlite import transaction
from agent.store import connect, open_store
from sync.local_bus import LocalBus
from sync.outbox import Outbox
from tests.support.mosquitto import free_port

PREFIX = "store/s1/local"
ENROL = {"4011": "train/Fruit/Banana", "4030": "train/Fruit/Kiwi", "4053": "train/Fruit/Lemon"}


def _http(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _outbox(conn, stream: str) -> list[dict]:  # noqa: ANN001
    rows = conn.execute("SELECT body FROM outbox WHERE stream = ? ORDER BY id", (stream,)).fetchall()
    out = []
    for (body,) in rows:
        data = json.loads(body)
        out.append(data.get("body", data) if isinstance(data, dict) and "body" in data else data)
    return out


@pytest.fixture
def stack(tmp_path: Path, grocery: Path, embedder, mosquitto, mqtt_client_factory):  # noqa: ANN001, ANN201
    db_path = open_store(tmp_path / "data")
    conn = connect(db_path)
    PriceBook(conn).upsert([Article(plu="4011", name="Bananas", price=1.99, unit="kg", typical_weight_kg=(0.12, 0.25)),
                            Article(plu="4030", name="Kiwi", price=0.5, unit="piece", typical_weight_kg=(0.07, 0.11)),
                            Article(plu="4053", name="Lemons", price=2.49, unit="kg")])
    tray = tmp_path / "tray.jpg"
    shutil.copy(grocery / "val/Fruit/Banana/Banana_001.jpg", tray)
    port = free_port()
    cfg = ProductsConfig(cameras=[{"scale": "s1", "url": str(tray)}], http_port=port, top_k=3,
                         aggregate_interval_s=3600)
    watcher = mqtt_client_factory("screen").connect("127.0.0.1", mosquitto.port)
    watcher.subscribe(f"{PREFIX}/#")
    bus = LocalBus("127.0.0.1", mosquitto.port, client_id="agent-local", topic_prefix=PREFIX)
    bus.start()
    outbox = Outbox(db_path, store_id="s1", boot_id="b", priority_for=lambda s: 1, connect=connect)
    service = WeighingService(cfg, db_path=db_path, outbox=outbox, model_dir=Path("/nonexistent"),
                              local_bus=bus, embedder=embedder)
    repo = GalleryRepository(Gallery(embedder.dim), embedder.space)
    with transaction(conn):
        for plu, rel in ENROL.items():
            for path in sorted((grocery / rel).glob("*.jpg"))[:3]:
                repo.enrol(conn, plu, embedder.embed(cv2.imread(str(path))), source="test")
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    assert service.ready.wait(30)
    assert len(service.recognizer.gallery) == 9
    deadline = time.monotonic() + 5
    while not bus.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    rig = SimulatedScale(service.on_scale_event, scale="s1", protocol="mt-sics").start()
    yield {"service": service, "conn": conn, "watcher": watcher, "rig": rig, "tray": tray, "port": port,
           "stop": stop, "worker": worker}
    rig.stop()
    stop.set()
    worker.join(timeout=10)
    bus.close()
    conn.close()


def _weigh(stack: dict, weight: float) -> dict:
    rig = stack["rig"]
    seq = rig.last_seq
    rig.place(weight)
    assert rig.wait_for("stable", after=seq, timeout=5) is not None
    msg = stack["watcher"].expect_message(10, topic=f"{PREFIX}/scale/s1/candidates")
    return json.loads(msg.payload)


def test_stable_weight_to_candidates_confirmation_and_learning(stack: dict, grocery: Path) -> None:
    service, conn = stack["service"], stack["conn"]
    base = f"http://127.0.0.1:{stack['port']}"
    learned_before = conn.execute("SELECT COUNT(*) FROM product_embeddings WHERE plu = '4011'").fetchone()[0]

    payload = _weigh(stack, 0.452)
    assert payload["scale"] == "s1" and payload["weight_kg"] == pytest.approx(0.452)
    top = payload["candidates"][0]
    assert top["plu"] == "4011" and top["rank"] == 1 and top["name"] == "Bananas"
    assert top["total"] == pytest.approx(round(1.99 * 0.452, 2))
    assert len(payload["candidates"]) == 3
    assert 0 < payload["stable_to_candidates_ms"] < 2000

    with urllib.request.urlopen(f"{base}/screen?scale=s1", timeout=5) as resp:
        page = resp.read().decode()
    assert resp.headers["Content-Type"].startswith("text/html") and "/confirm" in page and "/candidates/" in page
    status, latest = _http("GET", f"{base}/candidates/s1")
    assert status == 200 and latest["weighing_id"] == payload["weighing_id"]
    assert _http("POST", f"{base}/confirm", raw=b"{not json")[0] == 400
    assert _http("POST", f"{base}/confirm", {"weighing_id": 5})[0] == 400
    assert _http("POST", f"{base}/confirm", {"weighing_id": "nope", "plu": "4011"})[0] == 404

    status, record = _http("POST", f"{base}/confirm", {"weighing_id": payload["weighing_id"], "plu": "4011"})
    assert status == 200, record
    assert record["chosen_rank"] == 1 and record["total"] == pytest.approx(round(1.99 * 0.452, 2))
    assert record["learned"]["added"] is True
    assert record["stable_to_confirm_ms"] >= payload["stable_to_candidates_ms"]
    assert _http("POST", f"{base}/confirm", {"weighing_id": payload["weighing_id"], "plu": "4011"})[0] == 409
    echoed = json.loads(stack["watcher"].expect_message(5, topic=f"{PREFIX}/scale/s1/weighing").payload)
    assert echoed["weighing_id"] == payload["weighing_id"] and echoed["plu"] == "4011"

    row = conn.execute("SELECT status, plu, chosen_rank, unit_price, total, weight_kg, candidates_ms, confirm_ms "
                       "FROM weighings WHERE id = ?", (payload["weighing_id"],)).fetchone()
    assert row[:5] == ("confirmed", "4011", 1, 1.99, round(1.99 * 0.452, 2))
    assert row[5] == pytest.approx(0.452) and row[6] > 0 and row[7] >= row[6]
    assert conn.execute("SELECT COUNT(*) FROM product_embeddings WHERE plu = '4011'").fetchone()[0] == learned_before + 1
    learned = _outbox(conn, "events/product_learned")
    assert len(learned) == 1 and learned[0]["plu"] == "4011" and learned[0]["uid"] == record["learned"]["uid"]
    assert _outbox(conn, "events/weighing")[0]["weighing_id"] == payload["weighing_id"]

    # Second weighing: a kiwi photo; the screen says "none of these" over the local bus.
    seq = stack["rig"].last_seq
    stack["rig"].clear()
    assert stack["rig"].wait_for("removed", after=seq, timeout=5) is not None
    cleared = json.loads(stack["watcher"].expect_message(5, topic=f"{PREFIX}/scale/s1/removed").payload)
    assert cleared["scale"] == "s1" and _http("GET", f"{base}/candidates/s1")[0] == 404
    shutil.copy(grocery / "val/Fruit/Kiwi/Kiwi_001.jpg", stack["tray"])
    second = _weigh(stack, 0.31)
    assert second["candidates"][0]["plu"] == "4030"
    stack["watcher"].publish(f"{PREFIX}/scale/s1/confirm", json.dumps({"weighing_id": second["weighing_id"],
                                                                       "plu": None}))
    echoed = json.loads(stack["watcher"].expect_message(5, topic=f"{PREFIX}/scale/s1/weighing").payload)
    assert echoed["weighing_id"] == second["weighing_id"] and echoed["plu"] is None and echoed["learned"] is None
    assert conn.execute("SELECT status FROM weighings WHERE id = ?", (second["weighing_id"],)).fetchone()[0] == "rejected"

    from typer.testing import CliRunner

    from agent.cli.main import app

    config = stack["tray"].parent / "agent.toml"
    config.write_text(f'data_dir = "{stack["tray"].parent / "data"}"\n')
    listed = CliRunner().invoke(app, ["products", "weighings", "--config", str(config), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == [second["weighing_id"], payload["weighing_id"]]
    assert rows[1]["plu"] == "4011" and rows[1]["candidates"][0] == "4011" and rows[0]["status"] == "rejected"

    stack["stop"].set()
    stack["worker"].join(timeout=10)
    aggregates = [a for a in _outbox(conn, "telemetry/aggregates") if a.get("kind") == "weighings"]
    assert aggregates and aggregates[-1]["weighings"] == 2 and aggregates[-1]["confirmed"] == 2
    assert aggregates[-1]["top1_hit_rate"] == 0.5 and aggregates[-1]["mean_stable_to_candidates_ms"] > 0
