"""Frame timing helpers for :mod:`agent.vision.source`: GIF frame durations, reconnect backoff, the live
timestamp clock and a rolling fps meter. Pure or nearly pure, so they are tested without cameras."""

from __future__ import annotations

import os
import random
import time
from collections import deque
from functools import lru_cache
from pathlib import Path

#: Browsers and FFmpeg show GIF frames declared with a delay of 0 or 10 ms for 100 ms; so do we.
GIF_DEFAULT_DURATION_S = 0.1


def gif_durations(path: str | os.PathLike) -> tuple[float, ...]:
    """Per-frame display durations of an animated GIF, in seconds, as declared in the file.

    OpenCV's nominal fps for a GIF is one number, while real GIF delays vary per frame (the clips in
    ``../shared/data/videos`` alternate 60/70 ms), so dwell times need these. Read with Pillow
    (``im.info["duration"]``, milliseconds); cached per (path, size, mtime) because Pillow decodes every frame.

    Returns:
        (F,) durations; an empty tuple when the file is not a readable GIF or Pillow is not installed.

    Example:
        >>> d = gif_durations("worker-zone-detection.gif")  # doctest: +SKIP
        >>> len(d), round(sum(d), 2)  # doctest: +SKIP
        (71, 4.74)
    """
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return _gif_durations_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _gif_durations_cached(path: str, size: int, mtime_ns: int) -> tuple[float, ...]:  # noqa: ARG001 - cache key
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a declared dependency
        return ()
    out: list[float] = []
    try:
        with Image.open(path) as im:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                ms = im.info.get("duration") or 0
                out.append(ms / 1000.0 if ms > 10 else GIF_DEFAULT_DURATION_S)
    except (OSError, ValueError, EOFError):
        return tuple(out)
    return tuple(out)


def is_gif(path: str | os.PathLike) -> bool:
    """True when the file starts with a GIF signature."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in (b"GIF8",)
    except OSError:
        return False


class Backoff:
    """Exponential backoff with jitter: wait ``n`` is ``min(cap, initial · 2^(n-1))`` scaled by a random factor
    in ``[1 - jitter, 1]``. With ``jitter ≤ 0.5`` successive waits strictly grow until the cap.

    Example:
        >>> b = Backoff(initial_s=0.5, max_s=4.0, jitter=0.0)
        >>> [b.next() for _ in range(5)]
        [0.5, 1.0, 2.0, 4.0, 4.0]
        >>> b.reset(); b.next()
        0.5
    """

    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, jitter: float = 0.25,
                 rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s or not 0.0 <= jitter < 1.0:
            raise ValueError("need 0 < initial_s <= max_s and 0 <= jitter < 1")
        self.initial_s, self.max_s, self.jitter = initial_s, max_s, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next(self) -> float:
        """Record one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        base = min(self.max_s, self.initial_s * 2.0 ** min(self.failures - 1, 60))
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        """A success: the next failure waits ``initial_s`` again."""
        self.failures = 0


class LiveClock:
    """Timestamps for live frames: seconds on the UNIX epoch, never going backwards.

    ``arrival()`` is the monotonic clock shifted onto the epoch once (immune to NTP steps). When the source has
    a clock of its own (``pos_s``: RTSP/RTP time, V4L2 buffer time, a file's position), a connection's first
    frame anchors it to the arrival time and later frames keep the source's spacing, which is free of the
    network's and decoder's jitter. If the source clock drifts more than ``max_drift_s`` from arrival (fake or
    reset timestamps, e.g. FFmpeg's 25 fps guess for MJPEG over HTTP), the rest of that connection uses arrival
    times.
    """

    def __init__(self, max_drift_s: float = 2.0) -> None:
        self.max_drift_s = max_drift_s
        self._offset = time.time() - time.monotonic()
        self._anchor: float | None = None
        self._trust = True
        self._last = float("-inf")

    def arrival(self) -> float:
        return self._offset + time.monotonic()

    def to_monotonic(self, ts: float) -> float:
        """The ``time.monotonic()`` value at which epoch time ``ts`` happens (for pacing)."""
        return ts - self._offset

    def new_connection(self, trust_source: bool) -> None:
        self._anchor = None
        self._trust = trust_source

    def stamp(self, pos_s: float | None, arrival: float | None = None) -> float:
        """Timestamp of a frame that arrived at ``arrival`` (default: now) with source position ``pos_s``."""
        arrival = self.arrival() if arrival is None else arrival
        ts = arrival
        if self._trust and pos_s is not None and pos_s >= 0:
            if self._anchor is None:
                self._anchor = arrival - pos_s
            ts = self._anchor + pos_s
            if abs(ts - arrival) > self.max_drift_s:
                self._trust = False
                ts = arrival
        ts = max(ts, self._last + 1e-6)
        self._last = ts
        return ts

    def planned(self, pos_s: float) -> float | None:
        """Epoch time at which a frame at source position ``pos_s`` is due (files paced in live mode)."""
        return None if self._anchor is None or not self._trust else self._anchor + pos_s


class FrameGaps:
    """Frames missing from a live stream, seen as steps in its source clock.

    A frame the camera sent but that never arrived (an RTP packet lost makes FFmpeg drop the whole frame without
    an error) leaves a gap of k frame intervals, i.e. k - 1 missing frames. The interval is the median of the
    recent steps; ``explained`` frames (reads that failed, already counted as corrupt) are not counted twice;
    steps longer than ``max_gap_s`` are clock discontinuities, not losses. Call ``reset()`` per connection.

    Example:
        >>> gaps = FrameGaps()
        >>> [gaps.observe(t / 10) for t in (0, 1, 2, 3, 4, 5, 6, 9, 10, 12)]
        [0, 0, 0, 0, 0, 0, 0, 2, 0, 1]
        >>> gaps.observe(1.4, explained=1)
        0
    """

    def __init__(self, window: int = 15, min_steps: int = 5, max_gap_s: float = 5.0) -> None:
        self.min_steps, self.max_gap_s = min_steps, max_gap_s
        self._steps: deque[float] = deque(maxlen=window)
        self._last: float | None = None

    def reset(self) -> None:
        self._steps.clear()
        self._last = None

    def observe(self, pos_s: float | None, explained: int = 0) -> int:
        """Record a frame at source time ``pos_s`` (None: no clock); returns the frames missing before it."""
        if pos_s is None:
            return 0
        last, self._last = self._last, pos_s
        step = pos_s - last if last is not None else 0.0
        if step <= 0 or step > self.max_gap_s:
            return 0
        if len(self._steps) >= self.min_steps:
            interval = sorted(self._steps)[len(self._steps) // 2]
            if step > 1.5 * interval:
                return max(0, round(step / interval) - 1 - explained)
        self._steps.append(step)
        return 0


class RateMeter:
    """Events per second over a sliding window of the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0, maxlen: int = 512) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=maxlen)

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0
