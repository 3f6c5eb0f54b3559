"""Staff alerts for watchlist and VIP matches: local bus and/or webhook, off the pipeline's thread.

:meth:`AlertDispatcher.send` only puts the alert on a queue; one background thread publishes it on the local bus
(``alerts/identity``) and POSTs it to the webhook with a short timeout, so a slow or dead receiver never delays
face decisions. Alerts always say "possible match" with the similarity score and ask a person to confirm.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any, Protocol

log = logging.getLogger(__name__)

ALERT_SUFFIX = "alerts/identity"
DECISION_SUFFIX = "alerts/identity/decision"


class Publisher(Protocol):
    """What the dispatcher needs of ``sync.local_bus.LocalBus``."""

    def publish(self, suffix: str, payload: dict[str, Any], qos: int = 1, retain: bool = False) -> None: ...


def alert_message(gallery: str, kind: str | None, score: float) -> str:
    """The human wording of an alert: never a certainty, always the score and a request to confirm."""
    what = f"watchlist ({kind})" if gallery == "watchlist" else gallery.upper() if gallery == "vip" else gallery
    return (f"Possible match with {what} entry, similarity {score:.2f}. "
            "Please check in person and confirm or dismiss; do not act on this alone.")


class AlertDispatcher:
    """Delivers alert payloads to the local bus and a webhook from one daemon thread."""

    def __init__(self, *, bus: Publisher | None, webhook_url: str = "", webhook_timeout_s: float = 2.0,
                 max_queued: int = 1000) -> None:
        self.bus = bus
        self.webhook_url = webhook_url
        self.webhook_timeout_s = webhook_timeout_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued)
        self.counts = {"sent": 0, "bus": 0, "webhook_ok": 0, "webhook_failed": 0, "dropped": 0}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for delivery; never blocks (a full queue drops the alert and counts it)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            self.counts["dropped"] += 1
            log.warning("identity alert queue full: alert dropped", extra={"alert_id": payload.get("alert_id")})

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="identity-alerts", daemon=True)
                self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what is queued (up to ``timeout_s``) and stop the thread."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            self.counts["sent"] += 1
            if self.bus is not None:
                self.bus.publish(ALERT_SUFFIX, payload)
                self.counts["bus"] += 1
            if self.webhook_url:
                self._post(payload)

    def _post(self, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(self.webhook_url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.webhook_timeout_s) as response:  # noqa: S310
                response.read()
            self.counts["webhook_ok"] += 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.counts["webhook_failed"] += 1
            log.warning("identity alert webhook failed", extra={"error": str(exc)})
