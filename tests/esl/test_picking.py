"""Picking and find-product: concurrent orders get distinct colours, a colour in use is refused, finishing an
order frees its colour and stops its LEDs; find flashes the product's labels and names their position."""

from __future__ import annotations

import time

import pytest

from agent.esl.leds import PICK_COLOURS, LedRequestError, find, pick, pick_done
from agent.esl.state import LabelRow, save_labels
from devices.esl.backends.openepaperlink import OpenEPaperLinkBackend
from tests.esl.conftest import macs, wait_until


@pytest.fixture
def shop(conn, ap_factory):
    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(4), hw_type=1)
    save_labels(conn, [LabelRow(mac=m, gateway="gw", label_type="29bwr", plu=str(1000 + i), aisle=str(i + 1),
                                shelf=2, slot=i + 3, updated_at=time.time()) for i, m in enumerate(macs(4))])
    return conn, {"gw": OpenEPaperLinkBackend(ap.url)}, ap


def test_concurrent_orders_get_distinct_colours(shop) -> None:
    conn, backends, ap = shop
    a = pick(conn, backends, "order-a", ["1000", "1001"])
    b = pick(conn, backends, "order-b", ["1002"])
    c = pick(conn, backends, "order-c", ["1003"])
    assert len({a["colour"], b["colour"], c["colour"]}) == 3
    assert [o["status"] for o in a["labels"]] == ["sent", "sent"]
    assert wait_until(lambda: all(ap.field.tags[m].led for m in macs(4)), 3)
    leds = {m: ap.field.tags[m].led["colour"] for m in macs(4)}
    assert leds[macs(4)[0]] == leds[macs(4)[1]] == a["colour"] and leds[macs(4)[2]] == b["colour"]
    again = pick(conn, backends, "order-a", ["1000"])  # re-issuing an order keeps a free colour
    assert again["colour"] not in (b["colour"], c["colour"])


def test_a_colour_in_use_is_refused_and_freed_when_done(shop) -> None:
    conn, backends, ap = shop
    pick(conn, backends, "order-a", ["1000"], colour="green")
    with pytest.raises(LedRequestError) as err:
        pick(conn, backends, "order-b", ["1001"], colour="green")
    assert err.value.reason == "colour_in_use" and "order-a" in str(err.value)
    done = pick_done(conn, backends, "order-a")
    assert done["labels"][0]["status"] == "sent"
    assert pick(conn, backends, "order-b", ["1001"], colour="green")["colour"] == "green"


def test_colours_run_out_with_a_clear_error(shop) -> None:
    conn, backends, _ = shop
    for i in range(len(PICK_COLOURS)):
        pick(conn, backends, f"o{i}", ["1000"])
    with pytest.raises(LedRequestError) as err:
        pick(conn, backends, "one-too-many", ["1000"])
    assert err.value.reason == "no_colour_free"


def test_unknown_plu_is_a_clear_error(shop) -> None:
    conn, backends, _ = shop
    with pytest.raises(LedRequestError) as err:
        pick(conn, backends, "o", ["777"])
    assert err.value.reason == "unknown_plu"
    assert conn.execute("SELECT COUNT(*) FROM esl_pick_orders").fetchone()[0] == 0


def test_find_flashes_and_names_the_position(shop) -> None:
    conn, backends, ap = shop
    out = find(conn, backends, "1002")
    assert out["labels"][0]["position"] == "aisle 3, shelf 2, slot 5"
    assert wait_until(lambda: ap.field.tags[macs(4)[2]].led is not None, 3)
