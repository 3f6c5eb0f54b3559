"""Ordered migrations of every component that keeps tables in the agent's database.

A component is a name and a list of SQL scripts; script *i* (0-based) is version *i + 1*. Later issues add
their component here (e.g. ``identity``, ``esl``) — never edit a released script, append a new one.
"""

from agent.esl import schema as esl_schema
from agent.identity import schema as identity_schema
from agent.products import schema as products_schema
from agent.pricebook import schema as pricebook_schema
from sync import schema as sync_schema

AGENT_MIGRATIONS: list[str] = [
    # 1: local events and aggregates (the pipelines' own record, kept after they are synced), config overlay.
    """
    CREATE TABLE events (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        type     TEXT NOT NULL,
        ts       REAL NOT NULL,
        source   TEXT,
        body     TEXT NOT NULL
    );
    CREATE INDEX events_type_ts ON events(type, ts);
    CREATE TABLE aggregates (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind           TEXT NOT NULL,
        source         TEXT NOT NULL,
        interval_start REAL NOT NULL,
        interval_s     REAL NOT NULL,
        body           TEXT NOT NULL
    );
    CREATE INDEX aggregates_source_interval ON aggregates(kind, source, interval_start);
    CREATE TABLE config_overlay (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        version    INTEGER NOT NULL,
        body       TEXT NOT NULL,
        applied_at REAL NOT NULL
    );
    CREATE TABLE agent_state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]

COMPONENTS: dict[str, list[str]] = {
    "sync": sync_schema.MIGRATIONS,
    "agent": AGENT_MIGRATIONS,
    "pricebook": pricebook_schema.MIGRATIONS,
    "esl": esl_schema.MIGRATIONS,
    "identity": identity_schema.IDENTITY_MIGRATIONS,
    "products": products_schema.PRODUCTS_MIGRATIONS,
}
