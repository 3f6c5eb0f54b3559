"""``price.update`` end to end: reference cloud → mosquitto → the real Agent → price book, with cmd-results."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.pricebook import PriceBook
from agent.store import connect
from sync.cloud.sender import send_command
from tests.support.agent_stack import (cloud_settings, make_signing_key, start_agent, start_cloud, wait_until,
                                       write_config)

pytestmark = pytest.mark.timeout(120)
STORE = "store-prices"


def test_price_update_reaches_the_book_and_bad_or_stale_deltas_are_refused(mosquitto, tmp_path: Path) -> None:
    key = make_signing_key(tmp_path)
    config = write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=tmp_path / "data",
                          broker_url=mosquitto.url, public_key_b64=key.public_b64)
    cloud_db = tmp_path / "cloud.db"
    receiver, cloud = start_cloud(mosquitto.url, cloud_db)
    agent, running = start_agent(config)
    heard: list[dict] = []
    agent.pricebook_listeners.append(heard.append)
    try:
        assert wait_until(lambda: receiver.counts["births"] >= 1, timeout_s=15)
        settings = cloud_settings(mosquitto.url)
        now = time.time()
        body = {"version": 3, "effective_at": None, "upsert": [
            {"plu": "4011", "name": "Bananas", "price": 1.99, "unit": "kg"},
            {"plu": "20", "name": "Milk", "price": 0.99, "unit": "piece"}]}
        result = send_command(settings, key.command("price.update", STORE, body), wait_s=15, db_path=cloud_db)
        assert result is not None and result["status"] == "applied", result
        assert result["result"]["version"] == 3 and result["result"]["upserted"] == 2
        scheduled = {"version": 4, "effective_at": now + 3600,
                     "upsert": [{"plu": "4011", "name": "Bananas", "price": 2.29, "unit": "kg"}]}
        result = send_command(settings, key.command("price.update", STORE, scheduled), wait_s=15, db_path=cloud_db)
        assert result["status"] == "applied" and result["result"]["scheduled"] is True

        stale = {"version": 4, "upsert": [{"plu": "4011", "name": "Bananas", "price": 0.01, "unit": "kg"}]}
        result = send_command(settings, key.command("price.update", STORE, stale), wait_s=15, db_path=cloud_db)
        assert (result["status"], result["reason"]) == ("rejected", "stale_version"), result
        bad = {"version": 5, "upsert": [{"plu": "4011", "name": "Bananas", "price": "cheap", "unit": "kg"}]}
        result = send_command(settings, key.command("price.update", STORE, bad), wait_s=15, db_path=cloud_db)
        assert (result["status"], result["reason"]) == ("rejected", "invalid_body"), result
        assert "upsert[0].price" in result["detail"]

        book = PriceBook(connect(agent.db_path))
        assert book.version == 4
        assert book.effective_price("4011", time.time()) == 1.99
        assert book.effective_price("4011", now + 3600) == 2.29
        assert book.effective_price("20", time.time()) == 0.99
        assert [h["version"] for h in heard] == [3, 4]
        assert agent.versions()["pricebook"] == 4
    finally:
        running.stop()
        agent.close()
        cloud.stop()
