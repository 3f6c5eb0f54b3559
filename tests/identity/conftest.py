"""Fixtures of the identity gallery/store tests: a real migrated SQLite store, a real outbox, a key file, and a
service factory. Synthetic embeddings: random unit vectors (one per "person") plus noise for re-sightings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import AgentConfig
from agent.config.identity_models import IdentityConfig
from agent.identity.crypto import generate_key_file, load_cipher
from agent.identity.service import IdentityService
from agent.store import open_store
from sync.envelope import new_msg_id
from sync.outbox import Outbox

DIM = 128


def person(seed: int) -> np.ndarray:
    """A synthetic identity: a fixed random unit vector (D,)."""
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def sighting(base: np.ndarray, seed: int, noise: float = 0.8) -> np.ndarray:
    """Another face of the same person: cosine similarity to ``base`` about 1/sqrt(1 + noise²) (0.78)."""
    g = np.random.default_rng([seed, int(abs(float(base[0])) * 1e9)]).standard_normal(DIM).astype(np.float32)
    v = base + noise * g / np.linalg.norm(g)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return generate_key_file(tmp_path / "keys" / "identity.key")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return open_store(tmp_path / "data")


@pytest.fixture
def outbox(db_path: Path) -> Iterator[Outbox]:
    ob = Outbox(db_path, store_id="s1", boot_id=new_msg_id(), priority_for=AgentConfig().sync.priority_for)
    yield ob
    ob.close()


@pytest.fixture
def make_service(db_path: Path, key_file: Path, outbox: Outbox) -> Iterator[Callable[..., IdentityService]]:
    made: list[IdentityService] = []

    def factory(alerts: Any = None, clock: Any = None, **overrides: Any) -> IdentityService:
        cfg = IdentityConfig(embedding_key_file=key_file, **overrides)
        kwargs: dict[str, Any] = {"alerts": alerts}
        if clock is not None:
            kwargs["clock"] = clock
        service = IdentityService(cfg, db_path, load_cipher(key_file), outbox, **kwargs)
        made.append(service)
        return service

    yield factory
    for service in made:
        service.close()
