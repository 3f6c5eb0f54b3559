"""agent/daemon/supervisor.py with small real components (threads, events, clocks — nothing mocked).

Proves: a crashing component is restarted with exponentially growing delays; after ``max_failures`` within the
window it is marked ``failed`` (and still retried every ``backoff_max_s``) while a healthy neighbour keeps
running undisturbed; ``stop()`` stops everything within its timeout, and returns False — without hanging — when
a component ignores the stop; ``restart(name)`` restarts exactly one component with a fresh instance and clears
its failure record; a component that returns unasked counts as a crash; a broken ``status()`` does not break
the supervisor's status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from agent.daemon.supervisor import Supervisor, SupervisorPolicy
from tests.support.agent_stack import wait_until

pytestmark = [pytest.mark.timeout(30)]


class Healthy:
    """Runs until asked to stop, counting ticks; each instance is numbered."""

    instances = 0

    def __init__(self, name: str = "healthy") -> None:
        Healthy.instances += 1
        self.name = name
        self.serial = Healthy.instances
        self.ticks = 0
        self.stopped = threading.Event()

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.01):
            self.ticks += 1
        self.stopped.set()

    def status(self) -> dict[str, int]:
        return {"ticks": self.ticks, "serial": self.serial}


class Crasher:
    """Records when each instance started, then raises (unless ``heal`` is set, then behaves)."""

    def __init__(self, starts: list[float], heal: threading.Event | None = None) -> None:
        self.name = "crasher"
        self.starts = starts
        self.heal = heal or threading.Event()

    def run(self, stop: threading.Event) -> None:
        self.starts.append(time.monotonic())
        if self.heal.is_set():
            stop.wait()
            return
        raise RuntimeError(f"boom #{len(self.starts)}")


class Stubborn:
    """Ignores the stop event; only ``release`` ends it (so the test can clean up)."""

    name = "stubborn"

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def run(self, stop: threading.Event) -> None:
        self.release.wait(30)


def _state(sup: Supervisor, name: str) -> str:
    return next(c["state"] for c in sup.status_brief() if c["name"] == name)


def _entry(sup: Supervisor, name: str) -> dict:
    return next(c for c in sup.status() if c["name"] == name)


@pytest.fixture
def supervisors() -> Callable[..., Supervisor]:
    made: list[Supervisor] = []

    def make(**policy: float) -> Supervisor:
        sup = Supervisor(SupervisorPolicy(**policy))
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop(2.0)


def test_crashing_component_is_restarted_with_exponential_backoff(supervisors) -> None:
    starts: list[float] = []
    sup = supervisors(backoff_initial_s=0.05, backoff_max_s=5.0, max_failures=20, failure_window_s=60)
    sup.add("crasher", lambda: Crasher(starts))
    sup.start()
    assert wait_until(lambda: len(starts) >= 6, timeout_s=5), f"only {len(starts)} starts"
    gaps = [b - a for a, b in zip(starts, starts[1:])][:5]
    # expected: 0.05, 0.1, 0.2, 0.4, 0.8 s (plus scheduling noise)
    for i, gap in enumerate(gaps):
        expected = 0.05 * 2**i
        assert expected * 0.9 <= gap <= expected + 0.25, f"gap {i} = {gap:.3f} s, expected ~{expected} s: {gaps}"
    assert gaps[-1] > 2 * gaps[0], f"backoff does not grow: {gaps}"
    entry = _entry(sup, "crasher")
    assert entry["restarts"] >= 5 and entry["last_error"].startswith("RuntimeError: boom")
    assert entry["last_error_at"] is not None
    assert entry["state"] in ("backoff", "running")
    print("restart gaps (s):", [round(g, 3) for g in gaps])


def test_backoff_is_capped_at_backoff_max(supervisors) -> None:
    starts: list[float] = []
    sup = supervisors(backoff_initial_s=0.05, backoff_max_s=0.1, max_failures=50, failure_window_s=60)
    sup.add("crasher", lambda: Crasher(starts))
    sup.start()
    assert wait_until(lambda: len(starts) >= 6, timeout_s=5)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(g <= 0.1 + 0.2 for g in gaps), gaps
    assert all(g >= 0.09 for g in gaps[1:]), gaps


def test_component_failing_too_often_is_marked_failed_while_neighbour_keeps_running(supervisors) -> None:
    starts: list[float] = []
    sup = supervisors(backoff_initial_s=0.02, backoff_max_s=0.6, max_failures=3, failure_window_s=30)
    sup.add("crasher", lambda: Crasher(starts))
    sup.add("healthy", Healthy)
    sup.start()
    assert wait_until(lambda: _state(sup, "crasher") == "failed", timeout_s=5), sup.status_brief()
    failed_at = time.monotonic()
    assert len(starts) == 3
    healthy = sup.component("healthy")
    ticks = healthy.ticks
    time.sleep(0.3)
    assert _state(sup, "healthy") == "running"
    assert sup.component("healthy") is healthy and healthy.ticks > ticks, "the healthy neighbour was disturbed"
    assert _entry(sup, "healthy")["restarts"] == 0
    assert _entry(sup, "healthy")["detail"]["ticks"] > 0
    # A failed component is still retried, but only every backoff_max_s (a device may come back later).
    assert wait_until(lambda: len(starts) >= 4, timeout_s=3)
    retry_gap = starts[3] - starts[2]
    assert 0.55 <= retry_gap <= 1.2, f"failed component retried after {retry_gap:.2f} s, expected ~0.6 s"
    assert time.monotonic() - failed_at < 3
    assert wait_until(lambda: _state(sup, "crasher") == "failed", timeout_s=2)


def test_stop_stops_every_component_within_the_timeout(supervisors) -> None:
    sup = supervisors()
    sup.add("a", lambda: Healthy("a"))
    sup.add("b", lambda: Healthy("b"))
    sup.start()
    assert wait_until(lambda: sup.component("a") is not None and sup.component("b") is not None, timeout_s=2)
    a, b = sup.component("a"), sup.component("b")
    t0 = time.monotonic()
    assert sup.stop(2.0) is True
    took = time.monotonic() - t0
    assert took < 0.5, f"stop took {took:.2f} s"
    assert a.stopped.is_set() and b.stopped.is_set()
    assert {c["state"] for c in sup.status_brief()} == {"stopped"}


def test_component_ignoring_stop_makes_stop_return_false_without_hanging(supervisors) -> None:
    release = threading.Event()
    sup = supervisors()
    sup.add("stubborn", lambda: Stubborn(release))
    sup.add("healthy", Healthy)
    sup.start()
    assert wait_until(lambda: sup.component("healthy") is not None, timeout_s=2)
    healthy = sup.component("healthy")
    try:
        t0 = time.monotonic()
        assert sup.stop(0.5) is False
        took = time.monotonic() - t0
        assert 0.45 <= took <= 1.0, f"stop returned after {took:.2f} s with a 0.5 s timeout"
        assert healthy.stopped.is_set(), "the well-behaved component was not stopped"
        assert _state(sup, "healthy") == "stopped"
        assert _state(sup, "stubborn") == "running"
    finally:
        release.set()
    assert wait_until(lambda: _state(sup, "stubborn") == "stopped", timeout_s=2)


def test_restart_restarts_one_component_with_a_fresh_instance(supervisors) -> None:
    sup = supervisors()
    sup.add("a", lambda: Healthy("a"))
    sup.add("b", lambda: Healthy("b"))
    sup.start()
    assert wait_until(lambda: sup.component("a") is not None and sup.component("b") is not None, timeout_s=2)
    a1, b1 = sup.component("a"), sup.component("b")
    sup.restart("a")
    assert a1.stopped.is_set(), "the old instance was not stopped"
    assert wait_until(lambda: sup.component("a") is not a1 and _state(sup, "a") == "running", timeout_s=2)
    a2 = sup.component("a")
    assert a2.serial > a1.serial
    ticks = a2.ticks
    assert wait_until(lambda: a2.ticks > ticks, timeout_s=2), "the new instance does not run"
    assert sup.component("b") is b1 and not b1.stopped.is_set(), "restart touched another component"


def test_restart_revives_a_failed_component_at_once(supervisors) -> None:
    starts: list[float] = []
    heal = threading.Event()
    sup = supervisors(backoff_initial_s=0.01, backoff_max_s=10.0, max_failures=2, failure_window_s=30)
    sup.add("crasher", lambda: Crasher(starts, heal))
    sup.start()
    assert wait_until(lambda: _state(sup, "crasher") == "failed", timeout_s=3)
    heal.set()  # e.g. the operator fixed the camera; do not wait 10 s for the next retry
    t0 = time.monotonic()
    sup.restart("crasher")
    assert wait_until(lambda: len(starts) == 3, timeout_s=2)
    assert time.monotonic() - t0 < 1.0
    time.sleep(0.1)
    assert _state(sup, "crasher") == "running"


def test_component_returning_unasked_counts_as_a_crash(supervisors) -> None:
    runs: list[float] = []

    class Quitter:
        name = "quitter"

        def run(self, stop: threading.Event) -> None:
            runs.append(time.monotonic())

    sup = supervisors(backoff_initial_s=0.02, backoff_max_s=0.05, max_failures=100, failure_window_s=30)
    sup.add("quitter", Quitter)
    sup.start()
    assert wait_until(lambda: len(runs) >= 3, timeout_s=3)
    assert "returned without being asked to stop" in _entry(sup, "quitter")["last_error"]


def test_broken_status_of_a_component_does_not_break_supervisor_status(supervisors) -> None:
    class BadStatus(Healthy):
        def status(self) -> dict[str, int]:
            raise ValueError("status bug")

    sup = supervisors()
    sup.add("bad", BadStatus)
    sup.start()
    assert wait_until(lambda: sup.component("bad") is not None, timeout_s=2)
    entry = _entry(sup, "bad")
    assert entry["state"] == "running" and "status bug" in entry["detail"]["error"]


def test_adding_a_name_twice_is_refused(supervisors) -> None:
    sup = supervisors()
    sup.add("a", Healthy)
    with pytest.raises(ValueError, match="already registered"):
        sup.add("a", Healthy)
