"""Tables of the price book (migration component ``pricebook``; append scripts, never edit one).

The book is a timeline of changes: each row sets (``op = 'upsert'``) or removes (``op = 'delete'``) one PLU
from ``effective_at`` on. The article in force at time *t* is the row with the latest ``effective_at <= t``
(ties: higher ``version``, then later ``id``). Nothing has to run at a change's time, so scheduled prices
switch even while the box is offline or the agent is down.
"""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE pricebook_changes (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        plu          TEXT NOT NULL,
        effective_at REAL NOT NULL,
        version      INTEGER NOT NULL,
        revision     INTEGER NOT NULL,
        op           TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
        body         TEXT,
        promo_start  REAL,
        promo_end    REAL,
        created_at   REAL NOT NULL
    );
    CREATE INDEX pricebook_changes_plu ON pricebook_changes(plu, effective_at, version, id);
    CREATE INDEX pricebook_changes_revision ON pricebook_changes(revision);
    CREATE INDEX pricebook_changes_effective ON pricebook_changes(effective_at);
    CREATE TABLE pricebook_meta (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        version    INTEGER NOT NULL,
        revision   INTEGER NOT NULL,
        updated_at REAL NOT NULL
    );
    INSERT INTO pricebook_meta(id, version, revision, updated_at) VALUES (1, 0, 0, 0);
    """,
]
