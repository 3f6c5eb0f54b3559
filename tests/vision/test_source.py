"""FrameSource on real files and a real HTTP MJPEG stream: true GIF timestamps, corrupt and truncated files,
missing sources with growing backoff, server drop/restart and stalls with reconnect, latest-frame-wins."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.vision.source import FrameSource
from agent.vision.timing import Backoff, gif_durations


def _wait(predicate, timeout: float, step: float = 0.02) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _write_mjpg_avi(path: Path, frames: list[np.ndarray], fps: float = 15.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()


# ---------------------------------------------------------------- replay


def test_replay_gif_delivers_every_frame_with_true_cumulative_timestamps(worker_gif: Path) -> None:
    durations = gif_durations(worker_gif)
    assert len(durations) == 71
    assert sum(durations) == pytest.approx(4.74, abs=0.01)
    assert set(round(d, 3) for d in durations) == {0.06, 0.07}  # not OpenCV's nominal 1/16.7 s

    with FrameSource(worker_gif, live=False) as src:
        frames = list(src)
        stats = src.stats()
    assert [f.index for f in frames] == list(range(71))
    ts = np.array([f.ts for f in frames])
    assert ts[0] == 0.0
    np.testing.assert_allclose(np.diff(ts), durations[:-1], atol=1e-9)
    assert ts[-1] + durations[-1] == pytest.approx(4.74, abs=0.01)
    assert frames[0].image.shape == (270, 480, 3) and frames[0].image.dtype == np.uint8
    assert stats["frames"] == 71 and stats["corrupt"] == 0 and stats["dropped"] == 0
    assert src.read() is None  # ended stays ended


def test_replay_image_folder_uses_seqinfo_frame_rate(mot17_dir: Path) -> None:
    with FrameSource(mot17_dir / "MOT17-05-FRCNN" / "img1", live=False) as src:
        frames = list(src)
    assert len(frames) == 6
    assert [round(f.ts, 4) for f in frames] == [round(i / 14, 4) for i in range(6)]  # frameRate=14


def test_replay_corrupted_middle_reads_around_damage(tmp_path: Path, gif_frames: list[np.ndarray]) -> None:
    path = tmp_path / "clip.avi"
    _write_mjpg_avi(path, gif_frames[:30])
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 20_000] = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))

    with FrameSource(path, live=False) as src:
        frames = list(src)
        stats = src.stats()
    assert 20 <= len(frames) < 30  # frames on both sides of the damage are read
    assert frames[-1].index > 20
    assert stats["corrupt"] >= 1 and stats["corrupt"] + len(frames) >= 30 - 1
    # frames before the damage are intact copies of the originals (JPEG round trip)
    assert np.abs(frames[3].image.astype(int) - gif_frames[3].astype(int)).mean() < 6


def test_replay_truncated_file_returns_frames_before_the_cut(tmp_path: Path, gif_frames: list[np.ndarray]) -> None:
    path = tmp_path / "clip.avi"
    _write_mjpg_avi(path, gif_frames[:30])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with FrameSource(path, live=False) as src:
        frames = list(src)
        stats = src.stats()
    assert 10 <= len(frames) < 30
    assert stats["corrupt"] == 30 - len(frames)  # the declared frames that never came
    assert "unreadable" in stats["last_error"]


def test_replay_missing_file_ends_cleanly_after_retries(tmp_path: Path) -> None:
    src = FrameSource(tmp_path / "nope.mp4", live=False, replay_open_attempts=3, reconnect_initial_s=0.01)
    assert src.read() is None
    stats = src.stats()
    assert stats["reconnects"] == 2 and "no such file" in stats["last_error"]
    src.close()


# ---------------------------------------------------------------- live


def test_backoff_grows_until_cap_with_jitter() -> None:
    b = Backoff(initial_s=0.1, max_s=1.0, jitter=0.25)
    waits = [b.next() for _ in range(8)]
    assert all(later > earlier for earlier, later in zip(waits[:4], waits[1:4]))
    assert all(0.75 <= w <= 1.0 for w in waits[4:])
    assert 0.075 <= waits[0] <= 0.1


def test_live_missing_source_retries_with_growing_backoff_and_never_raises(tmp_path: Path) -> None:
    src = FrameSource(tmp_path / "camera-not-there.mp4", live=True, reconnect_initial_s=0.02, reconnect_max_s=0.4)
    backoffs: list[float] = []
    with src:
        deadline = time.monotonic() + 1.6
        while time.monotonic() < deadline:
            assert src.read(timeout=0.01) is None
            b = src.stats()["backoff_s"]
            if b and (not backoffs or b != backoffs[-1]):
                backoffs.append(b)
        stats = src.stats()
    assert stats["reconnects"] >= 4
    assert stats["frames"] == 0 and not stats["connected"]
    assert "no such file" in stats["last_error"]
    assert backoffs[:4] == sorted(backoffs[:4]) and backoffs[3] > 2.5 * backoffs[0]
    assert max(backoffs) <= 0.4
    assert not any(t.is_alive() for t in src._threads)  # close() stopped the reader and the watchdog


def test_live_file_is_paced_at_its_own_frame_times(worker_gif: Path) -> None:
    with FrameSource(worker_gif, live=True) as src:
        got = []
        start = time.monotonic()
        while time.monotonic() - start < 0.9:
            frame = src.read(timeout=0.5)
            if frame is not None:
                got.append(frame)
    # ~0.067 s per frame: about 13 frames in 0.9 s, not the hundreds an unpaced decoder would produce
    assert 8 <= len(got) <= 18
    ts = np.array([f.ts for f in got])
    assert np.all(np.diff(ts) > 0)
    assert abs(ts[0] - time.time()) < 5  # live timestamps are epoch seconds


def test_live_http_stream_reconnects_after_server_restart(gif_frames, mjpeg_server) -> None:  # noqa: ANN001
    server = mjpeg_server(gif_frames[:20], interval_s=0.03)
    src = FrameSource(server.url, live=True, reconnect_initial_s=0.05, reconnect_max_s=0.5, stall_timeout_s=1.0,
                      open_timeout_s=1.0)
    with src:
        assert src.read(timeout=5.0) is not None
        assert _wait(lambda: src.stats()["frames"] >= 10, 5.0)
        server.stop()  # the camera goes away mid-stream
        assert _wait(lambda: src.stats()["reconnects"] >= 3, 6.0), src.stats()
        down = src.stats()
        assert not down["connected"] and down["last_error"]
        frames_while_down = down["frames"]
        server.start()  # same port
        assert _wait(lambda: src.stats()["frames"] >= frames_while_down + 10, 8.0), src.stats()
        frame = src.read(timeout=2.0)
        assert frame is not None and frame.image.shape == (270, 480, 3)
        up = src.stats()
        assert up["connected"] and up["corrupt"] == 0


def test_live_http_stall_is_detected_and_recovered(gif_frames, mjpeg_server) -> None:  # noqa: ANN001
    server = mjpeg_server(gif_frames[:10], interval_s=0.03)
    with FrameSource(server.url, live=True, reconnect_initial_s=0.05, stall_timeout_s=0.5,
                     open_timeout_s=1.0) as src:
        assert src.read(timeout=5.0) is not None
        server.stall.set()  # connection stays open, no bytes: only a read timeout can notice
        assert _wait(lambda: src.stats()["stalls"] >= 1, 4.0), src.stats()
        before = src.stats()["frames"]
        server.stall.clear()
        assert _wait(lambda: src.stats()["frames"] > before + 5, 6.0), src.stats()
        assert src.stats()["reconnects"] >= 1


def test_latest_frame_wins_with_a_slow_consumer(gif_frames, mjpeg_server) -> None:  # noqa: ANN001
    server = mjpeg_server(gif_frames[:30], interval_s=0.02)
    with FrameSource(server.url, live=True) as src:
        assert src.read(timeout=5.0) is not None
        consumed = []
        for _ in range(6):
            time.sleep(0.25)  # a detector far slower than the camera
            frame = src.read(timeout=1.0)
            assert frame is not None
            lag = src.stats()["frames"] - 1 - frame.index
            assert lag <= 2, "the consumer must get a recent frame, not a queued old one"
            consumed.append(frame.index)
        stats = src.stats()
    assert stats["dropped"] > 20
    assert all(b - a >= 5 for a, b in zip(consumed, consumed[1:]))  # frames in between were skipped
    assert stats["fps"] > 15
