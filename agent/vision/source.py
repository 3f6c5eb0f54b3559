"""Frame sources: RTSP/HTTP streams, USB cameras, video files and image folders, read with OpenCV.

Two modes:

- **live** (``live=True``, cameras): a reader thread keeps only the newest frame (latest-frame-wins: a slow
  consumer never builds a queue; overwritten frames are counted as ``dropped``), reconnects with exponential
  backoff and jitter when opening fails, reads fail or a read stalls longer than ``stall_timeout_s``, and never
  raises to the consumer. Files in live mode are paced at their own frame times and loop, like a camera.
- **replay** (``live=False``, files): every frame in order, as fast as the consumer reads, with the file's true
  timestamps (GIF frame delays from the file; other files' stream position).

Corrupt or missing frames are counted (``corrupt``), never fatal.

Example:
    >>> with FrameSource("clip.gif", live=False) as src:  # doctest: +SKIP
    ...     for frame in src:
    ...         frame.image.shape, frame.ts, frame.index
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.vision.capture import Capture, SourceKind, classify, open_capture
from agent.vision.timing import Backoff, FrameGaps, LiveClock, RateMeter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        ts: seconds. Live sources: UNIX epoch time, spaced by the source's own clock when it has a trustworthy
            one, else arrival time; never decreasing. Replay: seconds from the start of the file.
        index: 0-based. Replay: the frame's number in the file. Live: the number of frames read from the
            source so far (across reconnects), so gaps between consumed frames are the dropped ones.
    """

    image: np.ndarray
    ts: float
    index: int


