"""Tables of the ``identity`` migration component (registered in ``agent/store/migrations.py``).

Identity records and embeddings live in separate tables: ``identity_embeddings`` holds only an opaque random
reference and the AES-GCM ciphertext; ``identity_links`` is the one place that joins a reference to an identity.
Tombstones keep only the id of a deleted identity, so a later sync cannot re-enrol it.
"""

IDENTITY_MIGRATIONS: list[str] = [
    """
    CREATE TABLE identities (
        id          TEXT PRIMARY KEY,
        gallery     TEXT NOT NULL,
        kind        TEXT,
        reason      TEXT,
        source      TEXT,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        last_seen   REAL,
        expires_at  REAL
    );
    CREATE INDEX identities_gallery ON identities(gallery);
    CREATE INDEX identities_last_seen ON identities(gallery, last_seen);
    CREATE TABLE identity_embeddings (
        ref        TEXT PRIMARY KEY,
        blob       BLOB NOT NULL
    );
    CREATE TABLE identity_links (
        identity_id TEXT NOT NULL,
        ref         TEXT NOT NULL UNIQUE,
        quality     REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX identity_links_identity ON identity_links(identity_id);
    CREATE TABLE identity_visits (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        identity_id TEXT NOT NULL,
        camera      TEXT NOT NULL,
        started_at  REAL NOT NULL,
        last_seen   REAL NOT NULL,
        zones       TEXT NOT NULL DEFAULT '[]',
        dwell_s     REAL
    );
    CREATE INDEX identity_visits_identity ON identity_visits(identity_id, started_at);
    CREATE TABLE identity_tombstones (
        id         TEXT PRIMARY KEY,
        gallery    TEXT,
        deleted_at REAL NOT NULL
    );
    CREATE TABLE identity_alerts (
        id          TEXT PRIMARY KEY,
        identity_id TEXT NOT NULL,
        gallery     TEXT NOT NULL,
        kind        TEXT,
        camera      TEXT NOT NULL,
        ts          REAL NOT NULL,
        score       REAL NOT NULL,
        status      TEXT NOT NULL DEFAULT 'pending',
        decided_at  REAL,
        decided_by  TEXT
    );
    CREATE INDEX identity_alerts_status ON identity_alerts(status, ts);
    CREATE TABLE identity_audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        ts          REAL NOT NULL,
        action      TEXT NOT NULL,
        identity_id TEXT,
        gallery     TEXT,
        actor       TEXT NOT NULL,
        detail      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX identity_audit_ts ON identity_audit(ts);
    """,
    # 2: the service polls for changes made by other processes (CLI enrol/forget) every few seconds.
    """
    CREATE INDEX identities_updated ON identities(updated_at);
    CREATE INDEX identity_tombstones_deleted ON identity_tombstones(deleted_at);
    """,
    # 3: the alert cooldown looks up a person's latest alert.
    """
    CREATE INDEX identity_alerts_identity ON identity_alerts(identity_id, ts);
    """,
]
