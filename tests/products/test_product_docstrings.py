"""The runnable examples in the product-recognition docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["models.embedders", "models.head_fit", "agent.products.gallery", "agent.products.plausibility", "agent.products.pricing",
           "agent.products.stats", "agent.products.recognizer", "agent.products.dataset"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
