"""The camera source on a real RTSP stream: OpenCV's FFmpeg backend talks RTSP 1.0 to the local server of
:mod:`tests.support.rtsp_server` (RTP/JPEG over TCP interleaved), decodes true sizes and colours; stalls are
caught by the read timeout, drops and restarts are reconnected with backoff, corrupt frames are counted and never
fatal; the full camera pipeline detects, tracks and counts the worker of the sample video streamed over RTSP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.config import CameraConfig, SyncConfig
from agent.config.vision_models import CameraAnalyticsConfig, LineConfig, ModelsConfig, VisionConfig
from agent.store import connect, open_store
from agent.vision.capture import open_capture
from agent.vision.pipeline import CameraPipeline
from agent.vision.source import FrameSource
from agent.vision.timing import FrameGaps
from models.registry import install
from sync.outbox import Outbox
from tests.support.rtsp_server import RtspServer

pytestmark = pytest.mark.timeout(60)

#: BGR colours of the solid test frames; the server plays them in this order, in a loop.
COLOURS = np.array([(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 120, 200)], np.float64)


def _solid_frames(size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    return [np.full((size[1], size[0], 3), c, np.uint8) for c in COLOURS]


def _colour_index(image: np.ndarray, tolerance: float = 4.0) -> int | None:
    """Which of COLOURS a decoded solid frame shows (None: none within ``tolerance`` per channel)."""
    mean = image.reshape(-1, 3).mean(axis=0)
    errors = np.abs(COLOURS - mean).max(axis=1)
    best = int(errors.argmin())
    return best if errors[best] <= tolerance else None


def _wait(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_frame_gaps_count_frames_missing_from_the_source_clock() -> None:
    gaps = FrameGaps()
    assert [gaps.observe(i * 0.04) for i in range(8)] == [0] * 8
    assert gaps.observe(9 * 0.04) == 1  # frame 8 never came
    assert gaps.observe(13 * 0.04) == 3
    assert gaps.observe(15 * 0.04, explained=1) == 0  # the frame in between failed to decode: already corrupt
    assert gaps.observe(15 * 0.04 + 30.0) == 0  # a jump of the clock, not 750 lost frames
    assert gaps.observe(None) == 0
    gaps.reset()
    assert [gaps.observe(i * 0.04) for i in (0, 1, 3)] == [0, 0, 0]  # too few steps yet to know the interval
    alternating = FrameGaps()  # GIF-style 60/70 ms delays are jitter, not loss
    t = np.cumsum([0.06, 0.07] * 20)
    assert sum(alternating.observe(float(x)) for x in t) == 0


@pytest.fixture
def rtsp_server() -> Iterator[Callable[..., RtspServer]]:
    servers: list[RtspServer] = []

    def factory(frames: list[np.ndarray], **kwargs: object) -> RtspServer:
        server = RtspServer(frames, **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


def test_opencv_decodes_every_rtp_jpeg_frame_with_its_size_colour_and_rtp_time(rtsp_server) -> None:  # noqa: ANN001
    server = rtsp_server(_solid_frames(), fps=25)
    cap, error = open_capture(server.url, "rtsp", open_timeout_s=5.0, read_timeout_s=2.0)
    assert cap is not None, error
    try:
        colours, times = [], []
        for _ in range(30):
            ok, image = cap.read()
            assert ok and image is not None
            assert image.shape == (240, 320, 3)
            colours.append(_colour_index(image))
            times.append(cap.position_s(cap.frame_index()))
    finally:
        cap.release()
    assert None not in colours, colours
    # every frame, in the server's order: each one is the next colour of the loop
    assert all((b - a) % len(COLOURS) == 1 for a, b in zip(colours, colours[1:])), colours
    # source time from the 90 kHz RTP clock: 40 ms apart at 25 fps (the server stamps by its wall clock)
    assert times[0] is None  # RTP time 0 of the first frame reads as "no clock"
    np.testing.assert_allclose(np.diff(times[1:]), 0.04, atol=0.015)
    assert server.requests["DESCRIBE"] == 1 and server.requests["SETUP"] == 1 and server.requests["PLAY"] == 1
    assert _wait(lambda: server.requests["TEARDOWN"] == 1 and server.clients == 0, 3.0), server.requests


def test_frame_source_reads_a_live_rtsp_camera_and_keeps_the_session_alive(rtsp_server) -> None:  # noqa: ANN001
    server = rtsp_server(_solid_frames((640, 480)), fps=25, session_timeout_s=2)
    with FrameSource(server.url, live=True, open_timeout_s=5.0, stall_timeout_s=2.0) as src:
        frames = []
        deadline = time.monotonic() + 8.0
        while len(frames) < 20 and time.monotonic() < deadline:
            frame = src.read(timeout=1.0)
            if frame is not None:
                frames.append(frame)
        assert _wait(lambda: src.stats()["fps"] > 15, 3.0), src.stats()
        # FFmpeg refreshes a session with a 2 s timeout every second (GET_PARAMETER: the server lists it in Public)
        assert _wait(lambda: server.requests["GET_PARAMETER"] >= 2, 4.0), server.requests
        frames_now = src.stats()["frames"]
        assert _wait(lambda: src.stats()["frames"] > frames_now + 5, 2.0)  # well past the session timeout
        assert server.expired == 0
        stats = src.stats()
    assert len(frames) == 20
    assert all(f.image.shape == (480, 640, 3) and _colour_index(f.image) is not None for f in frames)
    ts = np.array([f.ts for f in frames])
    assert np.all(np.diff(ts) > 0) and abs(ts[-1] - time.time()) < 5  # epoch seconds, never decreasing
    # spaced by the camera's RTP clock (whole frame periods), not by arrival jitter; the first frame of a
    # connection (RTP time 0 reads as "no clock") is stamped on arrival
    steps = np.diff(ts[1:]) / 0.04
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert stats["connected"] and stats["reconnects"] == 0 and stats["corrupt"] == 0 and stats["stalls"] == 0
    assert stats["missing"] == 0
    assert server.transports == {"tcp": 1}  # RTP/AVP/TCP interleaved, the source's default


def test_rtp_over_udp_when_the_environment_asks_for_it(rtsp_server, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    server = rtsp_server(_solid_frames(), fps=25)
    with FrameSource(server.url, live=True, open_timeout_s=5.0, stall_timeout_s=2.0) as src:
        assert _wait(lambda: src.stats()["frames"] >= 15, 8.0), src.stats()
        frame = src.read(timeout=1.0)
    assert frame is not None and frame.image.shape == (240, 320, 3) and _colour_index(frame.image) is not None
    assert server.transports == {"udp": 1}


def test_lost_packets_drop_frames_that_are_counted_as_missing(rtsp_server) -> None:  # noqa: ANN001
    server = rtsp_server(_solid_frames((640, 480)), fps=25)  # 4 RTP packets per frame
    with FrameSource(server.url, live=True, open_timeout_s=5.0, stall_timeout_s=2.0) as src:
        assert _wait(lambda: src.stats()["frames"] >= 15, 8.0), src.stats()
        server.lose_next(1)
        assert _wait(lambda: server.lost == 1, 2.0)
        time.sleep(0.4)
        server.lose_next(3)  # three frames in a row
        assert _wait(lambda: server.lost == 4, 2.0)
        assert _wait(lambda: src.stats()["missing"] >= 4, 3.0), src.stats()
        time.sleep(0.4)
        frame = src.read(timeout=1.0)
        stats = src.stats()
    # FFmpeg discards the incomplete frames silently; the gaps in the RTP clock tell how many
    assert stats["missing"] == 4, stats
    assert stats["corrupt"] == 0 and stats["reconnects"] == 0 and stats["connected"]
    assert frame is not None and _colour_index(frame.image) is not None


def test_a_stalled_stream_is_detected_by_the_read_timeout_and_reconnected_with_backoff(rtsp_server) -> None:  # noqa: ANN001
    server = rtsp_server(_solid_frames(), fps=25)
    src = FrameSource(server.url, live=True, reconnect_initial_s=0.1, reconnect_max_s=2.0, stall_timeout_s=1.0,
                      open_timeout_s=1.5)
    with src:
        assert _wait(lambda: src.stats()["frames"] >= 10, 8.0), src.stats()
        server.stall()  # the TCP connection stays open and silent: only a read timeout can notice
        stalled_at = time.monotonic()
        assert _wait(lambda: src.stats()["stalls"] >= 1, 4.0), src.stats()
        assert time.monotonic() - stalled_at < 3.0
        # a reopen during the stall gets its RTSP answers but no media: it times out and the wait grows
        assert _wait(lambda: src.stats()["reconnects"] >= 2, 8.0), src.stats()
        down = src.stats()
        assert not down["connected"] and down["backoff_s"] > 0.1, down  # the first wait is <= 0.1 s
        assert server.connections >= 2
        frames_before = down["frames"]
        server.resume()
        assert _wait(lambda: src.stats()["frames"] >= frames_before + 10, 10.0), src.stats()
        frame = src.read(timeout=2.0)
        assert frame is not None and _colour_index(frame.image) is not None
        up = src.stats()
    assert up["connected"] and up["corrupt"] == 0


def test_server_drop_and_restart_are_reconnected_and_counted(rtsp_server) -> None:  # noqa: ANN001
    server = rtsp_server(_solid_frames(), fps=25)
    src = FrameSource(server.url, live=True, reconnect_initial_s=0.1, reconnect_max_s=0.8, stall_timeout_s=1.0,
                      open_timeout_s=2.0)
    with src:
        assert _wait(lambda: src.stats()["frames"] >= 10, 8.0), src.stats()
        server.drop()  # every connection closed by the camera (reboot, network cut)
        assert _wait(lambda: src.stats()["reconnects"] >= 1, 5.0), src.stats()
        assert _wait(lambda: server.connections >= 2 and src.stats()["connected"], 8.0), src.stats()
        after_drop = src.stats()
        assert _wait(lambda: src.stats()["frames"] >= after_drop["frames"] + 10, 6.0), src.stats()

        server.stop()  # the camera is gone: connection refused until it is back
        assert _wait(lambda: src.stats()["reconnects"] >= after_drop["reconnects"] + 3, 8.0), src.stats()
        down = src.stats()
        assert not down["connected"] and down["last_error"] and down["backoff_s"] >= 0.2, down
        server.start()  # same port
        assert _wait(lambda: src.stats()["frames"] >= down["frames"] + 10, 10.0), src.stats()
        frame = src.read(timeout=2.0)
        up = src.stats()
    assert frame is not None and frame.image.shape == (240, 320, 3) and _colour_index(frame.image) is not None
    assert up["connected"] and up["stalls"] == 0 and server.requests["PLAY"] >= 3
    # the frames FFmpeg buffered while reopening arrive in a burst, yet the rate is the camera's
    assert 15 < up["fps"] < 40, up


def test_corrupt_frames_are_counted_and_never_fatal(rtsp_server) -> None:  # noqa: ANN001
    server = rtsp_server(_solid_frames(), fps=25)
    with FrameSource(server.url, live=True, open_timeout_s=5.0, stall_timeout_s=2.0) as src:
        assert _wait(lambda: src.stats()["frames"] >= 10, 8.0), src.stats()
        for _ in range(3):
            server.corrupt_next(4)  # fewer than max_bad_reads in a row: the connection must survive
            assert _wait(lambda: server._corrupt_pending == 0, 2.0)
            time.sleep(0.3)
        assert server.corrupted_sent == 12
        before = src.stats()["frames"]
        good = []
        deadline = time.monotonic() + 5.0
        while len(good) < 5 and time.monotonic() < deadline:
            frame = src.read(timeout=1.0)
            if frame is not None and frame.index > before:
                good.append(_colour_index(frame.image))
        stats = src.stats()
    # FFmpeg rejects some garbage scans (counted here) and conceals the others as damaged images
    assert 1 <= stats["corrupt"] <= 12, stats
    assert stats["missing"] == 0  # a rejected frame's gap in the RTP clock is not counted twice
    assert stats["reconnects"] == 0 and stats["stalls"] == 0 and stats["connected"]
    assert len(good) == 5 and None not in good  # the stream goes on with intact frames


def test_real_video_frames_arrive_intact_in_8_pixel_blocks(rtsp_server, gif_frames) -> None:  # noqa: ANN001
    server = rtsp_server(gif_frames, fps=15)
    cap, error = open_capture(server.url, "rtsp", open_timeout_s=5.0, read_timeout_s=2.0)
    assert cap is not None, error
    try:
        decoded = [cap.read()[1] for _ in range(12)]
    finally:
        cap.release()
    originals = np.stack(gif_frames).astype(np.int16)
    matches = []
    for image in decoded:
        # RFC 2435 sends sizes in 8-pixel blocks: a 480x270 camera arrives as 480x272 (2 rows of edge padding)
        assert image is not None and image.shape == (272, 480, 3)
        errors = np.abs(originals - image[:270].astype(np.int16)).mean(axis=(1, 2, 3))
        matches.append(int(errors.argmin()))
        assert errors.min() < 4.0, errors.min()  # the same picture, up to JPEG loss
    assert all((b - a) % len(gif_frames) == 1 for a, b in zip(matches, matches[1:])), matches


# ---------------------------------------------------------------- the whole camera pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    directory = tmp_path_factory.mktemp("models")
    install("yolox-nano", directory, mirror=models_dir)
    return directory


def test_camera_pipeline_on_an_rtsp_stream_of_the_sample_video_counts_across_a_camera_reboot(
        tmp_path: Path, worker_gif: Path, model_dir: Path) -> None:
    server = RtspServer.from_video(worker_gif).start()
    camera = CameraConfig(name="door", url=server.url, analytics=CameraAnalyticsConfig(
        detect_fps=5, lines=[LineConfig(name="entry", start=(0.0, 0.85), end=(1.0, 0.85))]))
    db = open_store(tmp_path)
    outbox = Outbox(db, store_id="s1", boot_id="boot-test", priority_for=SyncConfig().priority_for, connect=connect)
    pipeline = CameraPipeline(camera, VisionConfig(aggregate_interval_s=2), ModelsConfig(dir=model_dir), outbox)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pipeline.run(stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    conn = connect(db)

    def crossings() -> list[dict]:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM events WHERE type = 'line_crossing'")]

    try:
        runner.start()
        # the GIF loops every 4.7 s; the worker walks up across the line once per loop
        assert _wait(lambda: len(crossings()) >= 1, 30.0, step=0.2), pipeline.status()
        before = pipeline.status()
        server.drop()  # the camera reboots mid-stream
        assert _wait(lambda: pipeline.status()["source"]["reconnects"] >= 1, 10.0), pipeline.status()
        assert _wait(lambda: len(crossings()) >= 2, 20.0, step=0.2), pipeline.status()  # counting goes on
        after = pipeline.status()
    finally:
        stop.set()
        runner.join(timeout=10)
        server.stop()
    assert not runner.is_alive() and not errors, errors
    assert before["source"]["connected"] and before["source"]["reconnects"] == 0 and before["source"]["corrupt"] == 0
    processor = before["processor"]
    assert processor["inferences"] >= 5 and processor["detections"] >= processor["inferences"] // 2
    assert after["source"]["connected"] and server.connections >= 2
    assert after["processor"]["inferences"] > processor["inferences"]
    assert {c["direction"] for c in crossings()} == {"out"}  # walking up the image across a left→right line
    outbox_streams = {s for (s,) in conn.execute("SELECT DISTINCT stream FROM outbox")}
    assert "events/line_crossing" in outbox_streams
    conn.close()
