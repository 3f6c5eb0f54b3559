"""What the ``Agent`` needs for shelf labels in one object: gateway backends, the ``esl.*`` commands, the
``esl-<gateway>`` components and the control-socket routes (``esl.pick``, ``esl.pick_done``, ``esl.find``,
``esl.status``) the CLI uses while the daemon runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.device_models import EslGatewayConfig
from agent.esl import leds
from agent.esl.commands import register_esl
from agent.esl.component import EslGatewayComponent, backend_for
from agent.esl.state import load_labels
from agent.store import connect
from devices.esl.backends.base import GatewayBackend
from sync.commands import CommandProcessor
from sync.outbox import Outbox

log = logging.getLogger(__name__)


class EslRuntime:
    """Shelf-label wiring of one agent (no gateways configured → no components, commands still answer)."""

    def __init__(self, gateways: list[EslGatewayConfig], db_path: Path, outbox: Outbox) -> None:
        self.gateways = {g.name: g for g in gateways}
        self.db_path = db_path
        self.outbox = outbox
        self.backends: dict[str, GatewayBackend] = {g.name: backend_for(g) for g in gateways}
        self.components: dict[str, EslGatewayComponent] = {}

    def register(self, processor: CommandProcessor, pricebook_listeners: list[Any]) -> None:
        register_esl(processor, backends=lambda: self.backends, on_relink=self._relinked)
        pricebook_listeners.append(self._price_changed)

    def factories(self) -> list[tuple[str, Callable[[], EslGatewayComponent]]]:
        return [(f"esl-{name}", self._factory(name)) for name in self.gateways]

    def _factory(self, name: str) -> Callable[[], EslGatewayComponent]:
        def build() -> EslGatewayComponent:
            component = EslGatewayComponent(self.gateways[name], self.db_path, self.outbox,
                                            backend=self.backends[name])
            self.components[name] = component
            return component

        return build

    def reconfigure(self, gateways: list[EslGatewayConfig], supervisor: Any) -> None:
        """Apply a new ``[[esl_gateways]]`` list (``config.update`` from the cloud or a reload): stop removed
        gateways, start new ones, restart changed ones (fridge thresholds, timings, URL)."""
        new = {g.name: g for g in gateways}
        for name in self.gateways.keys() - new.keys():
            log.info("ESL gateway removed: stopping it", extra={"gateway": name})
            supervisor.stop_one(f"esl-{name}")
            self.components.pop(name, None)
        for name, gateway in new.items():
            old = self.gateways.get(name)
            if old == gateway and f"esl-{name}" in supervisor.names():
                continue
            self.gateways[name] = gateway
            self.backends[name] = backend_for(gateway)
            if f"esl-{name}" not in supervisor.names():
                supervisor.add(f"esl-{name}", self._factory(name))
                supervisor.start_one(f"esl-{name}")
            else:
                log.info("ESL gateway config changed: restarting it", extra={"gateway": name})
                supervisor.restart(f"esl-{name}")
        for name in self.gateways.keys() - new.keys():
            del self.gateways[name]
            self.backends.pop(name, None)

    def _relinked(self) -> None:
        for component in self.components.values():
            component.relinked()

    def _price_changed(self, result: dict[str, Any]) -> None:
        for component in self.components.values():
            component.price_changed(result)

    # -- local API (control socket) -----------------------------------------------------------------
    def routes(self) -> dict[str, Callable[..., dict[str, Any]]]:
        return {"esl.pick": self.pick, "esl.pick_done": self.pick_done, "esl.find": self.find,
                "esl.status": self.labels_status}

    def _with_conn(self, fn: Callable[..., dict[str, Any]], *args: Any, **kw: Any) -> dict[str, Any]:
        conn = connect(self.db_path)
        try:
            return fn(conn, self.backends, *args, **kw)
        except leds.LedRequestError as exc:
            return {"error": str(exc), "reason": exc.reason}
        finally:
            conn.close()

    def pick(self, args: dict[str, Any] | None = None) -> dict[str, Any]:
        a = args or {}
        return self._with_conn(leds.pick, str(a.get("order_id", "")), list(a.get("plus") or []),
                               colour=a.get("colour"), pattern=a.get("pattern", "blink"),
                               duration_s=float(a.get("duration_s", 300.0)))

    def pick_done(self, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._with_conn(leds.pick_done, str((args or {}).get("order_id", "")))

    def find(self, args: dict[str, Any] | None = None) -> dict[str, Any]:
        a = args or {}
        return self._with_conn(leds.find, str(a.get("plu", "")), colour=a.get("colour", "white"),
                               duration_s=float(a.get("duration_s", 60.0)))

    def labels_status(self, args: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = connect(self.db_path)
        try:
            rows = load_labels(conn)
        finally:
            conn.close()
        return {"labels": [r.brief() for r in rows.values()],
                "gateways": {n: c.status() for n, c in self.components.items()}}
