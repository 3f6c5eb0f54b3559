"""Fixtures of the product-recognition tests: the verified model in ``../shared/models`` (never downloaded)
and GroceryStoreDataset photos in ``../shared/data/grocery`` (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"
GROCERY = SHARED / "data" / "grocery"
MODELS = SHARED / "models"

#: Five visually different classes for the small evaluation (fine class names of GroceryStoreDataset).
FIVE = {"Banana": "train/Fruit/Banana", "Kiwi": "train/Fruit/Kiwi", "Lemon": "train/Fruit/Lemon",
        "Red-Bell-Pepper": "train/Vegetables/Pepper/Red-Bell-Pepper", "Carrots": "train/Vegetables/Carrots"}


@pytest.fixture(scope="session")
def shared_models() -> Path:
    assert (MODELS / "MANIFEST.md").exists(), "the product tests read the verified models in ../shared/models"
    return MODELS


@pytest.fixture(scope="session")
def grocery() -> Path:
    assert (GROCERY / "classes.csv").exists(), "the product tests read ../shared/data/grocery"
    return GROCERY


@pytest.fixture(scope="session")
def embedder(shared_models: Path):  # noqa: ANN201 - models.embedders.ImageEmbedder
    """The default product embedder of ``[products]`` (MobileNetV1 LiteRT + shipped head + flip averaging),
    opened once."""
    from agent.config.products_models import ProductsConfig
    from agent.products.recognizer import embedder_from_config

    return embedder_from_config(ProductsConfig(), shared_models)
