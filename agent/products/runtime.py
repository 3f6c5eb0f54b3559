"""How the agent holds product recognition: the ``products.gallery_update`` command, the ``products``
component and the scale listener hook, in one object the :class:`~agent.daemon.agent.Agent` creates.

The supervisor may rebuild the component after a crash; :meth:`ProductsRuntime.on_scale_event` always reaches
the current one, and the embedder (the slow part to open) is shared across rebuilds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agent.products.commands import register_products
from agent.products.service import WeighingService

log = logging.getLogger(__name__)


class ProductsRuntime:
    """Owns the current :class:`WeighingService` of an agent (``service`` is None until it is built)."""

    def __init__(self, cfg: Any, db_path: Path, outbox: Any, local_bus: Any, processor: Any) -> None:
        self.cfg = cfg
        self.products_cfg = effective_products_config(cfg)
        self.db_path = db_path
        self.outbox = outbox
        self.local_bus = local_bus
        self.service: WeighingService | None = None
        self._embedder: Any = None
        if cfg.products.enabled:
            register_products(processor, space=self._space, cap_per_plu=cfg.products.cap_per_plu,
                              dedupe_cosine=cfg.products.dedupe_cosine, on_change=self._on_gallery_change)

    @property
    def wanted(self) -> bool:
        """Whether the ``products`` component should run (enabled and at least one scale camera)."""
        return bool(self.products_cfg.enabled and self.products_cfg.cameras)

    def build(self) -> WeighingService:
        """Supervisor factory of the ``products`` component."""
        self.service = WeighingService(self.products_cfg, db_path=self.db_path, outbox=self.outbox,
                                       model_dir=self.cfg.models.dir, mirror=self.cfg.models.mirror,
                                       local_bus=self.local_bus, embedder=self._embedder)
        return self.service

    def reconfigure(self, cfg: Any) -> str | None:
        """Adopt a reloaded config; returns what the component needs: ``"start"``, ``"restart"``, ``"stop"``
        or None (unchanged)."""
        old_wanted, old = self.wanted, self.products_cfg
        old_models = self.cfg.models
        self.cfg, self.products_cfg = cfg, effective_products_config(cfg)
        new = self.products_cfg
        if (old.embedder, old.head, old.flip_tta, old.threads, old_models) != (
                new.embedder, new.head, new.flip_tta, new.threads, cfg.models):
            self._embedder = None
        if not self.wanted:
            return "stop" if old_wanted else None
        if not old_wanted:
            return "start"
        return "restart" if (new != old or old_models != cfg.models) else None

    def on_scale_event(self, event: Any) -> None:
        """Listener for the scale components' events (acts on ``stable``)."""
        if self.service is not None:
            self.service.on_scale_event(event)

    def _space(self) -> tuple[str, int]:
        if self.service is not None:
            return self.service.space()
        if self._embedder is None:
            from agent.products.recognizer import embedder_from_config

            self._embedder = embedder_from_config(self.cfg.products, self.cfg.models.dir,
                                                  mirror=self.cfg.models.mirror)
        return str(getattr(self._embedder, "space", self._embedder.name)), int(self._embedder.dim)

    def _on_gallery_change(self) -> None:
        if self.service is not None:
            self.service.reload_gallery()


def effective_products_config(cfg: Any) -> Any:
    """``cfg.products`` with a tray camera added for every enabled ``[[scales]]`` entry that names one
    (``camera`` = a ``[[cameras]]`` name, ``tray_roi``); ``[[products.cameras]]`` entries take precedence."""
    from agent.config.products_models import ScaleCameraConfig

    products = cfg.products
    cameras = list(products.cameras)
    scales = {s.name for s in getattr(cfg, "scales", [])}
    for camera in cameras:
        if camera.scale not in scales:  # a typo would silently mean "no recognition"
            log.warning("[[products.cameras]] names scale %r, which is not a [[scales]] entry: its camera is "
                        "never used", camera.scale, extra={"scale": camera.scale})
    have = {c.scale for c in cameras}
    by_name = {c.name: c for c in getattr(cfg, "cameras", [])}
    for scale in getattr(cfg, "scales", []):
        camera = by_name.get(getattr(scale, "camera", "") or "")
        if camera is None or scale.name in have or not getattr(scale, "enabled", True):
            continue
        roi = tuple(getattr(scale, "tray_roi", None) or (0.0, 0.0, 1.0, 1.0))
        cameras.append(ScaleCameraConfig(scale=scale.name, url=camera.url,
                                         roi=None if roi == (0.0, 0.0, 1.0, 1.0) else roi))
    return products.model_copy(update={"cameras": cameras})
