"""Desired-state reconciliation against the simulated AP: only changes are pushed, transfer failures and
dropped queues are re-pushed until confirmed, an AP that is down loses nothing, time to shelf is recorded."""

from __future__ import annotations

import time

from agent.pricebook.article import Article
from tests.esl.conftest import Driver, articles, macs, wait_until


def test_every_label_is_confirmed_despite_transfer_failures(conn, ap_factory) -> None:
    n = 60
    ap = ap_factory(interval_s=0.1, failure_rate=0.3, seed=7)
    ap.add_tags(macs(n), hw_type=1)
    drv = Driver(conn, ap)
    try:
        drv.book.upsert(articles(n))
        drv.discover()
        drv.link({m: str(1000 + i) for i, m in enumerate(macs(n))})
        assert drv.rec.refresh() == n
        assert drv.run_until(lambda: drv.states().get("idle") == n, 20), drv.states()
        assert ap.field.counts["failed"] > 0  # failures happened and were recovered
        assert drv.rec.counts["dropped"] > 0 and drv.rec.counts["pushes"] > n
        for i, mac in enumerate(macs(n)):  # the label shows exactly what the agent rendered for it
            row = drv.rec.labels[mac]
            assert ap.field.tags[mac].hash == row.push_token and row.confirmed_hash == row.desired_hash
        rows = conn.execute("SELECT COUNT(*), SUM(confirmed_at IS NOT NULL), MIN(confirmed_at - desired_since),"
                            " MAX(pushes) FROM esl_shelf_times").fetchone()
        assert rows[0] == n and rows[1] == n and rows[2] > 0 and rows[3] >= 2
    finally:
        drv.close()


def test_only_changed_prices_are_pushed(conn, ap_factory) -> None:
    n = 10
    ap = ap_factory(interval_s=0.1)
    ap.add_tags(macs(n), hw_type=1)
    drv = Driver(conn, ap)
    try:
        drv.book.upsert(articles(n))
        drv.discover()
        drv.link({m: str(1000 + i) for i, m in enumerate(macs(n))})
        drv.rec.refresh()
        assert drv.run_until(lambda: drv.states().get("idle") == n)
        uploads = ap.field.counts["uploads"]
        drv.book.upsert([Article("1003", "Item 3", 9.99, "piece")])
        assert drv.rec.refresh() == 1  # one article changed → one label's content changed
        assert drv.run_until(lambda: drv.states().get("idle") == n)
        assert ap.field.counts["uploads"] == uploads + 1
        assert drv.rec.refresh() == 0  # nothing changed, nothing pushed
    finally:
        drv.close()


def test_a_dropped_queue_is_pushed_again(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.15, failure_rate=0.999, seed=1)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap, retry_timeout_s=30.0)  # re-push comes from drop detection, not from the timeout
    try:
        drv.book.upsert(articles(1))
        drv.discover()
        drv.link({mac: "1000"})
        drv.rec.refresh()
        assert drv.run_until(lambda: drv.rec.counts["dropped"] >= 1, 5)
        ap.field.failure_rate = 0.0
        assert drv.run_until(lambda: drv.states().get("idle") == 1, 5)
        assert drv.rec.counts["pushes"] >= 2 and drv.rec.counts["timeouts"] == 0
        assert ap.field.tags[mac].update_count == 1
    finally:
        drv.close()


def test_ap_down_keeps_the_change_and_delivers_when_back(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap, retry_backoff_s=0.1, retry_backoff_max_s=0.3)
    try:
        drv.book.upsert(articles(1))
        drv.discover()
        drv.link({mac: "1000"})
        port = ap.port
        ap.stop()
        drv.rec.refresh()
        drv.step()
        row = drv.rec.labels[mac]
        assert row.state == "retry" and row.last_error.startswith("unreachable")
        assert drv.rec.gateway_error
        persisted = conn.execute("SELECT state, desired_hash FROM esl_labels WHERE mac = ?", (mac,)).fetchone()
        assert persisted == ("retry", row.desired_hash)  # survives a restart of the agent too
        ap.port = port
        ap.start()
        assert drv.run_until(lambda: drv.states().get("idle") == 1, 10)
        assert drv.rec.gateway_error is None
    finally:
        drv.close()


