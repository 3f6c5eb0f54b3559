"""The OpenEPaperLink AP simulator speaks the AP's web API: get_db records and paging, image upload with
pending → check-in → hash/updatecount, identical-image skip, queue drop on a failed transfer, LED patterns,
tag commands and the websocket feed — exercised over real HTTP on loopback through our backend."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
from PIL import Image, ImageDraw

from devices.esl.backends.base import GatewayError, LabelContent, LedFlash
from devices.esl.backends.oepl_protocol import decode_led_pattern, encode_led_pattern, image_buffer_hash
from devices.esl.backends.openepaperlink import OpenEPaperLinkBackend
from devices.esl.backends.websocket import WebSocketClient
from devices.esl.sim.tags import TagField
from tests.esl.conftest import macs, wait_until


def label_image(text: str, colour: str = "black") -> Image.Image:
    image = Image.new("RGB", (296, 128), "white")
    ImageDraw.Draw(image).rectangle((10, 10, 120, 60), fill=colour)
    ImageDraw.Draw(image).text((150, 40), text, fill="black")
    return image


def record(ap, mac: str) -> dict:
    with urllib.request.urlopen(f"{ap.url}/get_db?mac={mac}", timeout=2) as resp:
        return json.loads(resp.read())["tags"][0]


def test_get_db_records_carry_the_ap_fields_and_page_with_continu(ap_factory) -> None:
    ap = ap_factory(interval_s=5.0)
    ap.add_tags(macs(40), hw_type=1)
    with urllib.request.urlopen(f"{ap.url}/get_db", timeout=2) as resp:
        first = json.loads(resp.read())
    assert "continu" in first and 0 < len(first["tags"]) < 40  # ~5000-byte pages, as the AP chunks them
    for key in ("mac", "hash", "lastseen", "nextcheckin", "pending", "temperature", "batteryMv", "hwType", "RSSI",
                "updatecount"):
        assert key in first["tags"][0]
    reports = OpenEPaperLinkBackend(ap.url).labels()
    assert sorted(r.label_id for r in reports) == sorted(macs(40))  # the backend follows continu to the end


def test_upload_is_pending_until_check_in_then_hash_and_updatecount_confirm(ap_factory) -> None:
    ap = ap_factory(interval_s=0.3)
    mac = macs(1)[0]
    ap.add_tags([mac])
    backend = OpenEPaperLinkBackend(ap.url)
    receipt = backend.push(mac, LabelContent("c1", image=label_image("1.99")))
    assert record(ap, mac)["pending"] == 1
    assert wait_until(lambda: record(ap, mac)["pending"] == 0, 3)
    rec = record(ap, mac)
    assert rec["hash"] == receipt.token and rec["updatecount"] == 1
    # The JPEG we send quantises back to the same buffer the AP hashes.
    assert receipt.token == image_buffer_hash(label_image("1.99"))


def test_identical_image_is_skipped(ap_factory) -> None:
    ap = ap_factory(interval_s=0.2)
    mac = macs(1)[0]
    ap.add_tags([mac])
    backend = OpenEPaperLinkBackend(ap.url)
    backend.push(mac, LabelContent("c1", image=label_image("2.49", "red")))
    assert wait_until(lambda: record(ap, mac)["updatecount"] == 1, 3)
    backend.push(mac, LabelContent("c1", image=label_image("2.49", "red")))
    assert record(ap, mac)["pending"] == 0 and ap.field.counts["skipped"] == 1
    assert any("same as current" in line for line in ap.field.log)


def test_failed_transfer_drops_the_queue(ap_factory) -> None:
    ap = ap_factory(interval_s=0.2, failure_rate=0.999, seed=3)
    mac = macs(1)[0]
    ap.add_tags([mac])
    OpenEPaperLinkBackend(ap.url).push(mac, LabelContent("c1", image=label_image("3.00")))
    assert wait_until(lambda: ap.field.counts["failed"] >= 1, 3)
    rec = record(ap, mac)
    assert rec["pending"] == 0 and rec["updatecount"] == 0 and rec["hash"] == "0" * 32
    assert any("queue dropped" in line for line in ap.field.log)


def test_led_flash_pattern_round_trips_and_unknown_macs_are_refused(ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    mac = macs(1)[0]
    ap.add_tags([mac])
    backend = OpenEPaperLinkBackend(ap.url)
    pattern = encode_led_pattern("blue", "double", 14.0)
    assert decode_led_pattern(pattern) == {"colour": "blue", "pattern": "double", "duration_s": 14.0}
    backend.flash(mac, LedFlash("blue", "double", 14.0))
    assert wait_until(lambda: record(ap, mac)["led"] == "blue/double", 3)
    backend.stop_flash(mac)
    assert wait_until(lambda: record(ap, mac)["led"] == "", 3)
    with pytest.raises(GatewayError) as err:
        backend.flash("0000FFFFFFFFFFFF", LedFlash("red"))
    assert err.value.reason == "unknown_label"
    with pytest.raises(ValueError):
        LedFlash("purple")


def test_unreachable_ap_is_a_clear_gateway_error(ap_factory) -> None:
    ap = ap_factory()
    url = ap.url
    ap.stop()
    with pytest.raises(GatewayError) as err:
        OpenEPaperLinkBackend(url, timeout_s=1).labels()
    assert err.value.reason == "unreachable"


def test_websocket_feed_reports_check_ins_with_sensor_values(ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    mac = macs(1)[0]
    ap.add_tags([mac], temperature=4.0, battery_mv=2500)
    ws = WebSocketClient(ap.url.replace("http", "ws") + "/ws")
    try:
        urllib.request.urlopen(urllib.request.Request(
            f"{ap.url}/sim/tag", data=f"mac={mac}&temperature=9".encode(), method="POST"), timeout=2).read()
        seen = []
        for _ in range(50):
            text = ws.recv_text(timeout_s=1.0)
            if text and '"tags"' in text:
                seen += json.loads(text)["tags"]
                if seen[-1]["temperature"] == 9:
                    break
        assert seen and seen[-1]["mac"] == mac and seen[-1]["temperature"] == 9 and seen[-1]["batteryMv"] == 2500
    finally:
        ws.close()


def test_events_stream_yields_label_reports(ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(3))
    stop = threading.Event()
    got = set()
    for event in OpenEPaperLinkBackend(ap.url).events(stop):
        if event.report is not None:
            got.add(event.report.label_id)
        if len(got) == 3:
            stop.set()
    assert got == set(macs(3))


def test_json_drawing_upload_is_queued_like_an_image(ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    mac = macs(1)[0]
    ap.add_tags([mac])
    backend = OpenEPaperLinkBackend(ap.url)
    backend.push_drawing(mac, [{"text": [10, 10, "Sale", "fonts/bahnschrift20", 2]}])
    assert wait_until(lambda: record(ap, mac)["updatecount"] == 1, 3)
    with pytest.raises(GatewayError) as err:
        backend.push_drawing("0000FFFFFFFFFFFF", [{"box": [0, 0, 10, 10, 1]}])
    assert err.value.reason == "unknown_label"


def test_a_hanging_ap_times_out_and_a_busy_ap_says_come_back_later(ap_factory) -> None:
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    try:
        t0 = time.monotonic()
        with pytest.raises(GatewayError) as err:
            OpenEPaperLinkBackend(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5).labels()
        assert err.value.reason == "unreachable" and time.monotonic() - t0 < 3
    finally:
        silent.close()
    ap = ap_factory()
    mac = macs(1)[0]
    ap.add_tags([mac])
    ap.running = False
    with pytest.raises(GatewayError) as err:
        OpenEPaperLinkBackend(ap.url).push(mac, LabelContent("c", image=label_image("1")))
    assert err.value.reason == "busy" and "Come back later" in err.value.message


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def checkin(field, clock: FakeClock, mac: str) -> None:
    """Advance the clock to the tag's next check-in and run it."""
    clock.t = field.get(mac).next_checkin
    field.tick()


