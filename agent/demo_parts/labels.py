"""Demo part ``labels``: electronic shelf labels on a simulated OpenEPaperLink access point.

1. ``prepare``: starts the AP simulator on loopback (check-ins every 0.3 s instead of ~40 s, 5 % of transfers
   fail and drop the label's queue) with four shelf labels and two fridge labels, and adds ``[[esl_gateways]]``
   ``demo-ap`` with a ``dairy`` fridge group (alarm above 5 °C for 3 s, 1 °C hysteresis).
2. ``exercise``: the reference cloud sends a signed ``price.update`` (four articles, one on promo) and a signed
   ``esl.relink`` (labels ↔ PLUs, positions, fridge group); the agent renders and pushes each label and waits
   for the AP's reports to confirm it. Then a price change of one article goes the same way (time to shelf is
   measured), two concurrent picking orders flash their labels in two colours, and the fridge warms to 9 °C
   until the cold-chain alarm fires, then cools until it clears.
3. ``summary`` (key ``labels``): labels confirmed, time to shelf of the price change, what each simulated
   label shows (its AP hash = the pushed content), picking colours, the fridge alarm and what reached the cloud.
"""

from __future__ import annotations

import time
from typing import Any

from agent.demo_parts import DemoContext, wait_until

GATEWAY = "demo-ap"
SHELF = ["0000D0E5A1000001", "0000D0E5A1000002", "0000D0E5A1000003", "0000D0E5A1000004"]
FRIDGE = ["0000D0E5A1000005", "0000D0E5A1000006"]
ARTICLES = [
    {"plu": "2001", "name": "Whole Milk 1 l", "price": 1.19, "unit": "piece", "barcode": "4006381333931"},
    {"plu": "2002", "name": "Greek Yogurt 500 g", "price": 2.49, "unit": "piece", "promo_price": 1.99},
    {"plu": "2003", "name": "Sourdough Bread", "price": 3.20, "unit": "piece", "origin": "local bakery"},
    {"plu": "2004", "name": "有机香蕉 Organic Bananas", "price": 2.29, "unit": "kg"},
]
WAIT_S = 20.0

_TOML = """
[[esl_gateways]]
name = "{name}"
url = "{url}"
checkin_interval_s = 0.3
retry_timeout_s = 2.0
poll_interval_s = 2.0

[[esl_gateways.fridge_groups]]
name = "dairy"
max_c = 5.0
alarm_after_min = 0.05
hysteresis_c = 1.0
"""