def test_unknown_plu_is_reported_not_pushed(conn, ap_factory) -> None:
    ap = ap_factory()
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap)
    try:
        drv.discover()
        drv.link({mac: "no-such-plu"})
        drv.rec.refresh()
        drv.step()
        row = drv.rec.labels[mac]
        assert row.state == "orphan" and "not in the price book" in row.last_error
        assert ap.field.counts["uploads"] == 0
    finally:
        drv.close()


def test_scheduled_promo_switches_at_its_start_and_end(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.1)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap)
    now = time.time()
    try:
        drv.book.upsert([Article("1000", "Milk", 1.50, "piece", promo_price=0.99, promo_start=now + 1.0,
                                 promo_end=now + 2.0)], effective_at=now - 1)
        drv.discover()
        drv.link({mac: "1000"})
        hashes = []
        for at in (now, now + 1.2, now + 2.2):  # before, during and after the promo
            drv.rec.refresh(at)
            assert drv.run_until(lambda: drv.states().get("idle") == 1, 5)
            hashes.append(ap.field.tags[mac].hash)
        assert hashes[0] != hashes[1] and hashes[2] == hashes[0]
    finally:
        drv.close()


def test_a_change_superseded_in_flight_ends_with_the_newest_content(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.5)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap)
    try:
        drv.book.upsert(articles(1))
        drv.discover()
        drv.link({mac: "1000"})
        drv.rec.refresh()
        drv.step()  # pushed, not yet delivered (check-ins every 0.5 s)
        first = drv.rec.labels[mac].push_token
        drv.book.upsert([Article("1000", "Item 0", 7.77, "piece")])
        drv.rec.refresh()
        assert drv.run_until(lambda: drv.states().get("idle") == 1, 5)
        row = drv.rec.labels[mac]
        assert ap.field.tags[mac].hash == row.push_token != first
        rows = conn.execute("SELECT superseded, confirmed_at IS NOT NULL FROM esl_shelf_times ORDER BY id").fetchall()
        assert rows == [(1, 0), (0, 1)]  # the first change is marked superseded, never counted as delivered
    finally:
        drv.close()


def test_pending_delivery_survives_an_agent_restart(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.3)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap)
    drv.book.upsert(articles(1))
    drv.discover()
    drv.link({mac: "1000"})
    drv.rec.refresh()
    ap.field.failure_rate = 0.99  # the label will not get it before the "crash"
    drv.step()
    assert drv.rec.labels[mac].state == "pending"
    drv.close()  # agent stops with the delivery outstanding
    ap.field.failure_rate = 0.0
    again = Driver(conn, ap, retry_timeout_s=0.5)
    try:
        assert again.rec.labels[mac].state in ("pending", "dropped")  # state came back from SQLite
        assert again.run_until(lambda: again.states().get("idle") == 1, 10)
        assert ap.field.tags[mac].hash == again.rec.labels[mac].push_token
    finally:
        again.close()


class _NoTokenBackend:
    """A gateway that reports only an update counter (no content hash): confirmation by update_count."""

    name = "no-token"

    def __init__(self) -> None:
        self.count, self.seen, self.pending = 0, 100.0, False

    def push(self, label_id, content):
        from devices.esl.backends.base import PushReceipt

        self.pending = True
        return PushReceipt(label_id, None, time.time())

    def report(self, checkin: bool):
        from devices.esl.backends.base import LabelReport

        if checkin:
            self.seen += 1
            if self.pending:
                self.count, self.pending = self.count + 1, False
        return LabelReport("L1", self.seen, None, self.pending, update_count=self.count)


