"""A producer process for crash tests: enqueues into the agent's outbox exactly like an agent component does,
and journals every ``msg_id`` whose ``enqueue`` returned.

    python tests/support/producer_proc.py --config agent.toml --journal journal.txt [--stream S] [--interval 0.01]

It opens the store the way the agent does (``agent.store.open_store`` + ``sync.outbox.Outbox`` with
``connect=agent.store.connect``, the config's store id, priorities and quotas) so a test can SIGKILL it in the
middle of an ``enqueue``. After each ``enqueue`` returns, the msg_id is appended to the journal and the journal
is flushed and fsynced: the journal lists only messages the outbox promised to deliver (a message enqueued but
not yet journaled when the kill lands may still arrive: the cloud sees a superset of the journal).

Runs until killed (or until ``--count`` messages, for a bounded run).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--stream", default="events/crash-test")
    parser.add_argument("--interval", type=float, default=0.01, help="pause between enqueues (s)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: until killed)")
    args = parser.parse_args(argv)

    from agent.config import load_config
    from agent.store import connect, open_store
    from sync.envelope import new_msg_id
    from sync.outbox import Outbox

    cfg = load_config(args.config)
    db_path = open_store(cfg.data_dir)
    boot_id = new_msg_id()
    outbox = Outbox(db_path, store_id=cfg.store_id, boot_id=boot_id, priority_for=cfg.sync.priority_for,
                    max_bytes=int(cfg.sync.outbox_max_mb * 2**20), max_messages=cfg.sync.outbox_max_messages,
                    default_ttl_s=cfg.sync.default_ttl_s, connect=connect)
    fd = os.open(args.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # Tell the test we are past imports and migrations (it may then time its kill).
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    n = 0
    try:
        while args.count <= 0 or n < args.count:
            n += 1
            msg_id = outbox.enqueue(args.stream, {"n": n, "producer": boot_id, "ts": time.time()})
            os.write(fd, (msg_id + "\n").encode())
            os.fsync(fd)
            if args.interval > 0:
                time.sleep(args.interval)
    finally:
        os.close(fd)
        outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
