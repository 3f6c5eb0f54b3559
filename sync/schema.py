"""SQLite schema owned by the sync package, as ordered migrations.

The agent's store applies these under the component name ``sync`` (see ``agent.store``); a migration is
never edited once released, only appended.
"""

MIGRATIONS: list[str] = [
    # 1: durable outbox with per-stream counters kept exact by triggers.
    """
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        msg_id      TEXT NOT NULL UNIQUE,
        stream      TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        priority    INTEGER NOT NULL,
        boot_id     TEXT NOT NULL,
        event_ts    REAL NOT NULL,
        enqueued_at REAL NOT NULL,
        expires_at  REAL,
        schema      TEXT,
        body        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        state       INTEGER NOT NULL DEFAULT 0,
        sent_at     REAL,
        attempts    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbox_send_order ON outbox(state, priority, id);
    CREATE INDEX outbox_shed_order ON outbox(priority, id);
    CREATE TABLE outbox_streams (
        stream    TEXT PRIMARY KEY,
        priority  INTEGER NOT NULL,
        next_seq  INTEGER NOT NULL DEFAULT 1,
        enqueued  INTEGER NOT NULL DEFAULT 0,
        acked     INTEGER NOT NULL DEFAULT 0,
        shed      INTEGER NOT NULL DEFAULT 0,
        expired   INTEGER NOT NULL DEFAULT 0,
        rejected  INTEGER NOT NULL DEFAULT 0,
        depth     INTEGER NOT NULL DEFAULT 0,
        bytes     INTEGER NOT NULL DEFAULT 0,
        last_acked_at REAL
    );
    CREATE TRIGGER outbox_after_insert AFTER INSERT ON outbox BEGIN
        UPDATE outbox_streams SET depth = depth + 1, bytes = bytes + NEW.size WHERE stream = NEW.stream;
    END;
    CREATE TRIGGER outbox_after_delete AFTER DELETE ON outbox BEGIN
        UPDATE outbox_streams SET depth = depth - 1, bytes = bytes - OLD.size WHERE stream = OLD.stream;
    END;
    CREATE TABLE outbox_dead (
        msg_id    TEXT PRIMARY KEY,
        stream    TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        body      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        failed_at REAL NOT NULL
    );
    """,
    # 2: command inbox (dedupe), applied resource versions, desired versions from the cloud.
    """
    CREATE TABLE inbox (
        cmd_id      TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        resource    TEXT,
        version     INTEGER,
        received_at REAL NOT NULL,
        status      TEXT NOT NULL,
        result      TEXT
    );
    CREATE TABLE resource_versions (
        resource   TEXT PRIMARY KEY,
        version    INTEGER NOT NULL,
        cmd_id     TEXT,
        applied_at REAL NOT NULL
    );
    CREATE TABLE desired_versions (
        resource    TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        received_at REAL NOT NULL
    );
    """,
]
