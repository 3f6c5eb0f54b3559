"""The doctor's machinery: results, the context handed to checks, the check registry and the runner.

A check is a function ``check(ctx: DoctorContext) -> CheckResult``. Register it once
(``register_check(check_cameras)`` or ``@register_check``) and ``run_doctor`` runs it in
registration order. A check that raises is reported as a failure of that check; the doctor
itself never raises.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, overload

from agent.config import AgentConfig, ConfigError, ConfigProblem, load_config

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail")
_SEVERITY = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    ``detail`` says what was found; ``fix`` how to fix it (a command or a config key),
    empty when the status is ``ok``.
    """

    name: str
    status: Status
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    def to_dict(self) -> dict[str, str]:
        """``{"name", "status", "detail", "fix"}`` (JSON-able)."""
        return asdict(self)


def worst(statuses: Sequence[Status]) -> Status:
    """The most severe of ``statuses`` (``ok`` for none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default="ok")


@dataclass(frozen=True)
class DoctorContext:
    """What every check gets: the config (or why it failed to load) and the doctor's settings.

    ``env`` is the environment the doctor sees (``os.environ`` unless given): it feeds
    ``STORE_AGENT__*`` overrides, ``CREDENTIALS_DIRECTORY`` and the ``PATH`` used to find tools.
    """

    config_path: Path
    config: AgentConfig | None
    config_error: ConfigError | None
    env: Mapping[str, str]
    timeout_s: float

    @property
    def cfg(self) -> AgentConfig:
        """The loaded config; only call from checks registered with ``needs_config=True``."""
        if self.config is None:
            raise RuntimeError("configuration did not load")
        return self.config


CheckFn = Callable[[DoctorContext], CheckResult]


@dataclass(frozen=True)
class Check:
    """A registered check: its result name, the function and whether it needs a valid config."""

    name: str
    fn: CheckFn
    needs_config: bool = True


_REGISTRY: list[Check] = []


@overload
def register_check(fn: CheckFn, *, name: str | None = None, needs_config: bool = True) -> CheckFn: ...
@overload
def register_check(
    fn: None = None, *, name: str | None = None, needs_config: bool = True
) -> Callable[[CheckFn], CheckFn]: ...


def register_check(
    fn: CheckFn | None = None, *, name: str | None = None, needs_config: bool = True
) -> CheckFn | Callable[[CheckFn], CheckFn]:
    """Add a check to the registry (after the ones already there); usable as a decorator.

    ``name`` defaults to the function name without its ``check_`` prefix. Registering the same
    name again replaces the earlier check in place (re-imports stay harmless). With
    ``needs_config=True`` the check is skipped (warn) when the configuration is invalid.
    """

    def add(function: CheckFn) -> CheckFn:
        check = Check(name or function.__name__.removeprefix("check_"), function, needs_config)
        for index, existing in enumerate(_REGISTRY):
            if existing.name == check.name:
                _REGISTRY[index] = check
                break
        else:
            _REGISTRY.append(check)
        return function

    return add if fn is None else add(fn)


def unregister_check(name: str) -> None:
    """Remove the check called ``name`` (no error if absent)."""
    _REGISTRY[:] = [check for check in _REGISTRY if check.name != name]


def registered_checks() -> list[Check]:
    """The registered checks, in run order."""
    return list(_REGISTRY)


def run_doctor(
    config_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 3.0,
    checks: Sequence[Check] | None = None,
) -> list[CheckResult]:
    """Run every registered check (or ``checks``) against the config at ``config_path``.

    Never raises: configuration problems become the ``config`` check's result, and a check
    that crashes is reported as failed.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    config, error = _load(Path(config_path), environ)
    ctx = DoctorContext(Path(config_path), config, error, environ, timeout_s)
    return [_run_one(check, ctx) for check in (registered_checks() if checks is None else checks)]


def _load(path: Path, env: Mapping[str, str]) -> tuple[AgentConfig | None, ConfigError | None]:
    if not path.exists():  # load_config would silently use defaults for the default path
        return None, ConfigError([ConfigProblem("", f"config file {path} does not exist")], str(path))
    try:
        return load_config(path, env=env), None
    except ConfigError as exc:
        return None, exc
    except Exception as exc:  # noqa: BLE001 - the doctor must report, not crash
        return None, ConfigError([ConfigProblem("", f"cannot load: {type(exc).__name__}: {exc}")], str(path))


def _run_one(check: Check, ctx: DoctorContext) -> CheckResult:
    if check.needs_config and ctx.config is None:
        return CheckResult(check.name, "warn", "skipped, config invalid")  # the config check says how to fix it
    try:
        result = check.fn(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        log.exception("doctor check crashed", extra={"check": check.name})
        return CheckResult(check.name, "fail", f"check crashed: {type(exc).__name__}: {exc}",
                           "this is a bug in the agent; report it with the output of `store-agent doctor --json`")
    if not isinstance(result, CheckResult):
        return CheckResult(check.name, "fail", f"check returned {type(result).__name__}, not a CheckResult",
                           "this is a bug in the agent; report it")
    return result

