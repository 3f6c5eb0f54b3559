"""Open one connection to a video source with OpenCV and read it: the backend-specific part of
:class:`agent.vision.source.FrameSource` (which adds threads, reconnects and counters)."""

from __future__ import annotations

import configparser
import os
import re
from itertools import accumulate
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from agent.vision.timing import gif_durations, is_gif

SourceKind = Literal["rtsp", "http", "stream", "usb", "file", "images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_STREAM_SCHEMES = ("rtmp", "rtmps", "udp", "tcp", "srt", "rtp")


def classify(url: str | int | os.PathLike) -> SourceKind:
    """What kind of source ``url`` names.

    Example:
        >>> [classify(u) for u in ("rtsp://cam/1", "http://h/x.mjpg", 0, "/dev/video2", "a.mp4")]
        ['rtsp', 'http', 'usb', 'usb', 'file']
    """
    if isinstance(url, int) or (isinstance(url, str) and url.isdigit()):
        return "usb"
    text = os.fspath(url)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if scheme in ("http", "https"):
        return "http"
    if scheme in _STREAM_SCHEMES:
        return "stream"
    if re.fullmatch(r"/dev/video\d+", text):
        return "usb"
    if scheme == "file":
        text = text[len("file://"):]
    return "images" if Path(text).is_dir() else "file"


class Capture:
    """One open connection: ``read() -> (ok, image)``, plus position and end-of-file queries."""

    is_file = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        raise NotImplementedError

    def release(self) -> None:
        """Close the connection."""

    def frame_index(self) -> int:
        """0-based number of the frame returned by the last ``read``."""
        raise NotImplementedError

    def position_s(self, index: int) -> float | None:
        """Source time of the last frame read (seconds), or None when the source has no clock."""
        return None

    def at_end(self) -> bool:
        """True when a file has no more frames to read."""
        return False

    def undelivered(self) -> int:
        """Frames the container declares that were never read (a truncated or damaged file); 0 if unknown."""
        return 0


class CvCapture(Capture):
    """An ``cv2.VideoCapture`` (FFmpeg for files and streams, V4L2 for USB)."""

    def __init__(self, cap: cv2.VideoCapture, kind: SourceKind, path: str | None = None) -> None:
        self._cap = cap
        self.kind = kind
        self.is_file = kind == "file"
        self._reads = 0
        self._count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.is_file else 0
        self._gif_starts: list[float] | None = None
        if self.is_file and path is not None and is_gif(path):
            durations = gif_durations(path)
            if durations:
                self._gif_starts = [0.0, *accumulate(durations)]
        self._fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        ok, image = self._cap.read()
        self._reads += 1
        return ok, image

    def release(self) -> None:
        self._cap.release()

    def frame_index(self) -> int:
        pos = self._cap.get(cv2.CAP_PROP_POS_FRAMES)
        return int(pos) - 1 if pos and pos > 0 else self._reads - 1

    def position_s(self, index: int) -> float | None:
        if self._gif_starts is not None:
            if index < len(self._gif_starts) - 1:
                return self._gif_starts[index]
            last = self._gif_starts[-1] - self._gif_starts[-2] if len(self._gif_starts) > 1 else 0.1
            return self._gif_starts[-1] + (index - len(self._gif_starts) + 1) * last
        msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        if msec is not None and msec > 0:
            return msec / 1000.0
        if self.is_file and index >= 0:
            if index == 0:
                return 0.0
            return index / self._fps if self._fps > 0 else None
        return None

    def at_end(self) -> bool:
        if not self.is_file or self._count <= 0:
            return False
        return self._cap.get(cv2.CAP_PROP_POS_FRAMES) >= self._count

    def undelivered(self) -> int:
        if not self.is_file or self._count <= 0:
            return 0
        return max(0, self._count - int(self._cap.get(cv2.CAP_PROP_POS_FRAMES) or 0))


class ImageFolderCapture(Capture):
    """A folder of frames (e.g. a MOTChallenge ``img1/``), read in file-name order at ``fps``."""

    is_file = True

    def __init__(self, folder: Path, fps: float | None = None) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.fps = fps or seqinfo_frame_rate(folder) or 25.0
        self._next = 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self._next >= len(self.files):
            return False, None
        path = self.files[self._next]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return (image is not None), image

    def frame_index(self) -> int:
        return self._next - 1

    def position_s(self, index: int) -> float | None:
        return index / self.fps

    def at_end(self) -> bool:
        return self._next >= len(self.files)


def seqinfo_frame_rate(folder: Path) -> float | None:
    """``frameRate`` from a MOTChallenge ``seqinfo.ini`` in ``folder`` or its parent."""
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        if ini.is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read(ini, encoding="utf-8")
                return float(parser["Sequence"]["frameRate"])
            except (KeyError, ValueError, configparser.Error):
                return None
    return None


def open_capture(url: str | int | os.PathLike, kind: SourceKind, open_timeout_s: float, read_timeout_s: float,
                 fps: float | None = None) -> tuple[Capture | None, str | None]:
    """Open one connection; ``(capture, None)`` or ``(None, error text)``. Never raises."""
    try:
        if kind == "images":
            folder = Path(os.fspath(url).removeprefix("file://"))
            cap = ImageFolderCapture(folder, fps)
            return (cap, None) if cap.files else (None, f"no images in {folder}")
        if kind == "usb":
            device: int | str = int(url) if isinstance(url, int) or str(url).isdigit() else os.fspath(url)
            if isinstance(device, str) and not os.path.exists(device):
                return None, f"no such device: {device}"
            vc = cv2.VideoCapture(device, cv2.CAP_V4L2 if os.name == "posix" else cv2.CAP_ANY)
            if vc.isOpened():
                vc.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog in the driver
        elif kind == "file":
            path = os.fspath(url).removeprefix("file://")
            if not os.path.isfile(path):
                return None, f"no such file: {path}"
            vc = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
            if not vc.isOpened():
                vc = cv2.VideoCapture(path, cv2.CAP_ANY)
            if vc.isOpened():
                return CvCapture(vc, kind, path), None
            return None, f"cannot decode {path}"
        else:
            if kind == "rtsp":
                # TCP interleaving survives lossy networks far better than RTP over UDP; the user may override.
                os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
            vc = cv2.VideoCapture(os.fspath(url), cv2.CAP_FFMPEG, params)
        if not vc.isOpened():
            vc.release()
            return None, f"cannot open {kind} source"
        return CvCapture(vc, kind), None
    except (cv2.error, OSError, ValueError) as exc:
        return None, f"cannot open {kind} source: {exc}"