class FrameSource:
    """Read frames from ``url``: ``rtsp://…``/``http(s)://…`` streams, a USB camera (``/dev/videoN`` or an int
    index), a video file or a folder of images.

    Args:
        url: the source; ints and digit strings are USB camera indices.
        live: camera mode (thread, latest-frame-wins, reconnect forever) or replay mode (every frame, in order).
        reconnect_max_s: cap of the reconnect backoff.
        reconnect_initial_s: first reconnect wait (doubles per consecutive failure, with jitter).
        stall_timeout_s: a read that blocks longer than this is a failure (FFmpeg's read timeout; a watchdog
            abandons a backend that ignores it after twice this).
        open_timeout_s: FFmpeg open timeout for network streams.
        max_bad_reads: consecutive failed reads after which the stream counts as lost (fewer, followed by a good
            frame, count as corrupt frames).
        loop: live mode on a file: start again at the end (True) or end the source (False).
        replay_open_attempts: replay mode: how many times to try opening before giving up.
        fps: frame rate of an image folder (default: ``frameRate`` of a MOTChallenge ``seqinfo.ini`` next to or
            above the folder, else 25).
        timestamps: ``"auto"`` (source clock for RTSP, USB and files; arrival time for HTTP, whose MJPEG
            timestamps are invented by FFmpeg), ``"source"`` or ``"arrival"``.
    """

    def __init__(self, url: str | int | os.PathLike, *, live: bool, reconnect_max_s: float = 30.0,
                 reconnect_initial_s: float = 0.5, stall_timeout_s: float = 5.0, open_timeout_s: float = 10.0,
                 max_bad_reads: int = 5, loop: bool = True, replay_open_attempts: int = 1,
                 fps: float | None = None, timestamps: str = "auto", max_drift_s: float = 2.0) -> None:
        if timestamps not in ("auto", "source", "arrival"):
            raise ValueError("timestamps must be 'auto', 'source' or 'arrival'")
        self.url = url
        self.name = source_name(url)
        self.kind: SourceKind = classify(url)
        self.live = live
        self.stall_timeout_s = stall_timeout_s
        self.open_timeout_s = open_timeout_s
        self.max_bad_reads = max(1, max_bad_reads)
        self.loop = loop
        self.replay_open_attempts = max(1, replay_open_attempts)
        self.fps_hint = fps
        self._trust_source_clock = (timestamps == "source"
                                    or (timestamps == "auto" and self.kind in ("rtsp", "usb", "file", "images")))
        self._backoff = Backoff(reconnect_initial_s, max(reconnect_max_s, reconnect_initial_s))
        self._clock = LiveClock(max_drift_s)
        self._gaps = FrameGaps()
        self._meter = RateMeter()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._slot: Frame | None = None
        self._ended = False
        self._started = False
        self._generation = 0
        self._busy_since: float | None = None
        self._threads: list[threading.Thread] = []
        self._cap: Capture | None = None  # replay mode
        self._replay_bad = 0
        self._next_index = 0
        self._stats: dict[str, Any] = {"frames": 0, "dropped": 0, "corrupt": 0, "missing": 0, "reconnects": 0,
                                       "stalls": 0, "last_error": None, "connected": False, "backoff_s": 0.0}

    # ------------------------------------------------------------------ public API
    def start(self) -> FrameSource:
        """Start the reader (live mode) or open the file (replay mode). Idempotent; ``read`` calls it."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        if self.live:
            self._spawn_reader()
            watchdog = threading.Thread(target=self._watchdog, name=f"source-watchdog:{self.name}", daemon=True)
            watchdog.start()
            self._threads.append(watchdog)
        return self

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame. Live: the newest frame not yet returned, waiting up to ``timeout`` seconds (None:
        forever) — returns None on timeout, after ``close()`` or when a non-looping file ended. Replay: the next
        frame of the file, or None at its end."""
        self.start()
        if not self.live:
            return self._replay_next()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._slot is None and not self._ended and not self._stop.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(remaining if remaining is not None else 0.5)
            frame, self._slot = self._slot, None
            return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read(timeout=None)
            if frame is None:
                return
            yield frame

    def stats(self) -> dict[str, Any]:
        """``frames`` read from the source, ``dropped`` (overwritten before the consumer took them),
        ``corrupt`` (unreadable frames), ``missing`` (live: frames the source clock says were sent but never
        arrived, e.g. RTP packets lost), ``reconnects`` (reopen attempts after a failure), ``stalls`` (reads that
        exceeded the stall timeout), ``last_error``, ``fps`` (source frame rate over the last 5 s),
        ``connected`` and ``backoff_s`` (the last reconnect wait)."""
        with self._lock:
            out = dict(self._stats)
        # metered on frame timestamps: an RTSP open's buffered burst arrives at once but spans its source time
        out["fps"] = round(self._meter.rate(self._clock.arrival() if self.live else None), 2)
        return out

    @property
    def ended(self) -> bool:
        """True when the source will deliver no more frames (replay end, a non-looping live file, closed)."""
        return self._ended or self._stop.is_set()

    def close(self) -> None:
        """Stop the reader and release the capture. Safe to call twice."""
        self._stop.set()
        with self._lock:
            self._ended = True
            self._lock.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=self.stall_timeout_s + 1.0)
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> FrameSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ replay mode
    def _replay_next(self) -> Frame | None:
        if self._ended:
            return None
        if self._cap is None and not self._replay_open():
            self._finish()
            return None
        cap = self._cap
        assert cap is not None
        while True:
            ok, image = cap.read()
            if ok and _valid(image):
                with self._lock:
                    self._stats["corrupt"] += self._replay_bad
                    self._stats["frames"] += 1
                self._replay_bad = 0
                self._meter.tick()
                index = cap.frame_index()
                return Frame(image, cap.position_s(index), index)
            self._replay_bad += 1
            if self._replay_bad >= self.max_bad_reads or cap.at_end():
                missing = cap.undelivered()
                with self._lock:
                    self._stats["corrupt"] += missing
                    if missing:
                        self._stats["last_error"] = f"{missing} frame(s) unreadable before the end"
                self._finish()
                return None

    def _replay_open(self) -> bool:
        for attempt in range(self.replay_open_attempts):
            if self._stop.is_set():
                return False
            cap, error = open_capture(self.url, self.kind, self.open_timeout_s, self.stall_timeout_s,
                                      self.fps_hint)
            if cap is not None:
                self._cap = cap
                with self._lock:
                    self._stats["connected"] = True
                return True
            with self._lock:
                self._stats["last_error"] = error
                if attempt:
                    self._stats["reconnects"] += 1
            if attempt + 1 < self.replay_open_attempts:
                wait = self._backoff.next()
                self._stats["backoff_s"] = round(wait, 3)
                self._stop.wait(wait)
        log.warning("cannot open video source", extra={"source": self.name, "error": error})
        return False

    def _finish(self) -> None:
        with self._lock:
            self._ended = True
            self._stats["connected"] = False
            self._lock.notify_all()
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    # ------------------------------------------------------------------ live mode
    def _spawn_reader(self) -> None:
        with self._lock:
            self._generation += 1
            gen = self._generation
            self._busy_since = None
        thread = threading.Thread(target=self._reader, args=(gen,), name=f"source:{self.name}", daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _current(self, gen: int) -> bool:
        return gen == self._generation and not self._stop.is_set()

    def _set_busy(self, gen: int, busy: bool) -> None:
        with self._lock:
            if gen == self._generation:
                self._busy_since = time.monotonic() if busy else None

    def _reader(self, gen: int) -> None:
        first = True
        while self._current(gen):
            if not first and not self._wait_backoff():
                return
            first = False
            self._set_busy(gen, True)
            cap, error = open_capture(self.url, self.kind, self.open_timeout_s, self.stall_timeout_s,
                                      self.fps_hint)
            self._set_busy(gen, False)
            if not self._current(gen):
                if cap is not None:
                    cap.release()
                return
            if cap is None:
                self._fail(error or "open failed")
                continue
            try:
                outcome = self._read_connection(gen, cap)
            except Exception as exc:  # noqa: BLE001 - a backend error must never kill the reader
                outcome = f"reader error: {exc!r}"
            finally:
                cap.release()
                with self._lock:
                    self._stats["connected"] = False
            if outcome == "eof" and self.loop:
                first = True  # a file played to its end: start again at once, like a camera that never stops
                continue
            if outcome == "eof":
                with self._lock:
                    self._ended = True
                    self._lock.notify_all()
                return
            if outcome != "stopped":
                self._fail(outcome)

    def _read_connection(self, gen: int, cap: Capture) -> str:
        """Read one connection until it fails; returns 'eof', 'stopped' or an error text."""
        with self._lock:
            self._stats["connected"] = True
        self._clock.new_connection(self._trust_source_clock)
        self._gaps.reset()
        bad = 0
        delivered = 0
        paced = cap.is_file
        while self._current(gen):
            self._set_busy(gen, True)
            started = time.monotonic()
            ok, image = cap.read()
            elapsed = time.monotonic() - started
            self._set_busy(gen, False)
            if not self._current(gen):
                return "stopped"
            if ok and _valid(image):
                pos = cap.position_s(cap.frame_index()) if self._trust_source_clock else None
                missing = self._gaps.observe(pos, explained=bad)
                if bad:
                    with self._lock:
                        self._stats["corrupt"] += bad
                    bad = 0
                self._backoff.reset()
                if paced and pos is not None:
                    due = self._clock.planned(pos)
                    if due is not None:
                        delay = self._clock.to_monotonic(due) - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            return "stopped"
                self._publish(image, self._clock.stamp(pos), missing)
                delivered += 1
                continue
            if elapsed >= self.stall_timeout_s * 0.9:
                with self._lock:
                    self._stats["stalls"] += 1
                return f"read stalled for {elapsed:.1f} s"
            bad += 1
            if cap.is_file and (cap.at_end() or bad >= self.max_bad_reads):
                # a file that ends without a single frame is broken, not finished: back off like a camera
                return "eof" if delivered else "no readable frame in the file"
            if bad >= self.max_bad_reads:
                return f"{bad} consecutive failed reads"
        return "stopped"

    def _publish(self, image: np.ndarray, ts: float, missing: int = 0) -> None:
        self._meter.tick(ts)
        with self._lock:
            self._stats["missing"] += missing
            if self._slot is not None:
                self._stats["dropped"] += 1
            self._slot = Frame(image, ts, self._next_index)
            self._next_index += 1
            self._stats["frames"] += 1
            self._lock.notify_all()

    def _fail(self, error: str) -> None:
        with self._lock:
            self._stats["last_error"] = error
        failures = self._backoff.failures + 1
        # a camera down for hours: log the first failure and every 10th, not every attempt
        level = logging.WARNING if failures == 1 or failures % 10 == 0 else logging.DEBUG
        log.log(level, "video source failed; reconnecting",
                extra={"source": self.name, "error": error, "failures": failures})

    def _wait_backoff(self) -> bool:
        wait = self._backoff.next()
        with self._lock:
            self._stats["backoff_s"] = round(wait, 3)
        if self._stop.wait(wait):
            return False
        with self._lock:
            self._stats["reconnects"] += 1
        return True

    def _watchdog(self) -> None:
        """Abandon a reader stuck in a backend call (one that ignores FFmpeg's timeouts) and start another."""
        limit = 2.0 * max(self.stall_timeout_s, self.open_timeout_s)
        while not self._stop.wait(min(1.0, self.stall_timeout_s / 2)):
            with self._lock:
                busy = self._busy_since
            if busy is not None and time.monotonic() - busy > limit:
                with self._lock:
                    self._stats["stalls"] += 1
                    self._stats["last_error"] = f"backend call blocked for more than {limit:.0f} s"
                    self._stats["connected"] = False
                log.warning("video source stuck; abandoning the reader", extra={"source": self.name})
                self._spawn_reader()


def _valid(image: np.ndarray | None) -> bool:
    return image is not None and image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0


def source_name(url: str | int | os.PathLike) -> str:
    """A short, credential-free label for logs: the file name or ``scheme://host/path``."""
    text = str(url)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        rest = rest.rsplit("@", 1)[-1]
        return f"{scheme}://{rest}"
    return Path(text).name or text
