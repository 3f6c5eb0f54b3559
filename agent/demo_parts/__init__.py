"""Pluggable parts of ``store-agent demo``: the scale, the shelf labels, face identity.

Each capability adds one part without touching the demo's core. A part is driven in four steps:

1. ``prepare(ctx)`` before the agent starts: install media, start simulators, return TOML text that is
   appended to the demo's agent config (whole tables only, e.g. ``[[scales]]``);
2. ``exercise(ctx)`` once the agent and the cloud are connected: drive simulators, send signed commands
   through ``ctx.send_command``;
3. ``summary(ctx)`` after the run: a JSON-able dict, reported under the part's ``name`` in the demo summary
   (problems go to ``ctx.errors``, never raise);
4. ``close()`` always, last.

Register a part by adding its factory to :data:`PART_FACTORIES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agent.daemon.agent import Agent


@dataclass
class DemoContext:
    """What a demo part may use. ``agent`` is set once the agent runs (``None`` in ``prepare``)."""

    workdir: Path
    mirror: Path | None
    broker_url: str
    cloud_db: Path
    say: Callable[[str], None]
    send_command: Callable[[str, dict[str, Any]], dict[str, Any]]
    """``send_command(kind, body)`` signs a command as the cloud, sends it and returns its result
    (``{"status": "applied" | "rejected" | "no_result", ...}``)."""
    errors: list[str] = field(default_factory=list)
    agent: Agent | None = None
    camera: bool = True
    """False with ``--no-camera``: parts that need camera pipelines (faces) stand aside."""


class DemoPart(Protocol):
    """One capability shown by the demo (see the module doc for the order of calls)."""

    name: str

    def prepare(self, ctx: DemoContext) -> str: ...

    def exercise(self, ctx: DemoContext) -> None: ...

    def summary(self, ctx: DemoContext) -> dict[str, Any]: ...

    def close(self) -> None: ...


def wait_until(predicate: Callable[[], Any], timeout_s: float, step_s: float = 0.05) -> bool:
    """Poll ``predicate`` every ``step_s`` until it is true (True) or ``timeout_s`` passed (its last value)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


#: Factories of the demo's parts, in the order they run. Each capability appends its own.
PART_FACTORIES: list[Callable[[], DemoPart]] = []


def _faces_part() -> DemoPart:
    from agent.demo_parts.faces import FacesPart  # cv2/onnxruntime load only when the part runs

    return FacesPart()


PART_FACTORIES.append(_faces_part)


def _scale_part() -> DemoPart:
    from agent.demo_parts.scale import ScalePart  # cv2/LiteRT load only when the part runs

    return ScalePart()


PART_FACTORIES.append(_scale_part)


def _labels_part() -> DemoPart:
    from agent.demo_parts.labels import LabelsPart

    return LabelsPart()


PART_FACTORIES.append(_labels_part)
