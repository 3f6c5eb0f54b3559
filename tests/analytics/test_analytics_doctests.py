"""The runnable examples in agent/analytics docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["geometry", "tracks", "staff", "lines", "zones", "heatmap", "aggregates", "metrics", "camera"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"agent.analytics.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
