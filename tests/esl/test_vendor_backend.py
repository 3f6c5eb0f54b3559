"""The vendor-style REST backend against its simulator proves the interface: articles + links are pushed,
transactions report asynchronously, the reconciler confirms from label status, LEDs flash."""

from __future__ import annotations

import pytest

from agent.esl.content import default_renderer
from agent.esl.reconciler import Reconciler, ReconcilerSettings
from agent.pricebook import PriceBook
from devices.esl.backends.base import GatewayError, LabelContent, LedFlash
from devices.esl.backends.vendor_rest import VendorRestBackend
from devices.esl.sim.vendor_ap import VendorApSimulator
from tests.esl.conftest import articles, macs, wait_until


@pytest.fixture
def vendor():
    sim = VendorApSimulator(interval_s=0.1, failure_rate=0.25, seed=2).start()
    sim.add_labels(macs(20, "0000C0FFEE"))
    yield sim
    sim.stop()


def test_push_is_a_transaction_that_succeeds_when_the_label_checks_in(vendor) -> None:
    vendor.field.failure_rate = 0.0
    backend = VendorRestBackend(vendor.url)
    label = macs(1, "0000C0FFEE")[0]
    receipt = backend.push(label, LabelContent("h", article={"plu": "1000", "name": "Milk", "price_now": 1.5},
                                               template="standard"))
    tid = next(iter(vendor.transactions))
    assert backend.transaction(tid)["status"] == "PENDING"
    assert wait_until(lambda: backend.transaction(tid)["status"] == "SUCCESS", 3)
    report = next(r for r in backend.labels() if r.label_id == label)
    assert report.shown_token == receipt.token and not report.pending and report.extra["articleId"] == "1000"
    backend.flash(label, LedFlash("cyan", "blink", 5))
    assert wait_until(lambda: next(r for r in backend.labels() if r.label_id == label).led == "cyan/blink", 3)
    with pytest.raises(GatewayError) as err:
        backend.flash("NOPE", LedFlash("cyan"))
    assert err.value.reason == "unknown_label"


def test_reconciler_confirms_every_label_through_the_vendor_backend(conn, vendor) -> None:
    n = 20
    backend = VendorRestBackend(vendor.url)
    rec = Reconciler(conn, "vendor", backend, default_renderer(), ReconcilerSettings(retry_timeout_s=1.0))
    PriceBook(conn).upsert(articles(n))
    for report in backend.labels():
        rec.on_report(report)
    for i, mac in enumerate(macs(n, "0000C0FFEE")):
        rec.labels[mac].plu = str(1000 + i)
    rec.refresh()

    def step() -> bool:
        for report in backend.labels():
            rec.on_report(report)
        rec.push_due()
        rec.flush()
        return rec.summary()["states"].get("idle") == n

    try:
        assert wait_until(step, 15, 0.05), rec.summary()
        assert vendor.field.counts["failed"] > 0  # losses happened and were made good
    finally:
        rec.close()
