"""Logging setup: one line per record, structured ``extra`` fields appended as ``key=value``."""

from __future__ import annotations

import logging
import sys

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``2026-11-22T04:41:28 INFO sync.client connected to broker broker=127.0.0.1:1883``."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD)
        return f"{base} {extras}" if extras else base


def setup_logging(level: str = "INFO", stream=sys.stderr) -> None:
    """Configure the root logger once (the CLI calls it; libraries never do)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
