"""Rendering properties: palette only, strike-through while a promo runs, CJK glyphs (not tofu), dithering only
for images, a content hash that follows the content, barcodes that decode, batch = sequential."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.pricebook import Article
from devices.esl.barcode import BarcodeError, decode_ean13, ean13_modules, modules_from_row
from devices.esl.fonts import font
from devices.esl.model import LABEL_TYPES
from devices.esl.render import content_hash, render_label
from devices.esl.render_batch import BatchRenderer, RenderJob, render_one
from devices.esl.templates import load_template, parse_template

AT = 1_800_000_000.0
PROMO = Article("20", "有机香蕉 Organic Bananas", 12.49, "piece", promo_price=9.99, promo_start=AT - 3600,
                promo_end=AT + 3600, barcode="9780201379624", origin="中国")
PLAIN = Article("4011", "Bananas", 1.99, "kg", barcode="4006381333931")
MISSING = "\U000F0000"  # supplementary private use: in no font, drawn as the .notdef box ("tofu")


def render(article: Article, type_name: str, at: float = AT):
    lt = LABEL_TYPES[type_name]
    return render_label(article, lt, load_template(lt.default_template, lt), at)


def element_box(type_name: str, kind: str) -> tuple[int, int, int, int]:
    lt = LABEL_TYPES[type_name]
    return next(e.box for e in load_template(lt.default_template, lt).elements if e.kind == kind)


def crop(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return np.asarray(image)[y:y + h, x:x + w]


@pytest.mark.parametrize("type_name", sorted(LABEL_TYPES))
def test_only_palette_colours_are_produced(type_name: str) -> None:
    lt = LABEL_TYPES[type_name]
    for article in (PROMO, PLAIN):
        out = render(article, type_name)
        assert out.image.mode == "P" and out.image.size == (lt.width, lt.height)
        indices = set(np.unique(np.asarray(out.image)).tolist())
        assert indices <= set(range(len(lt.palette)))
        rgb = {tuple(c) for c in np.asarray(out.image.convert("RGB")).reshape(-1, 3).tolist()}
        assert rgb <= set(lt.palette)
    # the promo label uses the accent colour where the panel has one
    promo_indices = set(np.unique(np.asarray(render(PROMO, type_name).image)).tolist())
    assert (2 in promo_indices) == (len(lt.palette) == 3)


@pytest.mark.parametrize("type_name", ["29bwr", "154bwr", "42bwr"])
def test_promo_shows_a_struck_through_regular_price_only_while_it_runs(type_name: str) -> None:
    box = element_box(type_name, "strike_price")
    during = crop(render(PROMO, type_name, AT).image, box)
    after = crop(render(PROMO, type_name, AT + 3600).image, box)
    assert not after.any(), "the strike price must disappear when the promo ends"
    dark = during == 1
    cols = np.flatnonzero(dark.any(axis=0))
    left, right = cols[0], cols[-1]
    # some row is dark across the whole text: the strike line
    full_rows = [r for r in range(dark.shape[0]) if dark[r, left + 1:right].all()]
    assert full_rows, "no horizontal strike line across the regular price"
    rows = np.flatnonzero(dark.any(axis=1))
    assert rows[0] < full_rows[0] <= full_rows[-1] < rows[-1], "the line must cross the digits, not underline"


def test_promo_price_is_drawn_in_the_accent_colour_and_regular_price_in_black() -> None:
    box = element_box("29bwr", "price")
    promo = crop(render(PROMO, "29bwr").image, box)
    plain = crop(render(PLAIN, "29bwr").image, box)
    assert set(np.unique(promo).tolist()) == {0, 2}
    assert set(np.unique(plain).tolist()) == {0, 1}


def test_yellow_accent_highlights_instead_of_yellow_text() -> None:
    box = element_box("29bwy", "price")
    region = crop(render(PROMO, "29bwy").image, box)
    assert (region == 2).mean() > 0.5 and (region == 1).any() and not (region == 0).any()


def test_cjk_text_is_drawn_with_real_glyphs_not_tofu() -> None:
    lt = LABEL_TYPES["29bwr"]
    template = parse_template({"name": "t", "element": [
        {"type": "text", "box": [0, 0, 296, 64], "text": "{name}", "font": "sans", "size": 48, "min_size": 48}]})

    def name_image(name: str) -> np.ndarray:
        return np.asarray(render_label(Article("1", name, 1.0, "kg"), lt, template, AT).image)

    cjk = name_image("香蕉苹果")
    tofu = name_image(MISSING * 4)
    assert (cjk != tofu).any()
    # the four glyphs are four different shapes (tofu boxes would be four equal ones)
    cols = np.flatnonzero(cjk.any(axis=0))
    quarter = (cols[-1] - cols[0] + 1) / 4
    glyphs = [cjk[:, int(cols[0] + i * quarter):int(cols[0] + (i + 1) * quarter)] for i in range(4)]
    assert len({g.tobytes() for g in glyphs}) == 4
    # and the test can tell: DejaVu alone draws 香 as the same box as a missing glyph
    sans = font("sans", 40)
    assert np.array_equal(np.asarray(sans.getmask("香")), np.asarray(sans.getmask(MISSING)))
    cjk_font = font("cjk", 40)
    assert not np.array_equal(np.asarray(cjk_font.getmask("香")), np.asarray(cjk_font.getmask(MISSING)))


@pytest.mark.parametrize(("type_name", "module_px"), [("29bwr", 1), ("154bwr", 1), ("42bwr", 2)])
def test_the_barcode_on_the_label_decodes_to_the_article_barcode(type_name: str, module_px: int) -> None:
    out = render(PROMO, type_name)
    x, y, w, h = element_box(type_name, "barcode")
    row = np.asarray(out.image)[y + h // 3, x:x + w] == 1
    modules = modules_from_row(row.tolist())
    assert decode_ean13(modules) == PROMO.barcode
    first = int(np.flatnonzero(row)[0])
    assert np.flatnonzero(row)[-1] - first + 1 == 95 * module_px
    # quiet zones: nothing dark within 7 modules of the bars
    assert first >= 7 * module_px and not row[len(row) - 7 * module_px:].any()


def test_ean13_encoding_known_pattern_and_corruption_is_detected() -> None:
    modules = ean13_modules("4006381333931")
    assert len(modules) == 95 and modules.startswith("101") and modules[45:50] == "01010"
    # first digit 4 → parity LGLLGG: digit "0" (second) in L code, digit "0" (third) in G code
    assert modules[3:10] == "0001101" and modules[10:17] == "0100111"
    flipped = modules[:60] + ("1" if modules[60] == "0" else "0") + modules[61:]
    with pytest.raises(BarcodeError):
        decode_ean13(flipped)
    with pytest.raises(BarcodeError, match="check digit"):
        ean13_modules("4006381333932")


def test_image_elements_are_dithered_and_text_is_not(tmp_path: Path) -> None:
    gradient = np.tile(np.linspace(0, 255, 120, dtype=np.uint8), (60, 1))
    Image.fromarray(gradient, "L").save(tmp_path / "logo.png")
    lt = LABEL_TYPES["29bw"]

    def draw(dither: bool) -> np.ndarray:
        template = parse_template({"name": "t", "element": [
            {"type": "image", "box": [0, 0, 120, 60], "path": "logo.png", "dither": dither},
            {"type": "text", "box": [130, 0, 160, 60], "text": "{name}", "size": 30}]}, base_dir=tmp_path)
        return np.asarray(render_label(PLAIN, lt, template, AT).image)

    dithered, plain = draw(True), draw(False)
    region = dithered[:60, :120]
    dark_share = (region == 1).mean(axis=0)
    assert dark_share[:30].mean() > 0.7 and dark_share[-30:].mean() < 0.3
    assert 0.2 < dark_share[50:70].mean() < 0.8, "mid-grey must become a mix of black and white"
    transitions = np.abs(np.diff(region.astype(int), axis=1)).sum(axis=1)
    assert transitions.mean() > 10
    # without dithering: a hard threshold, one black→white edge per row
    assert np.abs(np.diff(plain[:60, :120].astype(int), axis=1)).sum(axis=1).max() == 1
    # the text part is identical either way: dithering never touches text
    assert np.array_equal(dithered[:, 120:], plain[:, 120:])


def test_the_hash_follows_the_content() -> None:
    a, b = render(PLAIN, "29bwr"), render(PLAIN, "29bwr")
    assert a.hash == b.hash == content_hash(a.image, LABEL_TYPES["29bwr"].palette)
    cheaper = render(Article("4011", "Bananas", 1.89, "kg", barcode="4006381333931"), "29bwr")
    assert cheaper.hash != a.hash
    # the same pixels on another palette are another content
    assert render(PLAIN, "29bw").hash != a.hash
    # promo on and off
    assert render(PROMO, "29bwr", AT).hash != render(PROMO, "29bwr", AT + 3600).hash
    assert render(PROMO, "29bwr", AT + 3600).hash == render(PROMO, "29bwr", AT + 7200).hash


def test_a_too_long_name_is_shrunk_then_ellipsised_inside_its_box() -> None:
    long = Article("9", "Extra Virgin Olive Oil from Kalamata, cold pressed, first harvest of the year 2026", 9.0,
                   "piece")
    out = render(long, "29bwr")
    x, y, w, h = element_box("29bwr", "text")  # the name box
    image = np.asarray(out.image)
    assert image[y:y + h, x:x + w].any()
    outside = image.copy()
    outside[y:y + h, x:x + w] = 0
    assert not outside[:y + h].any(), "name must stay inside its box"


def test_batch_rendering_on_two_processes_equals_sequential_rendering() -> None:
    types = sorted(LABEL_TYPES)
    jobs = [RenderJob(Article(str(i), f"Article {i} 商品", 1 + i / 100, "piece",
                              promo_price=0.5 if i % 4 == 0 else None), types[i % len(types)], None, AT)
            for i in range(160)]
    with BatchRenderer(processes=2, chunk_size=16) as pool:
        batch = pool.render(jobs)
    sequential = [render_one(j) for j in jobs]
    assert [r.hash for r in batch] == [r.hash for r in sequential]
    assert np.array_equal(np.asarray(batch[7].image), np.asarray(sequential[7].image))
    assert batch[7].image.getpalette()[:9] == sequential[7].image.getpalette()[:9]


def test_validity_shows_the_last_day_the_promo_applies_when_it_ends_at_midnight() -> None:
    y, m, d = time.localtime(AT + 3 * 86400)[:3]
    midnight = time.mktime((y, m, d, 0, 0, 0, 0, 0, -1))  # the promo no longer applies on day d

    def label(end: float):
        return render(replace(PROMO, promo_end=end), "29bwr")

    assert label(midnight).hash == label(midnight - 1).hash  # "until" day d - 1 both
    assert label(midnight).hash != label(midnight + 12 * 3600).hash  # "until" day d


def test_the_qr_code_on_the_large_label_decodes_to_the_product_link() -> None:
    import cv2

    x, y, w, h = element_box("42bwr", "qr")
    gray = np.asarray(render(PLAIN, "42bwr").image.convert("L"))[y:y + h, x:x + w]
    big = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)  # a phone sees it larger
    big = cv2.copyMakeBorder(big, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255)
    assert cv2.QRCodeDetector().detectAndDecode(big)[0] == f"https://shop.example/p/{PLAIN.plu}"