def test_hardware_failure_mode_keeps_the_queue_and_retries_at_the_next_regular_checkin() -> None:
    clock = FakeClock()
    field = TagField(interval_s=40.0, failure_rate=0.999999, seed=1, clock=clock, failure_mode="hardware")
    mac = macs(1)[0]
    field.add(mac)
    assert field.queue_image(mac, "ab" * 16)
    checkin(field, clock, mac)
    tag = field.get(mac)
    assert tag.transfers_failed == 1 and tag.pending_hash == "ab" * 16  # kept, unlike the default "drop" mode
    assert tag.next_checkin == clock.t + 40.0  # a whole interval, no early wake
    field.failure_rate = 0.0
    checkin(field, clock, mac)
    assert (tag.hash, tag.pending_hash, tag.update_count) == ("ab" * 16, None, 1)  # no re-upload was needed
    assert field.errors == []


def test_hardware_failure_mode_drops_a_pending_image_after_its_ttl_with_xfer_timeout() -> None:
    clock = FakeClock()
    field = TagField(interval_s=40.0, failure_rate=0.999999, seed=1, clock=clock, failure_mode="hardware",
                     pending_ttl_s=100.0)
    mac = macs(1)[0]
    field.add(mac)
    field.queue_image(mac, "cd" * 16)
    for _ in range(4):  # failures at < 100 s keep it; the check-in past 100 s finds it expired
        checkin(field, clock, mac)
    tag = field.get(mac)
    assert tag.pending_hash is None and tag.hash == "0" * 32
    assert field.errors == [f"< {mac[-12:]} xfer timeout"] and field.error_count == 1
    with pytest.raises(ValueError):
        TagField(failure_mode="sometimes")


def test_log_broadcasts_continue_past_the_first_thousand_lines(ap_factory) -> None:
    ap = ap_factory(interval_s=0.05)
    mac = macs(1)[0]
    ap.add_tags([mac])
    for i in range(1100):  # identical uploads: one "not updating tag" log line each
        ap.field.queue_image(mac, ap.field.get(mac).hash)
    assert len(ap.field.log) == 1000 and ap.field.log_count == 1100
    ws = WebSocketClient(f"ws://127.0.0.1:{ap.port}/ws", timeout_s=2.0)
    try:
        ap.field.queue_image(mac, ap.field.get(mac).hash)  # line 1101, after the list is full
        seen = []
        deadline = time.monotonic() + 3
        while not any("logMsg" in m for m in seen) and time.monotonic() < deadline:
            text = ws.recv_text(timeout_s=0.2)
            if text:
                seen.append(json.loads(text))
    finally:
        ws.close()
    assert any("not updating tag" in m.get("logMsg", "") for m in seen)
