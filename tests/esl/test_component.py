"""The ``esl-<gateway>`` component end to end against the simulated AP: links and price changes reach the
labels by themselves, a scheduled promo switches at its time with no command, fridge alarms and delivery
telemetry go to the outbox."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agent.config import SyncConfig
from agent.config.device_models import EslGatewayConfig
from agent.esl.component import EslGatewayComponent
from agent.pricebook import PriceBook
from agent.pricebook.article import Article
from agent.store import connect
from sync.outbox import Outbox
from tests.esl.conftest import articles, macs, wait_until


@pytest.fixture
def running(db, ap_factory):
    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(4), hw_type=1, temperature=3.0)
    cfg = EslGatewayConfig(name="gw", url=ap.url, checkin_interval_s=0.1, retry_timeout_s=1.0, poll_interval_s=0.5,
                           fridge_groups=[{"name": "dairy", "max_c": 5.0, "alarm_after_min": 0.01,
                                           "hysteresis_c": 1.0}])
    outbox = Outbox(db, store_id="s1", boot_id="b", priority_for=SyncConfig().priority_for, connect=connect)
    component = EslGatewayComponent(cfg, db, outbox, step_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=component.run, args=(stop,), daemon=True)
    conn = connect(db)
    PriceBook(conn).upsert(articles(4))
    thread.start()
    yield component, ap, conn
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    conn.close()


def streams(conn, stream: str) -> list[dict]:
    return [json.loads(r[0]) for r in conn.execute("SELECT body FROM outbox WHERE stream = ? ORDER BY id", (stream,))]


def states(component) -> dict[str, int]:
    return component.status().get("states", {})


def test_linked_labels_show_prices_and_follow_changes(running) -> None:
    component, ap, conn = running
    assert wait_until(lambda: component.status().get("labels") == 4, 5)  # discovered from the AP
    conn.execute("UPDATE esl_labels SET plu = CAST(1000 + CAST(substr(mac, 11) AS INTEGER) AS TEXT)")
    component.relinked()
    assert wait_until(lambda: states(component).get("idle") == 4, 10), component.status()
    before = ap.field.tags[macs(4)[1]].hash
    PriceBook(conn).upsert([Article("1001", "Item 1", 0.49, "piece")])
    component.price_changed()
    assert wait_until(lambda: ap.field.tags[macs(4)[1]].hash != before and states(component).get("idle") == 4, 10)
    assert wait_until(lambda: bool(streams(conn, "telemetry/esl_delivery")), 5)
    body = streams(conn, "telemetry/esl_delivery")[-1]
    assert body["confirmed"] >= 1 and body["time_to_shelf_s"]["p50"] > 0


def test_scheduled_promo_switches_without_any_command(running) -> None:
    component, ap, conn = running
    mac = macs(4)[0]
    now = time.time()
    PriceBook(conn).upsert([Article("2000", "Milk", 1.50, "piece", promo_price=0.99, promo_start=now + 1.5)],
                           effective_at=now - 1)
    assert wait_until(lambda: component.status().get("labels") == 4, 5)
    conn.execute("UPDATE esl_labels SET plu = '2000' WHERE mac = ?", (mac,))
    component.relinked()
    assert wait_until(lambda: ap.field.tags[mac].update_count == 1, 5)
    regular = ap.field.tags[mac].hash
    assert wait_until(lambda: ap.field.tags[mac].update_count == 2, 6)  # the promo start switched it
    assert ap.field.tags[mac].hash != regular


def test_fridge_alarm_raises_and_clears(running) -> None:
    component, ap, conn = running
    assert wait_until(lambda: component.status().get("labels") == 4, 5)
    conn.execute("UPDATE esl_labels SET fridge_group = 'dairy'")
    component.relinked()
    for tag in ap.field.tags.values():
        tag.temperature = 9.0
    assert wait_until(lambda: "cold_chain:dairy" in component.status()["active_alarms"], 8)
    for tag in ap.field.tags.values():
        tag.temperature = 2.0
    assert wait_until(lambda: "cold_chain:dairy" not in component.status()["active_alarms"], 8)
    alarms = [a for a in streams(conn, "events/esl_alarm") if a["kind"] == "cold_chain"]
    assert [a["state"] for a in alarms] == ["raised", "cleared"] and alarms[0]["median_c"] == 9.0
    assert conn.execute("SELECT active FROM esl_alarms WHERE key = 'cold_chain:dairy'").fetchone() == (0,)
    assert wait_until(lambda: bool(streams(conn, "telemetry/esl_temperature")), 5)


def test_every_confirmed_label_reaches_the_delivery_telemetry(db) -> None:
    """A mass price change confirms thousands of labels in one step: none of their times may be dropped."""
    from agent.esl.reconciler import Confirmation

    outbox = Outbox(db, store_id="s1", boot_id="b", priority_for=SyncConfig().priority_for, connect=connect)
    cfg = EslGatewayConfig(name="gw", url="http://127.0.0.1:1")
    component = EslGatewayComponent(cfg, db, outbox)
    confirmed = [Confirmation(f"0000AABB{i:08X}", str(i), 100.0, 101.0, 100.0 + 1 + i % 7, 1) for i in range(450)]
    component._report_confirmations(confirmed)
    outbox.close()
    conn = connect(db)
    try:
        bodies = streams(conn, "telemetry/esl_delivery")
    finally:
        conn.close()
    labels = [entry["label"] for body in bodies for entry in body["labels"]]
    assert sorted(labels) == sorted(c.mac for c in confirmed)
    assert sum(body["confirmed"] for body in bodies) == 450
    assert all(len(body["labels"]) <= 200 for body in bodies)
