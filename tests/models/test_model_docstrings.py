"""The runnable examples in the model library's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["models.spec", "models.registry", "models.runtime", "models.detectors.base", "models.detectors.yolox",
           "models.detectors.ultralytics_yolo"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
