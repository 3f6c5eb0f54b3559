"""Crash safety: the real daemon SIGKILLed over and over while it produces, sends and applies commands.

Each cycle starts ``store-agent run`` and a producer process (tests/support/producer_proc.py) on the same data
directory, while a command thread in this process keeps publishing signed ``config.update`` (increasing
versions, each one restarts the health component) and ``ping`` commands without waiting for results. Both
processes are SIGKILLed at a random moment 0.5-2 s after the producer began producing, so kills land in the
middle of ``enqueue`` (producer and health telemetry), of the drain, and of command application. A final run
without a kill then drains the outbox.

What must hold afterwards (the durability and command contracts of docs/architecture.md):
- every msg_id the producer's ``enqueue`` returned reached the cloud DB (durable before return);
- no stream lost a sequence number: each seq ever allocated is in the cloud or still in the outbox;
- ``PRAGMA integrity_check`` is "ok" after kills and at the end;
- each command was applied at most once: one distinct cmd-result msg_id with status "applied" per cmd_id, the
  same set as the agent's inbox; every other result is a ``duplicate`` of an applied command or a
  ``stale_version`` rejection; never ``failed``;
- the config overlay version equals the highest applied config version, and — thanks to the reference
  cloud's re-send on birth — the newest version sent, even though many commands died with the agent.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from sync.cloud.store import CloudStore
from sync.envelope import Topics
from tests.support.agent_stack import (
    agent_subprocess,
    cloud_msg_ids,
    make_signing_key,
    start_cloud,
    wait_until,
    write_config,
)

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]

STORE = "crash-1"
STREAM = "events/crash-test"
CYCLES = 15
PRODUCER = Path(__file__).resolve().parents[1] / "support" / "producer_proc.py"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _read_only(db: Path) -> sqlite3.Connection:
    """A read-only connection: it never checkpoints or deletes the WAL a killed agent left behind, so the
    next agent still starts from the crashed state."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def _integrity(db: Path) -> str:
    conn = _read_only(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _kill(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


class CommandPump:
    """Publishes signed commands to the store at a steady pace, never waiting for results; records each one
    in the cloud DB first (like ``cloud send --db``) so the cloud re-sends the newest config on birth."""

    def __init__(self, broker_host: str, broker_port: int, cloud_db: Path, key: Any, period_s: float) -> None:
        from tests.support.mqttclient import MqttTestClient

        self.client = MqttTestClient(f"crash-cmds-{os.getpid()}").connect(broker_host, broker_port)
        self.cloud_db = cloud_db
        self.key = key
        self.period_s = period_s
        self.sent: list[dict[str, Any]] = []
        self.version = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="command-pump", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> CommandPump:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "command pump did not stop"
        self.client.close()
        if self.error:
            raise self.error

    def _run(self) -> None:
        store = CloudStore(self.cloud_db)
        topics = Topics(STORE)
        try:
            i = 0
            while not self.stop_event.wait(self.period_s):
                i += 1
                if i % 2:
                    self.version += 1
                    interval = (0.1, 0.15, 0.2, 0.25)[self.version % 4]
                    cmd = self.key.command("config.update", STORE, {"config": {"health": {"interval_s": interval}}},
                                           version=self.version)
                else:
                    cmd = self.key.command("ping", STORE, {"echo": i})
                store.record_command(cmd)
                self.client.publish_nowait(topics.cmd(cmd["kind"]), json.dumps(cmd), qos=1)
                self.sent.append(cmd)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            store.close()


def _cmd_results(cloud_db: Path) -> list[tuple[str, str, str, str | None]]:
    """(result msg_id, cmd_id, status, reason) of every cmd-result the cloud stored (deduplicated by msg_id)."""
    store = CloudStore(cloud_db)
    try:
        return [(m, c, s, r) for m, c, s, r in store.conn.execute(
            "SELECT msg_id, json_extract(body, '$.cmd_id'), json_extract(body, '$.status'),"
            " json_extract(body, '$.reason') FROM messages WHERE store_id = ? AND stream = 'cmd-result'",
            (STORE,))]
    finally:
        store.close()


def _cloud_seqs(cloud_db: Path) -> dict[str, set[int]]:
    store = CloudStore(cloud_db)
    try:
        out: dict[str, set[int]] = defaultdict(set)
        for stream, seq in store.conn.execute("SELECT stream, seq FROM messages WHERE store_id = ?", (STORE,)):
            out[stream].add(int(seq))
        return out
    finally:
        store.close()


def _read_journal(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text()
    # A kill can land in the middle of a journal write: only whole lines count (ULIDs are 26 characters).
    return [line for line in text.split("\n")[:-1] if len(line) == 26]


def test_repeated_sigkill_loses_no_enqueued_message_and_applies_each_command_at_most_once(
        mosquitto, tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", time.time_ns()))  # CRASH_SEED=… replays the kill timings
    rng = random.Random(seed)
    key = make_signing_key(tmp_path)
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=data_dir, broker_url=mosquitto.url,
                          public_key_b64=key.public_b64,
                          # State-1 rows (broker-acked, cloud ack lost with the kill) are re-sent after 1 s.
                          sync={"cloud_ack_timeout_s": 1.0, "reconnect_max_s": 0.5},
                          health={"interval_s": 0.3})
    db = data_dir / "agent.db"
    cloud_db = tmp_path / "cloud.db"
    journal = tmp_path / "journal.txt"
    log_path = tmp_path / "agent.log"
    receiver, cloud = start_cloud(mosquitto.url, cloud_db)

    # Watch births to know how many killed agents had got as far as connecting.
    from tests.support.mqttclient import MqttTestClient

    watcher = MqttTestClient("crash-watch").connect(mosquitto.host, mosquitto.port)
    watcher.subscribe(Topics(STORE).state)
    births: set[str] = set()

    def drain_births() -> None:
        while not watcher.messages.empty():
            state = json.loads(watcher.messages.get_nowait().payload)
            if state.get("online"):
                births.add(state["boot_id"])

    procs: list[subprocess.Popen[Any]] = []
    pump = CommandPump(mosquitto.host, mosquitto.port, cloud_db, key, period_s=0.2).start()
    t_start = time.monotonic()
    kill_delays: list[float] = []
    integrity_after_kill: list[str] = []
    try:
        # -- the kill loop --------------------------------------------------------------------------
        for cycle in range(CYCLES):
            agent = agent_subprocess(config, log_path=log_path)
            producer = subprocess.Popen([sys.executable, str(PRODUCER), "--config", str(config), "--journal",
                                         str(journal), "--stream", STREAM, "--interval", "0.005"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
            procs[:] = [agent, producer]
            # Time the kill from the moment the producer is producing (python start-up alone can take
            # seconds on a loaded 2-core box; a kill before that would test nothing).
            assert producer.stdout is not None
            ready, _, _ = select.select([producer.stdout], [], [], 30)
            assert ready and producer.stdout.readline() == b"ready\n", "producer did not start"
            delay = rng.uniform(0.5, 2.0)
            kill_delays.append(delay)
            time.sleep(delay)
            # Both die at the same instant, like a power cut to the box.
            for proc in (agent, producer):
                proc.send_signal(signal.SIGKILL)
            for proc in (agent, producer):
                proc.wait(10)
            producer.stdout.close()
            assert agent.returncode == -signal.SIGKILL and producer.returncode == -signal.SIGKILL
            if db.exists() and cycle % 3 == 2:
                integrity_after_kill.append(_integrity(db))
        kill_phase_s = time.monotonic() - t_start
        pump.stop()
        drain_births()
        births_during_kills = len(births)
        sent = pump.sent
        max_version = max(c["version"] for c in sent if c["kind"] == "config.update")
        journaled = _read_journal(journal)
        assert len(journaled) >= 10 * CYCLES, f"the producer hardly produced ({len(journaled)} messages): test is void"

        # -- the final run: no kill, wait for the drain and the re-sent newest config -----------------
        t_final = time.monotonic()
        agent = agent_subprocess(config, log_path=log_path)
        procs[:] = [agent]
        journal_set = set(journaled)

        def settled() -> bool:
            if not journal_set <= cloud_msg_ids(cloud_db, STORE, STREAM):
                return False
            conn = _read_only(db)
            try:
                row = conn.execute("SELECT version FROM resource_versions WHERE resource = 'config'").fetchone()
                waiting = conn.execute("SELECT COUNT(*) FROM outbox WHERE stream IN (?, 'cmd-result')",
                                       (STREAM,)).fetchone()[0]
            finally:
                conn.close()
            return row is not None and row[0] == max_version and waiting == 0

        drained = wait_until(settled, timeout_s=45, interval_s=0.25)
        final_s = time.monotonic() - t_final
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(10) == 0, "final agent did not stop cleanly on SIGTERM"
        drain_births()
    finally:
        for proc in procs:
            _kill(proc)
        if pump.thread.is_alive():
            pump.stop_event.set()
            pump.thread.join(5)
        watcher.close()
        cloud.stop()

    # -- verdicts -----------------------------------------------------------------------------------
    in_cloud = cloud_msg_ids(cloud_db, STORE, STREAM)
    lost = [m for m in journaled if m not in in_cloud]
    assert drained, (f"outbox did not drain / newest config not applied within 45 s; {len(lost)} journaled "
                     f"messages missing; tail of agent log:\n" + log_path.read_text()[-3000:])
    assert not lost, f"{len(lost)} of {len(journaled)} enqueued messages never reached the cloud: {lost[:5]}"

    assert integrity_after_kill and all(r == "ok" for r in integrity_after_kill), integrity_after_kill
    assert _integrity(db) == "ok"

    conn = _read_only(db)
    try:
        streams = {s: int(n) for s, n in conn.execute("SELECT stream, next_seq FROM outbox_streams")}
        pending = defaultdict(set)
        for stream, seq in conn.execute("SELECT stream, seq FROM outbox"):
            pending[stream].add(int(seq))
        inbox = {c: (k, v) for c, k, v in conn.execute("SELECT cmd_id, kind, version FROM inbox WHERE status = 'applied'")}
        resource_version = conn.execute("SELECT version FROM resource_versions WHERE resource = 'config'").fetchone()[0]
        overlay_version, overlay_body = conn.execute("SELECT version, body FROM config_overlay WHERE id = 1").fetchone()
        shed = conn.execute("SELECT COALESCE(SUM(shed + expired + rejected), 0) FROM outbox_streams").fetchone()[0]
    finally:
        conn.close()

    # Sequence numbers are allocated in the enqueue transaction: a killed enqueue allocates none, a committed
    # one must end up in the cloud (or still be queued) — on every stream, including those produced inside the
    # killed agent (health telemetry, command results).
    assert shed == 0
    cloud_seqs = _cloud_seqs(cloud_db)
    for stream, next_seq in streams.items():
        missing = set(range(1, next_seq)) - cloud_seqs.get(stream, set()) - pending.get(stream, set())
        assert not missing, f"stream {stream}: seqs {sorted(missing)[:10]} vanished"

    # Commands: at most one application each, and the books agree on both sides.
    results = _cmd_results(cloud_db)
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    applied_msgs: dict[str, set[str]] = defaultdict(set)
    for msg_id, cmd_id, status, reason in results:
        statuses[cmd_id][status if status != "rejected" else f"rejected:{reason}"] += 1
        if status == "applied":
            applied_msgs[cmd_id].add(msg_id)
    twice = {c: ids for c, ids in applied_msgs.items() if len(ids) != 1}
    assert not twice, f"commands applied more than once: {twice}"
    assert set(applied_msgs) == set(inbox), "cloud's applied results and the agent's inbox disagree"
    sent_ids = {c["cmd_id"] for c in sent}
    assert set(statuses) <= sent_ids, "results for commands nobody sent"
    for cmd_id, counts in statuses.items():
        others = set(counts) - {"applied"}
        if "applied" in counts:
            assert others <= {"duplicate"}, f"{cmd_id}: applied and also {counts}"
        else:
            assert others <= {"rejected:stale_version"}, f"{cmd_id}: not applied but {counts}"
    assert not any("failed" in c for c in statuses.values())

    applied_versions = [v for k, v in inbox.values() if k == "config.update"]
    assert resource_version == overlay_version == max(applied_versions) == max_version
    newest = next(c for c in sent if c.get("version") == max_version and c["kind"] == "config.update")
    assert json.loads(overlay_body)["health"] == newest["body"]["config"]["health"]

    store = CloudStore(cloud_db)
    try:
        dup_stats = dict(store.conn.execute("SELECT stream, duplicates FROM stream_stats WHERE store_id = ?",
                                            (STORE,)).fetchall())
        recv_stats = dict(store.conn.execute("SELECT stream, received FROM stream_stats WHERE store_id = ?",
                                             (STORE,)).fetchall())
    finally:
        store.close()
    status_totals: Counter[str] = Counter()
    for counts in statuses.values():
        status_totals.update(counts)
    print(json.dumps({
        "seed": seed, "cycles": CYCLES, "kills": CYCLES * 2, "kill_delays_s": [round(d, 2) for d in kill_delays],
        "agents_that_connected_before_kill": births_during_kills, "kill_phase_s": round(kill_phase_s, 1),
        "final_drain_s": round(final_s, 1), "journaled": len(journaled),
        "producer_msgs_in_cloud": len(in_cloud), "extra_unjournaled": len(in_cloud) - len(journaled),
        "received": recv_stats, "duplicates": dup_stats, "commands_sent": len(sent),
        "config_versions_sent": max_version, "commands_applied": len(inbox),
        "config_applied": len(applied_versions), "result_statuses": dict(status_totals),
        "integrity_checks": len(integrity_after_kill) + 1,
    }))
