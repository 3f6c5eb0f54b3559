"""The agent's local SQLite store: one WAL database, versioned migrations per component."""

from agent.store.db import StoreError, connect, open_store

__all__ = ["StoreError", "connect", "open_store"]
