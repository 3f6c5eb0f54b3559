"""Present doctor results: a readable list for people, a JSON object for scripts, an exit code."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.doctor.core import CheckResult, worst

SYMBOLS = {"ok": "✔", "warn": "!", "fail": "✘"}


def exit_code(results: Sequence[CheckResult]) -> int:
    """CLI exit code: 1 when any check failed, else 0 (warnings do not fail)."""
    return 1 if any(r.status == "fail" for r in results) else 0


def render_text(results: Sequence[CheckResult]) -> str:
    """One line per check, its fix indented below, then an overall line.

    >>> print(render_text([CheckResult("disk", "warn", "300 MB free", "free space")]))
    ! disk: 300 MB free
      fix: free space
    overall: WARN (0 ok, 1 warning, 0 failures)
    """
    lines: list[str] = []
    for result in results:
        first, *more = (result.detail or "-").splitlines() or ["-"]
        lines.append(f"{SYMBOLS[result.status]} {result.name}: {first}")
        lines += [f"    {line}" for line in more]
        if result.fix:
            lines.append(f"  fix: {result.fix}")
    counts = {status: sum(r.status == status for r in results) for status in SYMBOLS}
    warnings = "warning" if counts["warn"] == 1 else "warnings"
    failures = "failure" if counts["fail"] == 1 else "failures"
    lines.append(
        f"overall: {worst([r.status for r in results]).upper()} "
        f"({counts['ok']} ok, {counts['warn']} {warnings}, {counts['fail']} {failures})"
    )
    return "\n".join(lines)


def results_to_json(results: Sequence[CheckResult]) -> dict[str, Any]:
    """``{"status": worst status, "exit_code": 0|1, "checks": [CheckResult.to_dict(), ...]}``."""
    return {
        "status": worst([r.status for r in results]),
        "exit_code": exit_code(results),
        "checks": [r.to_dict() for r in results],
    }
