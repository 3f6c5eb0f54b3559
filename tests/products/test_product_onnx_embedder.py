"""Any ONNX embedding model plugs in by path: its declared input size and layout are used, the gallery and
recognition work in its embedding space (here the 256-d person re-id model of the registry mirror, which
takes 256x128 images, not the 224x224 of the defaults)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agent.config.products_models import ProductsConfig
from agent.products.gallery import Gallery
from agent.products.recognizer import Recognizer, embedder_from_config


def test_an_onnx_model_with_its_own_input_size_is_a_product_embedder(shared_models: Path, grocery: Path,
                                                                     tmp_path: Path) -> None:
    model = shared_models / "person_reid" / "person-reidentification-retail-0288.onnx"
    cfg = ProductsConfig(embedder=str(model), head="", flip_tta=False)
    embedder = embedder_from_config(cfg, tmp_path)
    assert embedder.dim == 256 and embedder.space == model.name
    recognizer = Recognizer(embedder, Gallery(embedder.dim), top_k=2)
    for plu, rel in (("4011", "train/Fruit/Banana"), ("4030", "train/Fruit/Kiwi")):
        for path in sorted((grocery / rel).glob("*.jpg"))[:5]:
            recognizer.gallery.add(plu, recognizer.embed(cv2.imread(str(path))), uid=path.name, force=True)
    vector = recognizer.embed(cv2.imread(str(grocery / "val/Fruit/Banana/Banana_001.jpg")), (0.1, 0.1, 0.9, 0.9))
    assert vector.shape == (256,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    candidates = recognizer.rank(vector)
    assert [c.rank for c in candidates] == [1, 2] and {c.plu for c in candidates} == {"4011", "4030"}
