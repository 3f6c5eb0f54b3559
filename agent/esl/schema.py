"""Tables of the shelf-label gateway side (migration component ``esl``; append scripts, never edit one).

- ``esl_labels``: one row per label: where it hangs, what it shows (link), the desired content and the
  delivery state machine (``desired_hash`` → ``pushed_hash`` + ``push_token`` → ``confirmed_hash``), plus the
  last sensor report. A change is never lost: while ``desired_hash != confirmed_hash`` the reconciler keeps
  pushing, across restarts.
- ``esl_shelf_times``: one row per desired content: when it became desired, when a gateway first accepted it,
  when the label confirmed it (time to shelf), how many pushes it took.
- ``esl_flash_queue``: LED requests not yet delivered to a gateway (retried until they expire).
- ``esl_pick_orders``: active picking orders and their colour.
- ``esl_alarms``: cold-chain / battery / offline alarm state, so a restart neither repeats nor forgets one.
"""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE esl_labels (
        mac            TEXT PRIMARY KEY,
        gateway        TEXT NOT NULL,
        label_type     TEXT NOT NULL,
        plu            TEXT,
        template       TEXT,
        aisle          TEXT,
        shelf          INTEGER,
        slot           INTEGER,
        fridge_group   TEXT,
        desired_key    TEXT,
        desired_hash   TEXT,
        desired_since  REAL,
        pushed_hash    TEXT,
        push_token     TEXT,
        pushed_at      REAL,
        push_count     INTEGER NOT NULL DEFAULT 0,
        base_seen      REAL,
        base_count     INTEGER,
        confirmed_hash TEXT,
        confirmed_at   REAL,
        state          TEXT NOT NULL DEFAULT 'unlinked',
        last_error     TEXT,
        retry_at       REAL,
        last_seen      REAL,
        shown_token    TEXT,
        update_count   INTEGER,
        temperature_c  REAL,
        battery_mv     INTEGER,
        rssi           INTEGER,
        updated_at     REAL NOT NULL
    );
    CREATE INDEX esl_labels_plu ON esl_labels(plu);
    CREATE INDEX esl_labels_gateway ON esl_labels(gateway, state);
    CREATE TABLE esl_shelf_times (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        mac           TEXT NOT NULL,
        plu           TEXT,
        desired_hash  TEXT NOT NULL,
        desired_since REAL NOT NULL,
        accepted_at   REAL,
        confirmed_at  REAL,
        pushes        INTEGER NOT NULL DEFAULT 0,
        superseded    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX esl_shelf_times_mac ON esl_shelf_times(mac, id);
    CREATE TABLE esl_flash_queue (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        mac        TEXT NOT NULL,
        colour     TEXT NOT NULL,
        pattern    TEXT NOT NULL,
        duration_s REAL NOT NULL,
        stop       INTEGER NOT NULL DEFAULT 0,
        source     TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE TABLE esl_pick_orders (
        order_id   TEXT PRIMARY KEY,
        colour     TEXT NOT NULL,
        plus       TEXT NOT NULL,
        labels     TEXT NOT NULL,
        started_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE esl_alarms (
        key        TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        subject    TEXT NOT NULL,
        active     INTEGER NOT NULL,
        since      REAL NOT NULL,
        cleared_at REAL,
        detail     TEXT
    );
    """,
]
