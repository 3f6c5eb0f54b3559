"""Environment-variable settings source that reads from an explicit mapping.

``pydantic-settings`` normally reads ``os.environ``. The loader needs to pass a
specific mapping instead (tests, ``validate_file`` which must ignore the
environment), so :func:`use_env` installs one for the duration of a block and
:class:`MappingEnvSource` reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources import PydanticBaseSettingsSource

_ENV_OVERRIDE: ContextVar[Mapping[str, str] | None] = ContextVar("store_agent_env_override", default=None)


class MappingEnvSource(EnvSettingsSource):
    """An :class:`EnvSettingsSource` that reads ``env`` instead of ``os.environ``."""

    def __init__(self, settings_cls: Any, env: Mapping[str, str]) -> None:
        self._mapping = dict(env)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._mapping)
        return {key.lower(): value for key, value in self._mapping.items()}


@contextmanager
def use_env(env: Mapping[str, str] | None) -> Iterator[None]:
    """Make settings built inside the block read ``env`` (``None`` = ``os.environ``)."""
    token = _ENV_OVERRIDE.set(env)
    try:
        yield
    finally:
        _ENV_OVERRIDE.reset(token)


def env_source_for(settings_cls: Any, default: PydanticBaseSettingsSource) -> PydanticBaseSettingsSource:
    """Return the env source to use: the installed mapping if any, else ``default``."""
    env = _ENV_OVERRIDE.get()
    if env is None:
        return default
    return MappingEnvSource(settings_cls, env)
