"""A throw-away identity service for ``replay``: a temporary store with a random key, deleted afterwards.

Replay publishes nothing and keeps nothing: the galleries start empty, visits and encrypted embeddings live in a
temporary SQLite file under the system temp directory that is removed (with its random key, which never touches
the disk) when the context exits. No image is written anywhere.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.config.identity_models import IdentityConfig


@contextlib.contextmanager
def ephemeral_identity_service(cfg: IdentityConfig, store_id: str = "replay") -> Iterator[Any]:
    """Yield an :class:`~agent.identity.service.IdentityService` over an empty temporary store."""
    from agent.identity.crypto import EmbeddingCipher
    from agent.identity.service import IdentityService
    from agent.store.db import open_store
    from sync.outbox import Outbox

    with tempfile.TemporaryDirectory(prefix="store-agent-replay-") as tmp:
        db_path = open_store(Path(tmp))
        outbox = Outbox(db_path, store_id=store_id, boot_id="replay", priority_for=lambda stream: 1)
        service = IdentityService(cfg, db_path, EmbeddingCipher(os.urandom(32)), outbox)
        try:
            yield service
        finally:
            service.close()
            outbox.close()


def visitor_summary(decisions: dict[int, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``identity`` key of the replay summary from the final decision of each track."""
    final = [d for d in decisions.values() if d is not None]
    visitor_ids = {d.visitor_id for d in final if getattr(d, "gallery", None) == "visitor" and d.visitor_id}
    kinds: dict[str, int] = {}
    for d in final:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    return {"visitor_ids": len(visitor_ids), "tracks_decided": len(decisions), "decisions_by_kind": kinds,
            **(status or {})}