def test_gateways_without_tokens_confirm_by_update_count(conn) -> None:
    from agent.esl.content import default_renderer
    from agent.esl.reconciler import Reconciler
    from agent.pricebook import PriceBook

    backend = _NoTokenBackend()
    rec = Reconciler(conn, "gw", backend, default_renderer())  # type: ignore[arg-type]
    PriceBook(conn).upsert(articles(1))
    rec.on_report(backend.report(checkin=False))
    rec.labels["L1"].plu = "1000"
    rec.refresh()
    rec.push_due()
    assert rec.labels["L1"].state == "pending"
    rec.on_report(backend.report(checkin=False))  # nothing happened yet
    assert rec.labels["L1"].state == "pending"
    rec.on_report(backend.report(checkin=True))  # checked in, counter advanced, nothing pending
    assert rec.labels["L1"].state == "idle" and rec.counts["confirmed"] == 1
    rec.close()


def test_label_problems_are_raised_once_and_resolved(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.1, failure_rate=0.999, seed=2)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap, stuck_after_pushes=3)
    try:
        drv.discover()
        drv.link({mac: "1000"})
        drv.rec.refresh()
        drv.step()
        assert [(n["problem"], n["state"]) for n in drv.rec.take_notices()] == [("orphan", "raised")]
        drv.book.upsert(articles(1))
        drv.rec.refresh()
        assert drv.run_until(lambda: any(n["problem"] == "stuck" for n in drv.rec.notices), 10)
        ap.field.failure_rate = 0.0
        assert drv.run_until(lambda: drv.states().get("idle") == 1, 5)
        drv.step()
        notices = [(n["problem"], n["state"]) for n in drv.rec.take_notices()]
        assert notices == [("orphan", "resolved"), ("stuck", "raised"), ("stuck", "resolved")]
    finally:
        drv.close()


def test_confirm_by_updatecount_ignores_hashes(conn, ap_factory) -> None:
    ap = ap_factory(interval_s=0.1, failure_rate=0.3, seed=4)
    ap.add_tags(macs(10), hw_type=1)
    drv = Driver(conn, ap, confirm_by="updatecount")
    try:
        drv.book.upsert(articles(10))
        drv.discover()
        drv.link({m: str(1000 + i) for i, m in enumerate(macs(10))})
        drv.rec.refresh()
        assert drv.run_until(lambda: drv.states().get("idle") == 10, 15)
        assert all(drv.rec.labels[m].push_token is None for m in macs(10))
        assert all(ap.field.tags[m].update_count >= 1 for m in macs(10))
    finally:
        drv.close()


def test_hardware_like_ap_expiring_a_pending_image_gets_it_again(conn, ap_factory) -> None:
    """As OpenEPaperLink firmware: failed transfers keep the AP's queue until its pending entry runs out
    (``xfer timeout``); the agent sees the drop in the tag record and pushes again."""
    ap = ap_factory(interval_s=0.1, failure_rate=0.999, seed=1, failure_mode="hardware", pending_ttl_s=0.5)
    mac = macs(1)[0]
    ap.add_tags([mac], hw_type=1)
    drv = Driver(conn, ap, retry_timeout_s=30.0)  # re-push comes from drop detection, not from the timeout
    try:
        drv.book.upsert(articles(1))
        drv.discover()
        drv.link({mac: "1000"})
        drv.rec.refresh()
        assert drv.run_until(lambda: ap.field.error_count >= 1 and drv.rec.counts["dropped"] >= 1, 5)
        assert ap.field.tags[mac].transfers_failed >= 2  # retried with the queue kept before it expired
        ap.field.failure_rate = 0.0
        assert drv.run_until(lambda: drv.states().get("idle") == 1, 5)
        assert drv.rec.counts["pushes"] >= 2 and drv.rec.counts["timeouts"] == 0
        assert ap.field.tags[mac].update_count == 1
    finally:
        drv.close()
