"""Recognition inside the real daemon: ``[[scales]] camera`` → the agent's scale component feeds the products
component; a signed ``products.gallery_update`` from the cloud fills the gallery; the top-k reach the local bus
(real mosquitto); a confirmation over the bus is recorded, learned and synced to the cloud."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2

from agent.config import load_config
from agent.products.commands import encode_vector
from devices.scale.sim import ScaleSimulator
from sync.cloud.sender import send_command
from tests.support.agent_stack import (cloud_msg_ids, cloud_settings, make_signing_key, start_agent, start_cloud,
                                       wait_until, write_config)


def test_weighing_through_the_daemon_with_a_chain_wide_gallery(tmp_path: Path, mosquitto, mqtt_client_factory,  # noqa: ANN001
                                                               grocery: Path, shared_models: Path, embedder) -> None:  # noqa: ANN001
    tray = tmp_path / "tray.jpg"
    shutil.copy(grocery / "val/Fruit/Banana/Banana_002.jpg", tray)
    link = tmp_path / "ttyUSB-deli"
    key = make_signing_key(tmp_path)
    config = write_config(tmp_path / "agent.toml", store_id="s1", data_dir=tmp_path / "data",
                          broker_url=mosquitto.url, public_key_b64=key.public_b64,
                          extra_sections={"local_bus": {"enabled": True, "broker": mosquitto.url},
                                          "models": {"dir": str(shared_models)},
                                          "products": {"top_k": 3, "aggregate_interval_s": 3600}})
    config.write_text(config.read_text() + f'''
[[cameras]]
name = "deli-cam"
url = "{tray}"
enabled = false

[[scales]]
name = "deli"
port = "{link}"
protocol = "mt-sics"
poll_interval_s = 0.05
stable_window_s = 0.3
camera = "deli-cam"
''')
    watcher = mqtt_client_factory("screen").connect("127.0.0.1", mosquitto.port)
    watcher.subscribe("store/s1/local/#")
    cloud_db = tmp_path / "cloud.db"
    _, cloud = start_cloud(mosquitto.url, cloud_db)
    with ScaleSimulator("mt-sics", link=link, motion_jitter_kg=0.0) as sim:
        agent, running = start_agent(config)
        try:
            assert wait_until(lambda: agent.products.service is not None and agent.products.service.ready.is_set(), 30)
            add = [{"plu": plu, "uid": f"{plu}-{i}", "vector": encode_vector(embedder.embed(cv2.imread(str(p))))}
                   for plu, rel in (("4011", "train/Fruit/Banana"), ("4030", "train/Fruit/Kiwi"))
                   for i, p in enumerate(sorted((grocery / rel).glob("*.jpg"))[:3])]
            cmd = key.command("products.gallery_update", "s1", {"space": embedder.space, "add": add})
            result = send_command(cloud_settings(mosquitto.url), cmd, wait_s=15, db_path=cloud_db)
            assert result is not None and result["status"] == "applied", result
            assert result["result"]["added"] == 6
            bad = key.command("products.gallery_update", "s1", {"space": "other-model", "add": add[:1]})
            rejected = send_command(cloud_settings(mosquitto.url), bad, wait_s=15, db_path=cloud_db)
            assert rejected is not None and rejected["status"] == "rejected" and rejected["reason"] == "wrong_space"
            service = agent.products.service
            assert wait_until(lambda: len(service.recognizer.gallery) == 6, 10)

            sim.set_weight(0.462)
            msg = watcher.expect_message(15, topic="store/s1/local/scale/deli/candidates")
            payload = json.loads(msg.payload)
            assert payload["candidates"][0]["plu"] == "4011" and payload["weight_kg"] == 0.462
            watcher.publish("store/s1/local/scale/deli/confirm",
                            json.dumps({"weighing_id": payload["weighing_id"], "plu": "4011"}))
            record = json.loads(watcher.expect_message(10, topic="store/s1/local/scale/deli/weighing").payload)
            assert record["chosen_rank"] == 1 and record["learned"]["added"] is True
            assert wait_until(lambda: cloud_msg_ids(cloud_db, "s1", "events/weighing")
                              and cloud_msg_ids(cloud_db, "s1", "events/product_learned"), 15)
            assert len(service.recognizer.gallery) == 7

            # A config reload that changes [products] restarts the component with the new settings.
            config.write_text(config.read_text().replace("top_k = 3", "top_k = 2"))
            agent._queue_reload(load_config(config))
            assert wait_until(lambda: agent.products.service is not service
                              and agent.products.service.ready.is_set(), 20)
            sim.set_weight(0.0)
            time.sleep(0.8)
            sim.set_weight(0.31)
            again = json.loads(watcher.expect_message(15, topic="store/s1/local/scale/deli/candidates").payload)
            assert len(again["candidates"]) == 2 and again["candidates"][0]["plu"] == "4011"
        finally:
            running.stop()
            agent.close()
            cloud.stop()
