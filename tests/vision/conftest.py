"""Fixtures for the vision tests: paths of the shared real data/models and a real MJPEG-over-HTTP server.

Fixtures
    shared_dir      ../shared (data and models; never copied, never downloaded)
    worker_gif      the worker-zone-detection GIF (71 frames, one walking person)
    gif_frames      its decoded BGR frames (list of (270, 480, 3) uint8), read once per session
    mot17_dir       ../shared/data/mot17-mini/train
    models_dir      ../shared/models
    mjpeg_server    factory(frames, interval_s=0.04) -> started MjpegServer; all stopped at teardown
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data/models folder missing: {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def worker_gif(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos" / "worker-zone-detection.gif"


@pytest.fixture(scope="session")
def gif_frames(worker_gif: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(worker_gif))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    assert len(frames) == 71
    return frames


@pytest.fixture(scope="session")
def mot17_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "mot17-mini" / "train"


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG stream at ``http://127.0.0.1:PORT/stream.mjpg`` (what IP cameras and
    ``motion``/``mjpg-streamer`` serve). ``stop()`` closes the listening socket AND every open stream (a camera
    that goes away); ``start()`` again serves on the same port; ``stall`` holds open connections silent."""

    def __init__(self, frames: list[np.ndarray], interval_s: float = 0.04) -> None:
        self.jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for f in frames]
        self.interval_s = interval_s
        self.port = 0
        self.stall = threading.Event()
        self.sent = 0
        self._alive = threading.Event()
        self._server: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> MjpegServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while owner._alive.is_set():
                        if owner.stall.is_set():
                            time.sleep(0.02)
                            continue
                        jpg = owner.jpegs[i % len(owner.jpegs)]
                        i += 1
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        owner.sent += 1
                        time.sleep(owner.interval_s)
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._alive.set()
        self._server = Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._alive.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        time.sleep(self.interval_s * 2)  # handlers notice and close their sockets


@pytest.fixture
def mjpeg_server() -> Iterator[Callable[..., MjpegServer]]:
    servers: list[MjpegServer] = []

    def factory(frames: list[np.ndarray], interval_s: float = 0.04) -> MjpegServer:
        server = MjpegServer(frames, interval_s).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
