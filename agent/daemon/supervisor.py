"""Run components in threads; restart a component that raises, with exponential backoff.

A component is anything with ``name`` and ``run(stop: threading.Event)``: ``run`` blocks until ``stop`` is
set, and raises on failure. ``max_failures`` failures within ``failure_window_s`` mark it ``failed``; a failed
component keeps being retried every ``backoff_max_s`` (a camera that comes back after an hour recovers), and
never takes down the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

STARTING, RUNNING, BACKOFF, FAILED, STOPPED = "starting", "running", "backoff", "failed", "stopped"


class Component(Protocol):
    """What the supervisor runs."""

    name: str

    def run(self, stop: threading.Event) -> None: ...


@dataclass(slots=True)
class SupervisorPolicy:
    """Restart policy (mirrors ``[supervisor]`` in the config)."""

    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_failures: int = 5
    failure_window_s: float = 300.0
    stop_timeout_s: float = 8.0


@dataclass(slots=True)
class _Slot:
    name: str
    factory: Callable[[], Component]
    state: str = STARTING
    restarts: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    started_at: float | None = None
    failures: deque[float] = field(default_factory=deque)
    component: Component | None = None
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)


class Supervisor:
    """Starts, watches and stops components; ``status()`` is safe from any thread."""

    def __init__(self, policy: SupervisorPolicy | None = None) -> None:
        self.policy = policy or SupervisorPolicy()
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def add(self, name: str, factory: Callable[[], Component]) -> None:
        """Register a component; ``factory`` builds a fresh instance for each (re)start."""
        if name in self._slots:
            raise ValueError(f"component {name!r} already registered")
        self._slots[name] = _Slot(name, factory)

    def start(self) -> None:
        """Start every registered component that was never started."""
        for slot in self._slots.values():
            if slot.thread is None:
                self._start_slot(slot)

    def start_one(self, name: str) -> None:
        """Start one registered component (no-op while it runs)."""
        slot = self._slots[name]
        if slot.thread is None or not slot.thread.is_alive():
            self._start_slot(slot)

    def _start_slot(self, slot: _Slot) -> None:
        slot.stop = threading.Event()
        slot.thread = threading.Thread(target=self._watch, args=(slot,), name=f"component-{slot.name}", daemon=True)
        slot.thread.start()

    def restart(self, name: str) -> None:
        """Stop one component and start it again (e.g. after its config changed)."""
        slot = self._slots[name]
        self._stop_slot(slot, self.policy.stop_timeout_s)
        slot.failures.clear()
        self._start_slot(slot)

    def stop_one(self, name: str, timeout_s: float | None = None) -> bool:
        """Stop one component and leave it stopped (e.g. drain a camera's last aggregates before the rest)."""
        return self._stop_slot(self._slots[name], self.policy.stop_timeout_s if timeout_s is None else timeout_s)

    def names(self) -> list[str]:
        """Registered component names, in start order."""
        return list(self._slots)

    def stop(self, timeout_s: float | None = None) -> bool:
        """Signal every component, wait up to ``timeout_s`` in total; True if all stopped in time."""
        timeout_s = self.policy.stop_timeout_s if timeout_s is None else timeout_s
        for slot in self._slots.values():
            slot.stop.set()
        deadline = time.monotonic() + timeout_s
        ok = True
        for slot in self._slots.values():
            ok &= self._join(slot, deadline)
        return ok

    def _stop_slot(self, slot: _Slot, timeout_s: float) -> bool:
        slot.stop.set()
        return self._join(slot, time.monotonic() + timeout_s)

    @staticmethod
    def _join(slot: _Slot, deadline: float) -> bool:
        if slot.thread is None:
            return True
        slot.thread.join(max(0.0, deadline - time.monotonic()))
        if slot.thread.is_alive():
            log.error("component did not stop in time", extra={"component": slot.name})
            return False
        return True

    def component(self, name: str) -> Component | None:
        """The live instance of a component (None between restarts)."""
        return self._slots[name].component if name in self._slots else None

    def status(self) -> list[dict[str, Any]]:
        """Per component: name, state, restarts, last error and when, uptime, and its own status if any."""
        out = []
        with self._lock:
            for slot in self._slots.values():
                entry: dict[str, Any] = {
                    "name": slot.name, "state": slot.state, "restarts": slot.restarts,
                    "last_error": slot.last_error, "last_error_at": slot.last_error_at,
                    "uptime_s": round(time.time() - slot.started_at, 1) if slot.started_at and slot.state == RUNNING else 0.0,
                }
                status_fn = getattr(slot.component, "status", None)
                if callable(status_fn):
                    try:
                        entry["detail"] = status_fn()
                    except Exception as exc:  # a status bug must not break `store-agent status`
                        entry["detail"] = {"error": repr(exc)}
                out.append(entry)
        return out

    def status_brief(self) -> list[dict[str, Any]]:
        """Name and state of each component, without asking the components (cheap)."""
        with self._lock:
            return [{"name": slot.name, "state": slot.state} for slot in self._slots.values()]

    def _watch(self, slot: _Slot) -> None:
        delay = self.policy.backoff_initial_s
        while not slot.stop.is_set():
            started = time.time()
            self._set(slot, state=RUNNING, started_at=started)
            try:
                slot.component = slot.factory()
                slot.component.run(slot.stop)
                if slot.stop.is_set():
                    break
                raise RuntimeError("component returned without being asked to stop")
            except Exception as exc:
                now = time.time()
                if now - started > self.policy.failure_window_s:
                    delay = self.policy.backoff_initial_s  # it had been healthy: start the backoff afresh
                slot.failures.append(now)
                while slot.failures and slot.failures[0] < now - self.policy.failure_window_s:
                    slot.failures.popleft()
                failed = len(slot.failures) >= self.policy.max_failures
                wait = self.policy.backoff_max_s if failed else delay
                log.error("component crashed", exc_info=True,
                          extra={"component": slot.name, "restart_in_s": round(wait, 2), "failed": failed})
                self._set(slot, state=FAILED if failed else BACKOFF, last_error=f"{type(exc).__name__}: {exc}",
                          last_error_at=now, restarts=slot.restarts + 1)
                delay = min(delay * 2, self.policy.backoff_max_s)
                if slot.stop.wait(wait):
                    break
        self._set(slot, state=STOPPED)

    def _set(self, slot: _Slot, **fields: Any) -> None:
        with self._lock:
            for key, value in fields.items():
                setattr(slot, key, value)
