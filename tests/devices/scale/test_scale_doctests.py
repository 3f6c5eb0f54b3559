"""The runnable examples in the scale modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["devices.scale.reading", "devices.scale.toledo8217", "devices.scale.mtsics", "devices.scale.scp01",
           "devices.scale.parity", "devices.scale.stability", "devices.scale.sim.script",
           "devices.scale.sim.pty_sim"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
