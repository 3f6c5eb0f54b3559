"""Run the real agent and the reference cloud in-process (threads) or as a subprocess, for tests.

Everything is real: the agent's SQLite store, the outbox, paho against mosquitto, the cloud receiver's own
database. Helpers only spare each test the wiring.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import parse_broker_url
from agent.daemon.agent import Agent
from sync.cloud.commands import build_command
from sync.cloud.receiver import CloudReceiver, ReceiverSettings
from sync.cloud.store import CloudStore
from sync.signing import generate_keypair, write_private_key

KEY_ID = "test-cloud"


def toml_value(value: Any) -> str:
    """A Python value as TOML (enough for test configs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value)} to TOML")


def write_config(path: Path, *, store_id: str, data_dir: Path, broker_url: str, public_key_b64: str | None = None,
                 sync: dict[str, Any] | None = None, health: dict[str, Any] | None = None,
                 extra_sections: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write an agent config for a test; ``sync``/``health`` override those sections' keys."""
    sync_keys = {"broker": broker_url, "keepalive_s": 5, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0}
    sync_keys.update(sync or {})
    lines = [f"store_id = {toml_value(store_id)}", f"data_dir = {toml_value(data_dir)}", "", "[sync]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in sync_keys.items() if not isinstance(v, dict)]
    for k, v in sync_keys.items():
        if isinstance(v, dict):
            lines += ["", f"[sync.{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
    lines += ["", "[health]"] + [f"{k} = {toml_value(v)}" for k, v in {"interval_s": 60.0, **(health or {})}.items()]
    for section, keys in (extra_sections or {}).items():
        lines += ["", f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    if public_key_b64:
        lines += ["", "[commands.trusted_keys]", f'"{KEY_ID}" = "{public_key_b64}"']
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class SigningKey:
    """A test signing key pair; ``path`` holds the private key for ``store-agent cloud send --key``."""

    key: Any
    public_b64: str
    path: Path
    key_id: str = KEY_ID

    def command(self, kind: str, store_id: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return build_command(kind, store_id, body, key=self.key, key_id=self.key_id, **kw)


def make_signing_key(directory: Path) -> SigningKey:
    key, public_b64 = generate_keypair()
    path = directory / f"{KEY_ID}.key"
    write_private_key(key, path)
    return SigningKey(key, public_b64, path)


@dataclass
class RunningThread:
    """Something with ``run(stop)`` running in a thread; ``stop()`` joins it."""

    target: Any
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> RunningThread:
        self.thread = threading.Thread(target=self.target.run, args=(self.stop_event,), daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
            assert not self.thread.is_alive(), f"{type(self.target).__name__} did not stop within {timeout_s} s"


def start_agent(config_path: Path) -> tuple[Agent, RunningThread]:
    agent = Agent(config_path)
    return agent, RunningThread(agent).start()


def start_cloud(broker_url: str, db_path: Path, *, client_id: str = "test-cloud",
                share_group: str | None = "cloud") -> tuple[CloudReceiver, RunningThread]:
    address = parse_broker_url(broker_url)
    receiver = CloudReceiver(ReceiverSettings(host=address.host, port=address.port, client_id=client_id,
                                              share_group=share_group), db_path)
    running = RunningThread(receiver).start()
    assert receiver.ready.wait(10), "cloud receiver did not connect"
    return receiver, running


def cloud_settings(broker_url: str) -> ReceiverSettings:
    address = parse_broker_url(broker_url)
    return ReceiverSettings(host=address.host, port=address.port)


def cloud_msg_ids(db_path: Path, store_id: str, stream: str | None = None) -> set[str]:
    """Every msg_id the cloud stored (deduplicated by construction)."""
    store = CloudStore(db_path)
    try:
        sql = "SELECT msg_id FROM messages WHERE store_id = ?" + (" AND stream = ?" if stream else "")
        args = (store_id, stream) if stream else (store_id,)
        return {r[0] for r in store.conn.execute(sql, args)}
    finally:
        store.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def agent_subprocess(config_path: Path, *args: str, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """``store-agent run --config PATH`` as a real process (for signal and SIGKILL tests)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "agent.cli.main", "run", "--config", str(config_path), *args],
                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
