"""A camera inside the real agent: the sample video played as a live camera through detector, tracker and
analytics; events and aggregates reach the reference cloud over mosquitto; the local store keeps them for
`report heatmap`; no frame touches the disk; a dead camera never hurts the rest of the agent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.registry import install
from sync.outbox import OutboxItem
from tests.support.agent_stack import cloud_msg_ids, start_agent, start_cloud, wait_until, write_config

pytestmark = pytest.mark.timeout(120)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
VIDEO = SHARED / "data" / "videos" / "worker-zone-detection.gif"


def _camera_sections(model_dir: Path, url: str) -> str:
    return f"""
[vision]
aggregate_interval_s = 2

[models]
dir = "{model_dir}"

[[cameras]]
name = "floor"
url = "{url}"

[cameras.analytics]
detect_fps = 5

[[cameras.analytics.lines]]
name = "entry"
start = [0.0, 0.85]
end = [1.0, 0.85]

[[cameras.analytics.zones]]
name = "floor"
polygon = [[0.05, 0.55], [0.55, 0.55], [0.55, 0.83], [0.05, 0.83]]
exit_grace_s = 1.0
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    install("yolox-nano", directory, mirror=SHARED / "models")
    return directory


def _config(tmp_path: Path, broker_url: str, model_dir: Path, url: str) -> Path:
    path = write_config(tmp_path / "agent.toml", store_id="s1", data_dir=tmp_path / "data", broker_url=broker_url)
    path.write_text(path.read_text() + _camera_sections(model_dir, url))
    return path


def test_camera_events_and_aggregates_reach_the_cloud_and_the_heatmap_renders(tmp_path, mosquitto, model_dir):
    _, cloud = start_cloud(mosquitto.url, tmp_path / "cloud.db")
    config = _config(tmp_path, mosquitto.url, model_dir, str(VIDEO))
    agent, running = start_agent(config)
    try:
        assert wait_until(lambda: len(cloud_msg_ids(tmp_path / "cloud.db", "s1", "telemetry/aggregates")) >= 2
                          and len(cloud_msg_ids(tmp_path / "cloud.db", "s1", "events/line_crossing")) >= 1, 60), \
            agent.status()
        camera = next(c for c in agent.status()["components"] if c["name"] == "camera-floor")
        assert camera["state"] == "running" and camera["restarts"] == 0
        assert camera["detail"]["processor"]["inferences"] > 5
    finally:
        running.stop()
        agent.close()
        cloud.stop()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "cloud.db")
    bodies = [json.loads(b) for (b,) in conn.execute(
        "SELECT body FROM messages WHERE stream = 'telemetry/aggregates' ORDER BY seq")]
    crossings = [json.loads(b) for (b,) in conn.execute(
        "SELECT body FROM messages WHERE stream = 'events/line_crossing'")]
    conn.close()
    assert all(b["camera"] == "floor" and b["interval_s"] == 2 for b in bodies)
    assert all(set(b["lines"]) == {"entry"} and set(b["zones"]) == {"floor"} for b in bodies)
    # The worker walks up the image across a left→right line: OUT, never IN.
    assert {c["direction"] for c in crossings} == {"out"}
    assert sum(b["lines"]["entry"]["out"] for b in bodies) == len(crossings)
    heatmap = tmp_path / "heat.png"
    result = subprocess.run([sys.executable, "-m", "agent.cli.main", "report", "heatmap", "floor", "--config",
                             str(config), "-o", str(heatmap)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total"] > 0 and heatmap.stat().st_size > 1000
    # Privacy: nothing but the database, its WAL and the control socket was written to the data dir.
    written = {p.name for p in (tmp_path / "data").rglob("*") if p.is_file()}
    assert written <= {"agent.db", "agent.db-wal", "agent.db-shm"}, written


def test_a_camera_that_cannot_be_opened_does_not_hurt_the_agent(tmp_path, mosquitto, model_dir):
    _, cloud = start_cloud(mosquitto.url, tmp_path / "cloud.db")
    agent, running = start_agent(_config(tmp_path, mosquitto.url, model_dir, "rtsp://127.0.0.1:9/nothing"))
    try:
        ids = set(agent.outbox.enqueue_many([OutboxItem("events/test", {"i": i}) for i in range(20)]))
        assert wait_until(lambda: ids <= cloud_msg_ids(tmp_path / "cloud.db", "s1", "events/test"), 20)
        def camera() -> dict:
            return next(c for c in agent.status()["components"] if c["name"] == "camera-floor")

        # The source retries with backoff inside the component: no crash, no restart, the rest unaffected.
        assert wait_until(lambda: camera().get("detail", {}).get("source", {}).get("reconnects", 0) >= 1, 20)
        assert camera()["state"] == "running" and camera()["restarts"] == 0
        assert agent.status()["broker_connected"]
    finally:
        running.stop()
        agent.close()
        cloud.stop()
