"""The spine's own command kinds: ``ping``, ``config.update`` and ``sync.resend``.

Handlers run inside the processor's transaction: they write through ``conn`` and return the result body; a
``CommandRejected`` rolls everything back.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import AgentConfig, ConfigError, load_config
from agent.config.loader import deep_merge
from sync.commands import Command, CommandProcessor, CommandRejected, Handler

#: Config keys the cloud may not change remotely: a bad value would cut the store off from the cloud
#: (broker, TLS, credentials, trusted keys) or move its data (store_id, data_dir). Change them on the box.
LOCAL_ONLY_KEYS: frozenset[str] = frozenset({
    "store_id", "data_dir", "sync.broker", "sync.tls", "sync.username", "sync.password_file", "sync.client_id",
    "sync.protocol", "commands",
    # Privacy switches stay with the store's operator: the cloud cannot turn on embedding export or swap the key.
    "identity.share_embeddings_with_cloud", "identity.embedding_key_file",
})


def read_overlay(conn: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
    """The cloud's config overlay and its version (0 and {} when none was applied)."""
    row = conn.execute("SELECT version, body FROM config_overlay WHERE id = 1").fetchone()
    return (int(row[0]), json.loads(row[1])) if row else (0, {})


def register_builtin(processor: CommandProcessor, *, config_path: Path | None, boot_id: str,
                     started_at: float, versions: Callable[[], dict[str, Any]],
                     on_config: Callable[[AgentConfig], None]) -> None:
    """Register ping, config.update and sync.resend."""

    def ping(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        return {"pong": True, "boot_id": boot_id, "agent_version": __version__,
                "uptime_s": round(time.time() - started_at, 1), "versions": versions(), "echo": cmd.body.get("echo")}

    pending_config: dict[str, AgentConfig] = {}

    def config_update(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        patch = cmd.body.get("config")
        if not isinstance(patch, dict):
            raise CommandRejected("invalid_body", "body must be {\"config\": {...}} with the keys to change")
        forbidden = sorted(p for p in _leaf_paths(patch) if _is_local_only(p))
        if forbidden:
            raise CommandRejected("forbidden_key", f"these keys can only be changed on the box: {', '.join(forbidden)}")
        replace = bool(cmd.body.get("replace", False))
        _, current = read_overlay(conn)
        overlay = patch if replace else deep_merge(current, patch)
        try:
            cfg = load_config(config_path, overlay=overlay)
        except ConfigError as exc:
            raise CommandRejected("invalid_config", str(exc)) from exc
        conn.execute("INSERT INTO config_overlay(id, version, body, applied_at) VALUES (1, ?, ?, ?)"
                     " ON CONFLICT(id) DO UPDATE SET version = excluded.version, body = excluded.body,"
                     " applied_at = excluded.applied_at", (cmd.version, json.dumps(overlay), time.time()))
        pending_config[cmd.cmd_id] = cfg
        return {"config_version": cmd.version, "changed": sorted(_leaf_paths(patch))}

    def config_applied(cmd: Command, result: dict[str, Any]) -> None:
        cfg = pending_config.pop(cmd.cmd_id, None)
        if cfg is not None:
            on_config(cfg)

    def sync_resend(cmd: Command, conn: sqlite3.Connection) -> dict[str, Any]:
        streams = cmd.body.get("streams")
        if streams is not None and (not isinstance(streams, list) or not all(isinstance(s, str) for s in streams)):
            raise CommandRejected("invalid_body", "'streams' must be a list of stream names")
        sql = "UPDATE outbox SET state = 0 WHERE state = 1"
        args: list[Any] = []
        if streams:
            sql += f" AND stream IN ({','.join('?' * len(streams))})"
            args.extend(streams)
        requeued = conn.execute(sql, args).rowcount
        return {"requeued": requeued, "streams": streams or "all"}

    processor.register("ping", Handler(apply=ping))
    processor.register("config.update", Handler(apply=config_update, resource=lambda cmd: "config",
                                                after_commit=config_applied))
    processor.register("sync.resend", Handler(apply=sync_resend))


def _is_local_only(path: str) -> bool:
    return any(path == key or path.startswith(key + ".") for key in LOCAL_ONLY_KEYS)


def _leaf_paths(data: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_leaf_paths(value, path + "."))
        else:
            out.append(path)
    return out