class LabelsPart:
    """See the module doc."""

    name = "labels"

    def __init__(self) -> None:
        self.ap: Any = None
        self.result: dict[str, Any] = {}

    def prepare(self, ctx: DemoContext) -> str:
        from devices.esl.sim.oepl_ap import OeplApSimulator

        self.ap = OeplApSimulator(interval_s=0.3, failure_rate=0.05, seed=6).start()
        self.ap.add_tags(SHELF, hw_type=1)
        self.ap.add_tags(FRIDGE, hw_type=0, temperature=3.0)
        ctx.say(f"labels     OpenEPaperLink AP simulator at {self.ap.url}: {len(SHELF)} shelf + {len(FRIDGE)} fridge "
                "labels, check-in 0.3 s, 5 % transfer failures")
        return _TOML.format(name=GATEWAY, url=self.ap.url)

    def _component(self, ctx: DemoContext) -> Any:
        return ctx.agent.esl.components.get(GATEWAY) if ctx.agent is not None else None

    def _states(self, ctx: DemoContext) -> dict[str, int]:
        component = self._component(ctx)
        return component.status().get("states", {}) if component is not None else {}

    def exercise(self, ctx: DemoContext) -> None:
        r = self.result
        if not wait_until(lambda: (self._component(ctx) is not None
                              and self._component(ctx).status().get("labels") == len(SHELF) + len(FRIDGE)), WAIT_S):
            ctx.errors.append("labels: the esl component did not discover the simulated labels")
            return
        version = int(time.time() * 1000)
        out = ctx.send_command("price.update", {"version": version, "effective_at": None, "upsert": ARTICLES,
                                                "delete": []})
        r["price_update"] = out.get("status")
        links = [{"label": mac, "plu": a["plu"], "position": {"aisle": "3", "shelf": 2, "slot": i + 1}}
                 for i, (mac, a) in enumerate(zip(SHELF, ARTICLES))]
        links += [{"label": FRIDGE[0], "plu": "2001", "fridge_group": "dairy",
                   "position": {"aisle": "9", "shelf": 1, "slot": 1}},
                  {"label": FRIDGE[1], "plu": "2002", "fridge_group": "dairy",
                   "position": {"aisle": "9", "shelf": 1, "slot": 2}}]
        out = ctx.send_command("esl.relink", {"links": links})
        r["relink"] = out.get("status")
        all_idle = lambda: self._states(ctx).get("idle") == len(SHELF) + len(FRIDGE)  # noqa: E731
        r["initial_confirmed"] = wait_until(all_idle, WAIT_S)
        ctx.say(f"labels     {self._states(ctx)} after the first price book and links")
        # A price change from the cloud, timed from sending to the label's confirmation.
        before = self.ap.field.tags[SHELF[2]].hash
        t0 = time.time()
        out = ctx.send_command("price.update", {"version": version + 1, "effective_at": None, "delete": [],
                                                "upsert": [{**ARTICLES[2], "price": 2.80}]})
        changed = wait_until(lambda: self.ap.field.tags[SHELF[2]].hash != before and all_idle(), WAIT_S)
        r["price_change"] = {"plu": "2003", "price": 2.80, "command": out.get("status"), "confirmed": changed,
                             "seconds_to_shelf": round(time.time() - t0, 2) if changed else None}
        ctx.say(f"labels     price change of PLU 2003 shown and confirmed in {r['price_change']['seconds_to_shelf']} s")
        self._picking(ctx)
        self._fridge(ctx)

    def _picking(self, ctx: DemoContext) -> None:
        esl = ctx.agent.esl
        orders = [esl.pick({"order_id": "web-1001", "plus": ["2001", "2003"]}),
                  esl.pick({"order_id": "web-1002", "plus": ["2004"]})]
        lit = wait_until(lambda: all(self.ap.field.tags[m].led for m in (SHELF[0], SHELF[2], SHELF[3])), 5)
        self.result["picking"] = {
            "orders": [{"order_id": o.get("order_id"), "colour": o.get("colour"),
                        "labels": [x["label"] for x in o.get("labels", [])], "error": o.get("error")} for o in orders],
            "leds": {m: (self.ap.field.tags[m].led or {}).get("colour") for m in SHELF},
            "distinct_colours": len({o.get("colour") for o in orders}) == len(orders), "lit": lit}
        ctx.say("labels     picking: " + ", ".join(f"{o.get('order_id')} {o.get('colour')}" for o in orders))
        for o in orders:
            esl.pick_done({"order_id": o.get("order_id")})

    def _fridge(self, ctx: DemoContext) -> None:
        component = self._component(ctx)
        for mac in FRIDGE:
            self.ap.field.tags[mac].temperature = 9.0
        raised = wait_until(lambda: "cold_chain:dairy" in component.status()["active_alarms"], WAIT_S)
        ctx.say(f"labels     fridge 'dairy' at 9 °C: cold-chain alarm {'raised' if raised else 'NOT raised'}")
        for mac in FRIDGE:
            self.ap.field.tags[mac].temperature = 3.0
        cleared = wait_until(lambda: "cold_chain:dairy" not in component.status()["active_alarms"], WAIT_S)
        self.result["fridge_alarm"] = {"group": "dairy", "raised": raised, "cleared": cleared}

    def summary(self, ctx: DemoContext) -> dict[str, Any]:
        r = dict(self.result)
        component = self._component(ctx)
        if component is not None:
            status = component.status()
            r["gateway"] = {"name": GATEWAY, "labels": status.get("labels"), "states": status.get("states"),
                            "counts": status.get("counts"), "sent": status.get("sent")}
        if self.ap is not None:
            r["simulator"] = dict(self.ap.field.counts)
            r["shown"] = {m: {"hash": t.hash[:16], "updates": t.update_count} for m, t in self.ap.field.tags.items()}
        if ctx.agent is not None:
            from agent.store import connect

            conn = connect(ctx.agent.db_path)
            try:
                r["time_to_shelf_s"] = [round(row[0], 2) for row in conn.execute(
                    "SELECT confirmed_at - desired_since FROM esl_shelf_times WHERE confirmed_at IS NOT NULL"
                    " ORDER BY id")]
            finally:
                conn.close()
        for key, what in (("initial_confirmed", "not every label confirmed its first content"),):
            if key in r and not r[key]:
                ctx.errors.append(f"labels: {what}")
        if r.get("price_change") and not r["price_change"]["confirmed"]:
            ctx.errors.append("labels: the price change was not confirmed on the label")
        if r.get("fridge_alarm") and not (r["fridge_alarm"]["raised"] and r["fridge_alarm"]["cleared"]):
            ctx.errors.append("labels: the fridge alarm did not raise and clear")
        if r.get("picking") and not (r["picking"]["distinct_colours"] and r["picking"]["lit"]):
            ctx.errors.append("labels: picking orders did not light their labels in distinct colours")
        return r

    def close(self) -> None:
        if self.ap is not None:
            self.ap.stop()
