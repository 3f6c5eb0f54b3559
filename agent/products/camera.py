"""The camera above a scale's tray: the freshest frame on demand.

A still image file (``.jpg``/``.png``…) is read afresh on every call (a demo or test swaps the file to "place"
another product); anything else is a live :class:`~agent.vision.source.FrameSource` (USB, RTSP, HTTP, video
file) whose newest frame is taken, falling back to the last one seen while it is younger than ``max_age_s``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.products.dataset import IMAGE_SUFFIXES


class TrayCamera:
    """``grab()`` → (H, W, 3) BGR image or None (no frame within ``wait_s`` and nothing recent)."""

    def __init__(self, url: str, *, wait_s: float = 0.15, max_age_s: float = 2.0) -> None:
        self.url = url
        self.wait_s = wait_s
        self.max_age_s = max_age_s
        self.still = Path(url).suffix.lower() in IMAGE_SUFFIXES and "://" not in url
        self._source: Any = None
        self._last: tuple[np.ndarray, float] | None = None
        self.misses = 0

    def start(self) -> TrayCamera:
        """Open a live source (no-op for a still image)."""
        if not self.still and self._source is None:
            from agent.vision.source import FrameSource

            self._source = FrameSource(self.url, live=True).start()
        return self

    def grab(self) -> np.ndarray | None:
        """The freshest frame (see the module doc)."""
        if self.still:
            image = cv2.imread(self.url)
            if image is None:
                self.misses += 1
            return image
        self.start()
        frame = self._source.read(timeout=self.wait_s)
        now = time.monotonic()
        if frame is not None:
            self._last = (frame.image, now)
            return frame.image
        if self._last is not None and now - self._last[1] <= self.max_age_s:
            return self._last[0]
        self.misses += 1
        return None

    def status(self) -> dict[str, Any]:
        """Source kind, misses and the live source's own counters."""
        out: dict[str, Any] = {"url": self.url, "still": self.still, "misses": self.misses}
        if self._source is not None:
            out["source"] = self._source.stats()
        return out

    def close(self) -> None:
        """Stop a live source."""
        if self._source is not None:
            self._source.close()
            self._source = None
