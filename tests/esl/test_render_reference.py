"""Rendered labels match the reference images in tests/esl/reference/ pixel for pixel (palette indices).

The references were rendered by this code and inspected by eye (docs/esl.md shows how). After an intended
change of a template or of the renderer, regenerate them with
``ESL_WRITE_REFERENCES=1 .venv/bin/python -m pytest -q tests/esl/test_render_reference.py``, look at every PNG,
and commit them with the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.pricebook import Article
from devices.esl.model import LABEL_TYPES
from devices.esl.render import content_hash, render_label
from devices.esl.templates import load_template

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
WRITE = os.environ.get("ESL_WRITE_REFERENCES") == "1"
AT = 1_800_000_000.0  # 2027-01-15 08:00 UTC
NOON = 1_800_014_400.0  # promo dates at noon UTC: the same calendar day in every time zone within ±11 h

BANANAS = Article("4011", "Organic Bananas Fairtrade", 1.99, "kg", barcode="4006381333931", origin="Ecuador")
CJK_PROMO = Article("20", "有机香蕉 Organic Bananas", 12.49, "piece", promo_price=9.99, promo_start=NOON - 86400,
                    promo_end=NOON + 6 * 86400, barcode="9780201379624", origin="中国 云南",
                    typical_weight_kg=(0.8, 1.2))
HAM_PROMO = Article("100", "Smoked Ham", 1.29, "100g", promo_price=0.99, promo_end=NOON + 86400)

CASES = {
    "29bwr_regular": (BANANAS, "29bwr"),
    "29bwr_promo_cjk": (CJK_PROMO, "29bwr"),
    "29bw_promo": (HAM_PROMO, "29bw"),
    "29bwy_promo_cjk": (CJK_PROMO, "29bwy"),
    "154bwr_promo_cjk": (CJK_PROMO, "154bwr"),
    "154bwr_regular": (BANANAS, "154bwr"),
    "42bwr_promo_cjk": (CJK_PROMO, "42bwr"),
    "42bwr_regular": (BANANAS, "42bwr"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_the_reference_image(case: str) -> None:
    article, type_name = CASES[case]
    lt = LABEL_TYPES[type_name]
    out = render_label(article, lt, load_template(lt.default_template, lt), AT)
    path = REFERENCE_DIR / f"{case}.png"
    if WRITE:
        REFERENCE_DIR.mkdir(exist_ok=True)
        out.image.save(path)
    assert path.is_file(), f"missing reference {path}; see this module's docstring"
    ref = Image.open(path)
    assert ref.mode == "P" and ref.size == out.image.size
    ref_palette = tuple(tuple(ref.getpalette()[i:i + 3]) for i in range(0, 3 * len(lt.palette), 3))
    assert ref_palette == lt.palette
    diff = np.asarray(ref) != np.asarray(out.image)
    assert not diff.any(), f"{case}: {int(diff.sum())} pixels differ from {path.name}"
    assert content_hash(ref, lt.palette) == out.hash
