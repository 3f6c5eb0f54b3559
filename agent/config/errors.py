"""Configuration problems and the exception that carries them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration.

    ``path`` is the field path (``sync.tls.cert_file``, ``cameras[1].url``; empty
    for the whole file), ``line`` the 1-based line in the TOML file when known.
    """

    path: str
    message: str
    line: int | None = None

    def format(self, source: str | None = None) -> str:
        """Render as ``source:line: path: message`` (parts that are unknown are left out)."""
        where = source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {text}" if where else text

    def __str__(self) -> str:
        return self.format()


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found.

    ``str()`` gives one problem per line, e.g.
    ``agent.toml:12: sync.keepalive_s: Input should be greater than or equal to 5``.
    """

    def __init__(self, problems: list[ConfigProblem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(problem.format(source) for problem in self.problems))
