"""Wiring of the identity side into the daemon: build the service from config, and the maintenance component
that enforces retention (also while offline) and picks up CLI changes.

The agent calls :func:`open_identity` in ``Agent.__init__``, registers the commands with
:func:`agent.identity.commands.register_identity`, and adds :class:`IdentityMaintenance` as component
``identity``. When a camera has identification on but no key is configured, :func:`open_identity` returns no
service and the component fails at start with the error (after a retention purge, which needs no key), so
``store-agent status`` shows why identification is not running (counting is unaffected).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.config.identity_models import IdentityConfig
from agent.identity.crypto import IdentityKeyError, load_cipher
from sync.sqlite import transaction

log = logging.getLogger(__name__)

__all__ = ["IdentityMaintenance", "IdentityKeyError", "identification_enabled", "open_identity"]


def identification_enabled(cfg: AgentConfig) -> bool:
    """True when an enabled camera has ``identification = true``."""
    return any(c.enabled and c.identification for c in cfg.cameras)


def open_identity(cfg: AgentConfig, db_path: Path, outbox: Any, local_bus: Any = None
                  ) -> tuple[Any | None, str | None]:
    """``(IdentityService or None, error or None)``.

    A service is built when an embedding key is configured (commands and CLI enrolments need it even while no
    camera identifies). Identification enabled without a key → no service and a clear error.
    """
    ident = cfg.identity
    if ident.embedding_key_file is None:
        if identification_enabled(cfg):
            return None, ("face identification is enabled on a camera but [identity] embedding_key_file is not "
                          "set: refusing to run identification without encryption at rest. Create a key with "
                          "`store-agent identities init-key PATH` and set embedding_key_file.")
        return None, None
    try:
        cipher = load_cipher(ident.embedding_key_file)
        from agent.identity.alerts import AlertDispatcher
        from agent.identity.service import IdentityService

        bus = local_bus if ident.alert_local_bus else None
        alerts = AlertDispatcher(bus=bus, webhook_url=ident.alert_webhook_url,
                                 webhook_timeout_s=ident.alert_webhook_timeout_s)
        service = IdentityService(ident, db_path, cipher, outbox, alerts=alerts)
    except IdentityKeyError as exc:
        return None, f"identity disabled: {exc}"
    if local_bus is not None:
        service.attach_bus(local_bus)
    return service, None


class IdentityMaintenance:
    """Component ``identity``: retention purge every ``purge_interval_s`` (and at start), CLI-change refresh
    every ``refresh_s``. Runs without a service too (purging needs no key)."""

    def __init__(self, cfg: IdentityConfig, db_path: Path, service: Any | None, *, error: str | None = None,
                 refresh_s: float = 2.0) -> None:
        self.error = error
        self.cfg = cfg
        self.db_path = db_path
        self.service = service
        self.refresh_s = refresh_s
        self.last_purge: float | None = None
        self.purged = 0

    def purge_once(self, now: float | None = None) -> int:
        """One retention pass; returns identities deleted."""
        now = time.time() if now is None else now
        if self.service is not None:
            n = self.service.purge(now)
        else:
            from agent.identity import repository as repo
            from agent.store import connect

            conn = connect(self.db_path)
            try:
                with transaction(conn):
                    n = len(repo.purge_expired(conn, now=now, retention_s=self.cfg.retention_days * 86400.0))
            finally:
                conn.close()
            if n:
                log.info("identity retention purge", extra={"deleted": n})
        self.last_purge, self.purged = now, self.purged + n
        return n

    def run(self, stop: threading.Event) -> None:
        """Purge now, then periodically until ``stop``. With a start-up ``error`` (identification on but no
        usable key): purge once, then fail with the error, so the status shows it and each supervisor retry
        still enforces retention."""
        if self.error:
            self.purge_once()
            raise IdentityKeyError(self.error)
        next_purge = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_purge:
                    self.purge_once()
                    next_purge = time.monotonic() + self.cfg.purge_interval_s
                if self.service is not None:
                    self.service.refresh()
                stop.wait(self.refresh_s)
        finally:
            if self.service is not None:
                self.service.close()

    def status(self) -> dict[str, Any]:
        """Last purge, totals and the service's gallery sizes."""
        out: dict[str, Any] = {"last_purge": self.last_purge, "purged": self.purged}
        if self.service is not None:
            out.update(self.service.status())
        return out
