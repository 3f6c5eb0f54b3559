"""The identity side inside the running daemon: identity.delete through the real cloud link takes effect within
5 s and leaves a tombstone; the identity component reports gallery sizes."""

from __future__ import annotations

import time

from agent.identity import repository as repo
from agent.identity.crypto import generate_key_file
from sync.cloud.sender import send_command
from tests.identity.conftest import person, sighting
from tests.support.agent_stack import cloud_settings, make_signing_key, start_agent, wait_until, write_config

STORE = "idstore"


def test_identity_delete_is_effective_within_5s_in_the_running_daemon(tmp_path, mosquitto) -> None:
    key = make_signing_key(tmp_path)
    key_file = generate_key_file(tmp_path / "identity.key")
    config = write_config(tmp_path / "agent.toml", store_id=STORE, data_dir=tmp_path / "data",
                          broker_url=mosquitto.url, public_key_b64=key.public_b64,
                          extra_sections={"identity": {"embedding_key_file": str(key_file)}})
    agent, running = start_agent(config)
    try:
        assert wait_until(lambda: agent.status()["broker_connected"], 10)
        svc = agent.identity_service
        assert svc is not None
        face = person(42)
        visitor = svc.observe("door", 1, sighting(face, 0), 0.9, time.time())
        assert visitor.kind == "new"
        assert wait_until(lambda: _component(agent, "identity").get("galleries", {}).get("visitor") == 1, 5)
        t0 = time.monotonic()
        result = send_command(cloud_settings(mosquitto.url), key.command("identity.delete", STORE,
                                                                          {"id": visitor.visitor_id}), wait_s=5)
        conn = svc.conn

        def gone() -> bool:
            return (visitor.visitor_id not in svc.galleries and repo.get_identity(conn, visitor.visitor_id) is None
                    and repo.is_tombstoned(conn, visitor.visitor_id))

        assert wait_until(gone, 5.0 - (time.monotonic() - t0)), "identity.delete not effective within 5 s"
        elapsed = time.monotonic() - t0
        assert elapsed < 5.0
        assert result is not None and result["status"] == "applied", result
        assert conn.execute("SELECT COUNT(*) FROM identity_embeddings").fetchone()[0] == 0
        again = svc.observe("door", 2, sighting(face, 1), 0.9, time.time())
        assert again.kind == "new" and again.visitor_id != visitor.visitor_id
        print(f"identity.delete effective after {elapsed:.3f} s")
    finally:
        running.stop()
        agent.close()


def _component(agent, name: str) -> dict:
    return next((c.get("detail") or {} for c in agent.status()["components"] if c["name"] == name), {})


def test_identification_without_a_key_fails_the_identity_component_with_the_reason(tmp_path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n[sync]\nenabled = false\n'
                      "[supervisor]\nbackoff_initial_s = 0.1\nmax_failures = 2\n"
                      f'[models]\ndir = "{tmp_path / "models"}"\n'
                      f'[[cameras]]\nname = "door"\nurl = "{tmp_path / "missing.mp4"}"\nidentification = true\n')
    agent, running = start_agent(config)
    try:
        assert agent.identity_service is None
        assert wait_until(lambda: _state(agent, "identity")["state"] == "failed", 10)
        error = _state(agent, "identity")["last_error"]
        assert "embedding_key_file" in error and "init-key" in error
    finally:
        running.stop()
        agent.close()


def _state(agent, name: str) -> dict:
    return next(c for c in agent.status()["components"] if c["name"] == name)
