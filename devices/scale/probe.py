"""Find out which protocol a serial port speaks: open it with each protocol's line settings, send that
protocol's weight request and see whether a frame of that protocol comes back.

Each protocol's parser accepts only its own frames, so an answer in another protocol (a Toledo 8217 scale
answering the ``W`` of the SCP-01 probe) is garbage to it, not a false positive.
"""

from __future__ import annotations

import time
from typing import Any

import serial

from devices.scale import PROTOCOLS
from devices.scale.link import Opener, ScaleLink

#: Probe order: single-byte ``W`` first, then ``W CR``, then MT-SICS ``SI CR LF``.
PROBE_ORDER = ("toledo8217", "scp01", "mt-sics")


def probe_protocol(port: str, protocol: str, *, timeout_s: float = 0.5, baudrate: int | None = None,
                   attempts: int = 2, opener: Opener = serial.Serial) -> dict[str, Any]:
    """Try one protocol; ``{"answered", "reading", "reply", "frames", "garbage_bytes", "ms", "error"}``.

    A second attempt is made when the first gets an error reply (an MT-SICS scale answers the
    leftovers of earlier probes with ``ES`` first).
    """
    proto = PROTOCOLS[protocol]
    link = ScaleLink(port, proto, baudrate=baudrate, opener=opener)
    result: dict[str, Any] = {"answered": False, "reading": None, "reply": None, "error": None}
    t0 = time.monotonic()
    try:
        link.open()
        for _ in range(attempts):
            reply = link.transact("weight", timeout_s)
            if reply is None:
                break
            if reply is not None:
                result["answered"] = True
                result["reply"] = reply.code or reply.kind
                if reply.reading is not None:
                    result["reading"] = reply.reading.to_dict()
                if reply.kind != "error":
                    break
    except (OSError, serial.SerialException, ValueError) as exc:
        result["error"] = str(exc)
    finally:
        link.close()
    result.update(frames=link.counters.frames, garbage_bytes=link.counters.garbage_bytes,
                  ms=round((time.monotonic() - t0) * 1000, 1))
    return result


def probe(port: str, *, protocols: tuple[str, ...] = PROBE_ORDER, timeout_s: float = 0.5,
          baudrate: int | None = None, opener: Opener = serial.Serial) -> dict[str, Any]:
    """Try every protocol; ``detected`` is the first whose answer was a reading (else one that answered)."""
    results = {p: probe_protocol(port, p, timeout_s=timeout_s, baudrate=baudrate, opener=opener)
               for p in protocols}
    with_reading = [p for p, r in results.items() if r["reading"] is not None]
    answered = [p for p, r in results.items() if r["answered"]]
    detected = (with_reading or answered or [None])[0]
    return {"port": port, "detected": detected, "protocols": results}
