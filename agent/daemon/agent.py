"""The ``Agent``: composes config, store, outbox, command processor, sync client and components.

``store-agent run`` builds one and calls :meth:`Agent.run`; the demo and the tests run it in a thread.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import __version__
from agent.commands.builtin import read_overlay, register_builtin
from agent.config import AgentConfig, load_config, read_secret
from agent.daemon.control import SOCKET_NAME, ControlServer
from agent.esl.runtime import EslRuntime
from agent.daemon.health import HealthReporter
from agent.daemon.supervisor import Supervisor, SupervisorPolicy
from agent.identity.commands import register_identity
from agent.identity.runtime import IdentityMaintenance, open_identity
from agent.pricebook import register_pricebook
from agent.products.runtime import ProductsRuntime
from agent.store import connect, open_store
from sync.client import SyncClient
from sync.commands import CommandProcessor
from sync.local_bus import LocalBus
from sync.envelope import new_msg_id
from sync.outbox import Outbox
from sync.settings import SyncSettings, TlsSettings
from sync.signing import load_public_key

log = logging.getLogger(__name__)


def sync_settings(cfg: AgentConfig) -> SyncSettings:
    """Translate the agent's ``[sync]`` section into the sync package's settings (reads the password file)."""
    s = cfg.sync
    return SyncSettings(
        host=s.host, port=s.port, protocol=s.protocol, client_id=cfg.mqtt_client_id, keepalive_s=s.keepalive_s,
        username=s.username or None,
        password=read_secret(s.password_file, field="sync.password_file") if s.password_file else None,
        tls=TlsSettings(enabled=s.use_tls, ca_file=s.tls.ca_file, cert_file=s.tls.cert_file,
                        key_file=s.tls.key_file, insecure_skip_verify=s.tls.insecure_skip_verify),
        max_inflight=s.max_inflight, drain_rate_msgs_per_s=s.drain_rate_msgs_per_s,
        reconnect_min_s=s.reconnect_min_s, reconnect_max_s=s.reconnect_max_s,
        require_cloud_ack=s.require_cloud_ack, cloud_ack_timeout_s=s.cloud_ack_timeout_s,
        historical_after_s=s.historical_after_s,
    )


class Agent:
    """One store's daemon. Construct, then ``run()`` (blocks until stopped)."""

    def __init__(self, config_path: Path | None, *, env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.env = env
        base = load_config(config_path, env=env)
        self.db_path = open_store(base.data_dir)
        self._read_conn = connect(self.db_path)
        self._read_lock = threading.Lock()
        _, overlay = read_overlay(self._read_conn)
        self.config = load_config(config_path, env=env, overlay=overlay) if overlay else base
        cfg = self.config
        self.boot_id = new_msg_id()
        self.started_at = time.time()
        self._record_boot()
        self.outbox = Outbox(self.db_path, store_id=cfg.store_id, boot_id=self.boot_id,
                             priority_for=cfg.sync.priority_for, max_bytes=int(cfg.sync.outbox_max_mb * 2**20),
                             max_messages=cfg.sync.outbox_max_messages, default_ttl_s=cfg.sync.default_ttl_s,
                             connect=connect)
        self.processor = CommandProcessor(
            self.outbox, store_id=cfg.store_id,
            trusted_keys={kid: load_public_key(b64) for kid, b64 in cfg.commands.trusted_keys.items()},
            max_bytes=cfg.commands.max_bytes, max_clock_skew_s=cfg.commands.max_clock_skew_s)
        register_builtin(self.processor, config_path=config_path, boot_id=self.boot_id, started_at=self.started_at,
                         versions=self.versions, on_config=self._queue_reload)
        #: Called with the result of each committed price.update (e.g. to wake the shelf-label reconciler).
        self.pricebook_listeners: list[Any] = []
        register_pricebook(self.processor, on_change=lambda result: [fn(result) for fn in self.pricebook_listeners])
        self.supervisor = Supervisor(SupervisorPolicy(**cfg.supervisor.model_dump()))
        self.local_bus = self._make_local_bus(cfg)
        #: Face identity (None unless [identity] embedding_key_file is set; see agent/identity/runtime.py).
        self.identity_service, self._identity_error = open_identity(cfg, self.db_path, self.outbox, self.local_bus)
        register_identity(self.processor, cfg=cfg.identity, cipher=getattr(self.identity_service, "cipher", None),
                          on_change=self.identity_service.reload if self.identity_service is not None else None)
        #: Product recognition at the scales; scale components call ``self.products.on_scale_event(event)``.
        self.products = ProductsRuntime(cfg, self.db_path, self.outbox, self.local_bus, self.processor)
        #: Shelf labels: gateway backends, esl.* commands, esl-<gateway> components, control routes.
        self.esl = EslRuntime(cfg.esl_gateways, self.db_path, self.outbox)
        self.esl.register(self.processor, self.pricebook_listeners)
        #: Scale name → listeners of its events (see agent/scale/component.py); recognition is attached here.
        self.scale_listeners: dict[str, list[Any]] = {}
        self._add_components()
        self._reload: AgentConfig | None = None
        self._reload_lock = threading.Lock()
        self.stop_event = threading.Event()

    # -- composition -------------------------------------------------------------------------------
    @staticmethod
    def _make_local_bus(cfg: AgentConfig) -> LocalBus | None:
        """The store's local MQTT bus (started by :meth:`run`), or None when ``[local_bus]`` is disabled."""
        if not cfg.local_bus.enabled:
            return None
        from agent.config import parse_broker_url

        address = parse_broker_url(cfg.local_bus.broker)
        return LocalBus(address.host, address.port, client_id=f"{cfg.mqtt_client_id}-local",
                        topic_prefix=cfg.local_topic_prefix, protocol=cfg.local_bus.protocol,
                        max_queued=cfg.local_bus.max_queued)

    def _add_components(self) -> None:
        if self.config.sync.enabled:
            self.supervisor.add("sync", lambda: SyncClient(
                sync_settings(self.config), self.outbox, self.processor, store_id=self.config.store_id,
                boot_id=self.boot_id, versions=self.versions, on_desired=self._record_desired))
        for camera in self.config.cameras:
            if camera.enabled:
                self.supervisor.add(f"camera-{camera.name}", self._camera_factory(camera.name))
        for scale in self.config.scales:
            if scale.enabled:
                self.supervisor.add(f"scale-{scale.name}", self._scale_factory(scale.name))
        if self.products.wanted:
            self.supervisor.add("products", self.products.build)
        self.supervisor.add("identity", lambda: IdentityMaintenance(
            self.config.identity, self.db_path, self.identity_service, error=self._identity_error))
        for name, factory in self.esl.factories():
            self.supervisor.add(name, factory)
        self.supervisor.add("health", lambda: HealthReporter(
            self.outbox, data_dir=self.config.data_dir, interval_s=self.config.health.interval_s,
            components=self.supervisor.status_brief, boot_id=self.boot_id, started_at=self.started_at))

    def _scale_factory(self, name: str):  # noqa: ANN202 - a factory of ScaleComponent
        listeners = self.scale_listeners.setdefault(name, [self.products.on_scale_event])

        def build() -> Any:
            from agent.scale.component import ScaleComponent

            scale = next(s for s in self.config.scales if s.name == name)
            return ScaleComponent(scale, self.outbox, listeners=listeners)

        return build

    def _camera_factory(self, name: str):  # noqa: ANN202 - a factory of CameraPipeline
        def build() -> Any:
            from agent.vision.pipeline import CameraPipeline  # cv2/onnxruntime load only when a camera is set

            camera = next(c for c in self.config.cameras if c.name == name)
            return CameraPipeline(camera, self.config.vision, self.config.models, self.outbox,
                                  snapshot_dir=self.config.data_dir / "snapshots" / camera.name,
                                  identity_cfg=self.config.identity,
                                  identity_service=self.identity_service)

        return build

    def _record_boot(self) -> None:
        with self._read_lock:
            self._read_conn.execute(
                "INSERT INTO agent_state(key, value) VALUES ('boot', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps({"boot_id": self.boot_id, "started_at": self.started_at, "pid": os.getpid(),
                             "agent_version": __version__}),))

    def versions(self) -> dict[str, Any]:
        """What the birth message and ``ping`` report: applied resource versions plus the agent's version."""
        with self._read_lock:
            rows = self._read_conn.execute("SELECT resource, version FROM resource_versions").fetchall()
        versions: dict[str, Any] = {r: int(v) for r, v in rows}
        versions.setdefault("config", 0)
        versions["agent"] = __version__
        return versions

    def _record_desired(self, desired: dict[str, Any]) -> None:
        now = time.time()
        with self._read_lock:
            for resource, version in desired.items():
                if isinstance(version, int):
                    self._read_conn.execute(
                        "INSERT INTO desired_versions(resource, version, received_at) VALUES (?,?,?)"
                        " ON CONFLICT(resource) DO UPDATE SET version = excluded.version,"
                        " received_at = excluded.received_at", (resource, version, now))

    # -- config reload -----------------------------------------------------------------------------
    def _queue_reload(self, cfg: AgentConfig) -> None:
        # Called from the sync thread after a config.update committed; the main loop applies it, since
        # restarting the sync component from its own thread would deadlock.
        with self._reload_lock:
            self._reload = cfg

    def _apply_reload(self) -> None:
        with self._reload_lock:
            cfg, self._reload = self._reload, None
        if cfg is None:
            return
        old, self.config = self.config, cfg
        self.outbox.priority_for = cfg.sync.priority_for
        self.outbox.max_bytes = int(cfg.sync.outbox_max_mb * 2**20)
        self.outbox.max_messages = cfg.sync.outbox_max_messages
        self.outbox.default_ttl_s = cfg.sync.default_ttl_s
        self.supervisor.policy = SupervisorPolicy(**cfg.supervisor.model_dump())
        if self.identity_service is not None and old.identity != cfg.identity:
            self.identity_service.apply_config(cfg.identity)
        for name, section in (("health", "health"), ("sync", "sync")):
            if getattr(old, section) != getattr(cfg, section) and name in self.supervisor.names():
                log.info("config changed: restarting component", extra={"component": name})
                self.supervisor.restart(name)
        old_cameras = {c.name: c for c in old.cameras if c.enabled}
        self._reconcile_devices("camera", old_cameras, {c.name: c for c in cfg.cameras if c.enabled},
                                self._camera_factory,
                                lambda camera: (old_cameras[camera.name] != camera or old.vision != cfg.vision
                                                or old.models != cfg.models
                                                or (camera.identification and old.identity != cfg.identity)))
        if old.esl_gateways != cfg.esl_gateways:
            self.esl.reconfigure(cfg.esl_gateways, self.supervisor)
        old_scales = {c.name: c for c in old.scales if c.enabled}
        self._reconcile_devices("scale", old_scales, {c.name: c for c in cfg.scales if c.enabled},
                                self._scale_factory, lambda scale: old_scales[scale.name] != scale)
        self._reload_products(cfg)

    def _reconcile_devices(self, kind: str, old: dict[str, Any], new: dict[str, Any],
                           factory: Callable[[str], Callable[[], Any]], changed: Callable[[Any], bool]) -> None:
        """Components ``{kind}-{name}`` follow the config: stop removed devices, add new ones, restart those
        that ``changed(section)`` (called only for devices present before and after)."""
        for device in old.keys() - new.keys():
            log.info(f"{kind} removed or disabled: stopping it", extra={kind: device})
            self.supervisor.stop_one(f"{kind}-{device}")
        for device, section in new.items():
            name = f"{kind}-{device}"
            if name not in self.supervisor.names():
                self.supervisor.add(name, factory(device))
                self.supervisor.start_one(name)
            elif device not in old or changed(section):
                log.info("config changed: restarting component", extra={"component": name})
                self.supervisor.restart(name)

    def _reload_products(self, cfg: AgentConfig) -> None:
        action = self.products.reconfigure(cfg)
        if action == "stop":
            self.supervisor.stop_one("products")
        elif action == "start" and "products" not in self.supervisor.names():
            self.supervisor.add("products", self.products.build)
            self.supervisor.start_one("products")
        elif action is not None:
            log.info("config changed: restarting component", extra={"component": "products"})
            self.supervisor.restart("products")

    # -- running -----------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Run until ``stop`` is set or SIGTERM/SIGINT arrives (signals only when on the main thread)."""
        stop = stop or self.stop_event
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        control = ControlServer(self.config.data_dir / SOCKET_NAME, {"status": self.status, **self.esl.routes()})
        control.start()
        if self.local_bus is not None:
            self.local_bus.start()
        self.supervisor.start()
        log.info("agent started", extra={"store_id": self.config.store_id, "boot_id": self.boot_id})
        try:
            while not stop.wait(0.2):
                self._apply_reload()
        finally:
            t0 = time.monotonic()
            clean = self._stop_components(self.config.supervisor.stop_timeout_s)
            if self.local_bus is not None:
                self.local_bus.close()
            control.close()
            with self._read_lock:
                self._read_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            log.info("agent stopped", extra={"clean": clean, "stop_s": round(time.monotonic() - t0, 2)})

    def _stop_components(self, timeout_s: float) -> bool:
        """Producers first (cameras flush their open visits and last aggregates), then give the sync client a
        moment to send what they queued, then the rest — all within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        clean = True
        for name in self.supervisor.names():
            if name != "sync":
                clean &= self.supervisor.stop_one(name, max(0.1, 0.6 * (deadline - time.monotonic())))
        sync = self.supervisor.component("sync")
        drain_until = min(deadline - 1.0, time.monotonic() + 2.0)
        while (sync is not None and sync.status().get("connected") and self.outbox.depth(self._read_conn_locked())
               and time.monotonic() < drain_until):
            time.sleep(0.05)
        return clean & self.supervisor.stop(max(0.1, deadline - time.monotonic()))

    def _read_conn_locked(self):  # noqa: ANN202 - the agent's own read connection (caller-thread safe)
        return self._read_conn

    def status(self) -> dict[str, Any]:
        """Everything ``store-agent status`` shows."""
        components = self.supervisor.status()
        sync = next((c.get("detail") for c in components if c["name"] == "sync"), None) or {}
        with self._read_lock:
            streams = self.outbox.stats(self._read_conn)
            version, _ = read_overlay(self._read_conn)
        last_sync = max((s["last_acked_at"] or 0 for s in streams.values()), default=0) or None
        return {
            "store_id": self.config.store_id, "boot_id": self.boot_id, "pid": os.getpid(),
            "agent_version": __version__, "uptime_s": round(time.time() - self.started_at, 1),
            "config_version": version, "components": components,
            "outbox": {name: {"depth": s["depth"], "enqueued": s["enqueued"], "acked": s["acked"],
                              "shed": s["shed"], "priority": s["priority"]} for name, s in streams.items()},
            "last_successful_sync": last_sync, "broker_connected": bool(sync.get("connected")),
            "broker": sync.get("broker"), "commands": dict(self.processor.counts),
            "local_bus": self.local_bus.status() if self.local_bus is not None else None,
        }

    def close(self) -> None:
        """Release the agent's own connections (components close theirs when they stop)."""
        with self._read_lock:
            self._read_conn.close()
        self.outbox.close()


def read_status_offline(db_path: Path) -> dict[str, Any]:
    """What can be said from the store alone when no daemon answers on the control socket."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT stream, priority, enqueued, acked, shed, depth, last_acked_at FROM outbox_streams"
                            " ORDER BY stream").fetchall()
        boot = conn.execute("SELECT value FROM agent_state WHERE key = 'boot'").fetchone()
    finally:
        conn.close()
    return {
        "running": False, "last_boot": json.loads(boot[0]) if boot else None,
        "outbox": {r[0]: {"priority": r[1], "enqueued": r[2], "acked": r[3], "shed": r[4], "depth": r[5]}
                   for r in rows},
        "last_successful_sync": max((r[6] or 0 for r in rows), default=0) or None,
    }
