"""The wire format of every message between store and cloud (DESIGN.md §5).

Envelope fields travel in the JSON payload, not only as MQTT 5 properties, because brokers and 3.1.1 bridges
drop properties. ``msg_id`` is a ULID fixed at enqueue time, so every retry carries the same id and the cloud
can deduplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

ENVELOPE_VERSION = 1
TOPIC_ROOT = "stores"


def new_msg_id() -> str:
    """A new ULID: sortable by creation time, unique without coordination."""
    return str(ULID())


def dumps(obj: Any) -> str:
    """Compact JSON used on the wire and in the store."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One up message: ``body`` is the payload of ``stream``; the rest identifies and orders it.

    Example:
        >>> env = Envelope(msg_id=new_msg_id(), store_id="s1", boot_id="b", stream="telemetry/health",
        ...                seq=1, event_ts=0.0, body={"cpu": 0.1})
        >>> Envelope.from_json(env.to_json()) == env
        True
    """

    msg_id: str
    store_id: str
    boot_id: str
    stream: str
    seq: int
    event_ts: float
    body: Any
    expires_at: float | None = None
    historical: bool = False
    schema: str | None = None
    v: int = ENVELOPE_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The payload as a dict (field names as on the wire)."""
        return {
            "v": self.v, "msg_id": self.msg_id, "store_id": self.store_id, "boot_id": self.boot_id,
            "stream": self.stream, "seq": self.seq, "event_ts": self.event_ts,
            "expires_at": self.expires_at, "historical": self.historical, "schema": self.schema,
            "body": self.body,
        }

    def to_json(self) -> str:
        """The payload as compact JSON."""
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, payload: bytes | str) -> Envelope:
        """Parse a payload; raises ``ValueError`` with the reason when it is not a valid envelope."""
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("envelope must be a JSON object")
        missing = [k for k in ("msg_id", "store_id", "boot_id", "stream", "seq", "event_ts", "body")
                   if k not in data]
        if missing:
            raise ValueError(f"envelope lacks {', '.join(missing)}")
        if not isinstance(data["seq"], int) or isinstance(data["seq"], bool) or data["seq"] < 0:
            raise ValueError("seq must be a non-negative integer")
        known = {"v", "msg_id", "store_id", "boot_id", "stream", "seq", "event_ts", "expires_at",
                 "historical", "schema", "body"}
        try:
            return cls(
                msg_id=str(data["msg_id"]), store_id=str(data["store_id"]), boot_id=str(data["boot_id"]),
                stream=str(data["stream"]), seq=data["seq"], event_ts=float(data["event_ts"]),
                body=data["body"], expires_at=data.get("expires_at"),
                historical=bool(data.get("historical", False)), schema=data.get("schema"),
                v=int(data.get("v", ENVELOPE_VERSION)),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (TypeError, OverflowError) as exc:  # e.g. "event_ts": null — still just a bad envelope
            raise ValueError(f"mistyped envelope field: {exc}") from exc


class Topics:
    """Topic names of one store (DESIGN.md §5). ``up`` is edge→cloud, ``down`` is cloud→edge."""

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        self.root = f"{TOPIC_ROOT}/{store_id}"

    @property
    def state(self) -> str:
        return f"{self.root}/up/state"

    def up(self, stream: str) -> str:
        """Topic of an outbox stream, e.g. ``telemetry/health`` → ``stores/s1/up/telemetry/health``."""
        return f"{self.root}/up/{stream}"

    @property
    def cmd_result(self) -> str:
        return f"{self.root}/up/cmd-result"

    def cmd(self, kind: str) -> str:
        return f"{self.root}/down/cmd/{kind}"

    @property
    def cmd_filter(self) -> str:
        return f"{self.root}/down/cmd/+"

    @property
    def desired(self) -> str:
        return f"{self.root}/down/desired"

    @property
    def ack(self) -> str:
        return f"{self.root}/down/ack"


def parse_up_topic(topic: str) -> tuple[str, str] | None:
    """``stores/{sid}/up/{stream}`` → ``(sid, stream)``; None for anything else."""
    parts = topic.split("/", 3)
    if len(parts) != 4 or parts[0] != TOPIC_ROOT or parts[2] != "up" or not parts[1] or not parts[3]:
        return None
    return parts[1], parts[3]
