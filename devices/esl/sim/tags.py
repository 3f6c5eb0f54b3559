"""Simulated shelf labels as an OpenEPaperLink AP sees them: check-ins, pending queues, transfers, sensors.

Behaviour modelled (DESIGN.md §7): a label wakes every ``interval_s`` (default 40 s) and asks the AP for data;
the AP sends what is pending (an image, an LED command); a new image identical to the current or the pending
one is skipped; a transfer fails with probability ``failure_rate``, and on that timeout the AP drops the
label's queue. After a failed transfer the label wakes again after ``retry_after_failure_s`` instead of a whole
interval — a simulator assumption, documented in docs/esl.md. ``failure_mode="hardware"`` models what
OpenEPaperLink firmware does instead: a failed transfer keeps the AP's queue, the tag retries at its next regular
check-in, and the AP drops a pending image only ``pending_ttl_s`` after it was queued (``xfer timeout``, reported
in :attr:`TagField.errors`). Each check-in reports temperature, battery and RSSI.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.esl.backends.oepl_protocol import decode_led_pattern

#: ``drop``: a failed transfer drops the label's queue at once (the agent must re-push); ``hardware``: as
#: OpenEPaperLink firmware, the queue is kept until ``pending_ttl_s`` (see docs/esl.md).
FAILURE_MODES: tuple[str, ...] = ("drop", "hardware")


@dataclass
class SimTag:
    """One simulated label (field names follow the AP's tag record, see :meth:`record`)."""

    mac: str
    hw_type: int = 0x01  # OpenEPaperLink 2.9" BWR (label type 29bwr)
    temperature: float = 21.0
    battery_mv: int = 3000
    rssi: int = -60
    online: bool = True
    hash: str = "0" * 32
    pending_hash: str | None = None
    pending_led: dict[str, Any] | None = None
    pending_since: float = 0.0
    update_count: int = 0
    update_last: float = 0.0
    last_seen: float = 0.0
    next_checkin: float = 0.0
    led: dict[str, Any] | None = None  # {"colour", "pattern", "until"} while flashing
    transfers_failed: int = 0
    history: list[str] = field(default_factory=list)

    def record(self, now: float) -> dict[str, Any]:
        """The tag as ``GET /get_db`` and the websocket ``tags`` message show it."""
        led = self.led if self.led and self.led["until"] > now else None
        return {
            "mac": self.mac, "hash": self.hash, "lastseen": int(self.last_seen), "nextupdate": 0,
            "nextcheckin": int(self.next_checkin), "pending": int(self.pending_hash is not None)
            + int(self.pending_led is not None), "alias": "", "contentMode": 24, "LQI": 100, "RSSI": self.rssi,
            "temperature": round(self.temperature), "batteryMv": self.battery_mv, "hwType": self.hw_type,
            "wakeupReason": 0, "capabilities": 0x40, "modecfgjson": "", "isexternal": False, "apip": "0.0.0.0",
            "rotate": 0, "lut": 0, "invert": 0, "updatecount": self.update_count, "updatelast": int(self.update_last),
            "ch": 11, "ver": 0x1D,
            # Not in the AP's record: the simulator's LED state, for tests and the demo to observe.
            "led": f"{led['colour']}/{led['pattern']}" if led else "",
        }


class TagField:
    """The simulated tags and their check-in clock. Thread-safe; ``tick()`` runs due check-ins and returns
    the changed records (to broadcast)."""

    def __init__(self, *, interval_s: float = 40.0, failure_rate: float = 0.0, retry_after_failure_s: float | None
                 = None, seed: int | None = None, clock: Callable[[], float] = time.time,
                 failure_mode: str = "drop", pending_ttl_s: float = 86_400.0) -> None:
        if not 0.0 <= failure_rate < 1.0:
            raise ValueError("failure_rate must be within [0, 1)")
        if failure_mode not in FAILURE_MODES:
            raise ValueError(f"failure_mode must be one of {', '.join(FAILURE_MODES)}")
        self.failure_mode = failure_mode
        self.pending_ttl_s = pending_ttl_s
        self.interval_s = interval_s
        self.failure_rate = failure_rate
        self.retry_after_failure_s = retry_after_failure_s if retry_after_failure_s is not None else interval_s / 4
        self.rng = random.Random(seed)
        self.clock = clock
        self.lock = threading.RLock()
        self.tags: dict[str, SimTag] = {}
        self._due: list[tuple[float, str]] = []  # heap of (next_checkin, mac); stale entries are skipped
        self.log: list[str] = []  # the last 1000 lines; ``log_count`` counts every line ever logged
        self.errors: list[str] = []  # what the AP sends as websocket ``errMsg`` (last 1000; ``error_count``)
        self.log_count = 0
        self.error_count = 0
        self.counts = {"checkins": 0, "transfers": 0, "failed": 0, "skipped": 0, "uploads": 0}

    def add(self, mac: str, **kw: Any) -> SimTag:
        """Add a label that first checks in at a random phase of its interval."""
        with self.lock:
            now = self.clock()
            tag = SimTag(mac=mac, **kw)
            tag.last_seen = now
            tag.next_checkin = now + self.rng.uniform(0.0, self.interval_s)
            self.tags[mac] = tag
            heapq.heappush(self._due, (tag.next_checkin, mac))
            return tag

    def get(self, mac: str) -> SimTag | None:
        with self.lock:
            return self.tags.get(mac)

    # -- what the AP's web API does ---------------------------------------------------------------
    def queue_image(self, mac: str, image_hash: str) -> bool:
        """Queue an image; False when skipped (identical to the pending or, with nothing pending, the current)."""
        with self.lock:
            tag = self.tags[mac]
            self.counts["uploads"] += 1
            if image_hash == tag.pending_hash or (tag.pending_hash is None and image_hash == tag.hash):
                self.counts["skipped"] += 1
                self._log(f"{mac} new image is the same as current or pending; not updating tag")
                return False
            tag.pending_hash = image_hash
            tag.pending_since = self.clock()
            return True

    def queue_led(self, mac: str, pattern_hex: str | None) -> None:
        """Queue an LED command (``None`` = stop); raises ``ValueError`` for a bad pattern."""
        led = decode_led_pattern(pattern_hex) if pattern_hex else None
        with self.lock:
            self.tags[mac].pending_led = {"stop": True} if led is None else led

    def clear(self, mac: str) -> None:
        with self.lock:
            tag = self.tags[mac]
            tag.pending_hash, tag.pending_led = None, None

    def delete(self, mac: str) -> None:
        with self.lock:
            self.tags.pop(mac, None)

    # -- the clock ----------------------------------------------------------------------------------
    def tick(self, include_idle: bool = False) -> list[dict[str, Any]]:
        """Run every due check-in; return the records of tags whose state changed (all that checked in with
        ``include_idle``)."""
        changed = []
        with self.lock:
            now = self.clock()
            while self._due and self._due[0][0] <= now:
                due_at, mac = heapq.heappop(self._due)
                tag = self.tags.get(mac)
                if tag is None or tag.next_checkin != due_at:
                    continue  # deleted, or rescheduled (its newer entry is in the heap)
                if not tag.online:  # an offline label stays silent; look again one interval later
                    tag.next_checkin = now + self.interval_s
                elif self._checkin(tag, now) or include_idle:
                    changed.append(tag.record(now))
                heapq.heappush(self._due, (tag.next_checkin, mac))
        return changed

    def _checkin(self, tag: SimTag, now: float) -> bool:
        self.counts["checkins"] += 1
        tag.last_seen = now
        tag.next_checkin = now + self.interval_s
        changed = False
        if tag.pending_led is not None:
            led, tag.pending_led = tag.pending_led, None
            tag.led = None if led.get("stop") else {**led, "until": now + float(led["duration_s"])}
            changed = True
        if tag.pending_hash is not None and self.failure_mode == "hardware" \
                and now - tag.pending_since >= self.pending_ttl_s:
            tag.pending_hash = None  # the AP's pending entry ran out of attempts: XTO, queue dropped
            self.errors.append(f"< {tag.mac[-12:]} xfer timeout")
            self.error_count += 1
            self._log(f"{tag.mac} xfer timeout; pending image dropped")
            changed = True
        if tag.pending_hash is not None:
            changed = True
            self.counts["transfers"] += 1
            if self.rng.random() < self.failure_rate:
                self.counts["failed"] += 1
                tag.transfers_failed += 1
                if self.failure_mode == "hardware":  # queue kept; the tag sleeps its normal interval
                    self._log(f"{tag.mac} transfer failed; pending kept for the next check-in")
                else:
                    tag.pending_hash, tag.pending_led = None, None  # the AP drops the label's queue on a timeout
                    tag.next_checkin = now + self.retry_after_failure_s
                    self._log(f"{tag.mac} transfer timeout; queue dropped")
            else:
                tag.hash, tag.pending_hash = tag.pending_hash, None
                tag.update_count += 1
                tag.update_last = now
                tag.battery_mv = max(2000, tag.battery_mv - 1)
                tag.history.append(tag.hash)
                del tag.history[:-20]
                self._log(f"{tag.mac} update sent successfully")
        return changed

    def _log(self, line: str) -> None:
        self.log.append(line)
        self.log_count += 1
        del self.log[:-1000]
        del self.errors[:-1000]
