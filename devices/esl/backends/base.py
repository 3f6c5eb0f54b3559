"""The shelf-label gateway interface: what the agent needs from any ESL access point or vendor server.

Every gateway family — OpenEPaperLink access points, Hanshow ESL-Working, SoluM AIMS, SES VUSION, Pricer —
shares one model: labels identified by an id/MAC, content pushed to a label (an image, or article data that the
vendor renders), LED flashes ``{colour, pattern, duration}``, and *asynchronous* status: the gateway accepts a
push now and the label shows it when it next wakes (OpenEPaperLink: about every 40 s).

Adding a vendor is one module implementing :class:`GatewayBackend`:

- ``push(label_id, content)`` sends what the label should show and returns a :class:`PushReceipt` whose
  ``token`` is what the label's status will report once the content is on the glass
  (:attr:`LabelReport.shown_token`). Return ``token=None`` when the gateway reports nothing comparable; the
  agent then confirms by ``update_count`` advancing. Raise :class:`GatewayError` when the gateway refused or
  did not answer — the agent keeps the content and retries later, it never assumes delivery.
- ``flash(label_id, flash)`` / ``stop_flash(label_id)`` drive the LED.
- ``labels()`` returns the status of every label the gateway knows (:class:`LabelReport`).
- ``events(stop)`` yields :class:`GatewayEvent` as the gateway reports them (a websocket, a long poll, or
  a timed ``labels()`` diff); it returns when ``stop`` is set or the stream breaks (the caller reconnects).

Backends are plain classes without threads of their own; they never import ``agent``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

#: LED colours every backend accepts (vendors map them to their palette).
LED_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "cyan", "magenta", "white")
#: LED patterns: a steady blink, a fast blink, or a double flash with a pause.
LED_PATTERNS: tuple[str, ...] = ("blink", "fast", "double")


class GatewayError(Exception):
    """The gateway refused a request or did not answer. ``reason`` is a stable word:
    ``unreachable`` (connection refused / timeout), ``busy`` (409/429: come back later), ``unknown_label``,
    ``rejected`` (other 4xx), ``server`` (5xx), ``protocol`` (an answer we cannot read)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class LabelContent:
    """What one label should show. Image backends send ``image`` (already in the label's palette); article
    backends send ``article`` and ``template``. ``content_hash`` is the agent's identity of this content."""

    content_hash: str
    image: Any = None  # PIL.Image.Image
    article: dict[str, Any] | None = None
    template: str | None = None


@dataclass(frozen=True, slots=True)
class LedFlash:
    """One LED request: ``colour`` from :data:`LED_COLOURS`, ``pattern`` from :data:`LED_PATTERNS`."""

    colour: str = "green"
    pattern: str = "blink"
    duration_s: float = 30.0

    def __post_init__(self) -> None:
        if self.colour not in LED_COLOURS:
            raise ValueError(f"unknown LED colour {self.colour!r}; use one of {', '.join(LED_COLOURS)}")
        if self.pattern not in LED_PATTERNS:
            raise ValueError(f"unknown LED pattern {self.pattern!r}; use one of {', '.join(LED_PATTERNS)}")
        if not 0 < self.duration_s <= 3600:
            raise ValueError("LED duration must be within (0, 3600] seconds")


@dataclass(frozen=True, slots=True)
class PushReceipt:
    """The gateway accepted a push. ``token``: what ``LabelReport.shown_token`` will say once shown (None when
    unknown); ``skipped``: the gateway said the label already shows exactly this."""

    label_id: str
    token: str | None
    accepted_at: float
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class LabelReport:
    """The gateway's view of one label. Times are epoch seconds; ``None`` = not reported."""

    label_id: str
    last_seen: float | None
    shown_token: str | None
    pending: bool
    update_count: int = 0
    next_checkin: float | None = None
    temperature_c: float | None = None
    battery_mv: int | None = None
    rssi: int | None = None
    hw_type: int | None = None
    led: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


EventKind = Literal["label", "error", "log"]


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """Something the gateway reported on its own: a label's new status (``report``), an error or a log line."""

    kind: EventKind
    report: LabelReport | None = None
    message: str = ""


class GatewayBackend(ABC):
    """One gateway. Methods are blocking and thread-safe enough to be called from one component thread plus
    occasional command threads (each call is an independent HTTP request)."""

    name: str = "abstract"

    @abstractmethod
    def push(self, label_id: str, content: LabelContent) -> PushReceipt:
        """Queue ``content`` for ``label_id`` on the gateway (raises :class:`GatewayError`)."""

    @abstractmethod
    def flash(self, label_id: str, flash: LedFlash) -> None:
        """Start an LED flash on the label (raises :class:`GatewayError`)."""

    @abstractmethod
    def stop_flash(self, label_id: str) -> None:
        """Stop the label's LED (raises :class:`GatewayError`)."""

    @abstractmethod
    def labels(self) -> list[LabelReport]:
        """Status of every label the gateway knows (raises :class:`GatewayError`)."""

    def probe(self) -> str:
        """Check the gateway answers (``store-agent doctor``); returns a short description of what answered.
        The default reads :meth:`labels`; backends with a cheaper status endpoint override it (raises
        :class:`GatewayError`)."""
        return f"{len(self.labels())} labels known"

    def events(self, stop: threading.Event) -> Iterator[GatewayEvent]:
        """Events as the gateway reports them; the default polls :meth:`labels` and yields changes."""
        seen: dict[str, LabelReport] = {}
        while not stop.is_set():
            for report in self.labels():
                if seen.get(report.label_id) != report:
                    seen[report.label_id] = report
                    yield GatewayEvent("label", report)
            stop.wait(2.0)

    def close(self) -> None:
        """Release connections (default: nothing to release)."""
