"""Render an article onto a label: a palette image for the panel plus a content hash for reconciliation.

Text, prices, bars and QR modules are drawn straight into palette indices with FreeType's monochrome mode,
so edges are crisp and nothing needs dithering. Only ``image`` elements (photos, logos) are dithered
(Floyd–Steinberg to the panel's palette). The hash covers size, palette and every pixel index, so two
renders are equal exactly when the glass would look the same: the reconciler pushes only when it changes.

Example::

    lt = LABEL_TYPES["29bwr"]
    out = render_label(article, lt, load_template("standard", lt), at_ts=time.time())
    out.image.size, out.hash      # (296, 128), "9f2c…"

``article`` is any object with the ``agent.pricebook.Article`` fields and its ``promo_active``,
``price_at`` and ``unit_price_text`` methods (devices/ never imports the agent).
"""

from __future__ import annotations

import hashlib
import io
import re
import string
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import segno
from PIL import Image, ImageDraw, ImageFont

from devices.esl.barcode import BarcodeError, draw_ean13
from devices.esl.fonts import font, font_for
from devices.esl.model import LabelType
from devices.esl.templates import Element, Template

_FORMATTER = string.Formatter()
_TOKEN_RE = re.compile(r"[\u2e80-\uffff]|[^\s\u2e80-\uffff]+|\s+")


class RenderError(ValueError):
    """The article cannot be drawn with this template (e.g. a barcode box too small)."""


@dataclass(frozen=True, slots=True)
class RenderedLabel:
    """A rendered label: ``image`` is mode ``P`` with the panel's palette; ``hash`` is its content hash."""

    image: Image.Image
    hash: str

    def png_bytes(self) -> bytes:
        """The image as PNG (what an image-upload backend sends)."""
        buf = io.BytesIO()
        self.image.save(buf, format="PNG", optimize=False)
        return buf.getvalue()


def content_hash(image: Image.Image, palette: tuple[tuple[int, int, int], ...]) -> str:
    """sha256 over size, palette and the pixel indices of a mode ``P`` image."""
    h = hashlib.sha256(b"esl-render/1")
    h.update(f"{image.width}x{image.height}:".encode())
    h.update(bytes(c for rgb in palette for c in rgb))
    h.update(image.tobytes())
    return h.hexdigest()


def render_label(article: Any, label_type: LabelType, template: Template, at_ts: float | None = None) -> RenderedLabel:
    """Draw ``article`` as in force at ``at_ts`` (promo on/off) on ``label_type`` with ``template``."""
    at = time.time() if at_ts is None else at_ts
    if template.size is not None and template.size != (label_type.width, label_type.height):
        raise RenderError(f"template {template.name!r} is for {template.size[0]}x{template.size[1]}, label type "
                          f"{label_type.name} is {label_type.width}x{label_type.height}")
    image = Image.new("P", (label_type.width, label_type.height), 0)
    image.putpalette([c for rgb in label_type.palette for c in rgb])
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # monochrome glyphs: no anti-aliasing grey to threshold or dither
    promo = bool(article.promo_active(at))
    values = _values(article, template, at, promo)
    for element in template.elements:
        if element.when == "promo" and not promo or element.when == "regular" and promo:
            continue
        _DRAW[element.kind](image, draw, element, label_type, values, promo)
    return RenderedLabel(image, content_hash(image, label_type.palette))


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy for previews and tests."""
    return image.convert("RGB")


# -- values -----------------------------------------------------------------------------------------
def _values(article: Any, template: Template, at: float, promo: bool) -> dict[str, str]:
    cur = template.currency
    price_now = article.price_at(at)

    def date(ts: float | None) -> str:
        return "" if ts is None else time.strftime(template.date_format, time.localtime(ts))

    return {
        "plu": article.plu, "name": article.name, "origin": article.origin or "", "unit": article.unit,
        "unit_price": article.unit_price_text(price_now, cur), "price": f"{price_now:.2f}",
        "regular_price": f"{article.price:.2f}",
        "promo_price": "" if article.promo_price is None else f"{article.promo_price:.2f}",
        "valid_from": date(article.promo_start) if promo else "",
        "valid_until": date(_last_second(article.promo_end)) if promo else "",
        "barcode": article.barcode or "", "currency": cur,
    }


def _last_second(end: float | None) -> float | None:
    """The last moment a promo with exclusive end ``end`` applies: an end at midnight means "until the day
    before" on the shelf, not "until" the day it no longer applies."""
    return None if end is None else end - 1


def _fill(text: str, values: dict[str, str]) -> str:
    """The text with placeholders filled; "" when any placeholder it uses is empty (no dangling labels
    such as "Origin: " for an article without origin)."""
    if any(f is not None and not values.get(f) for _, f, _, _ in _FORMATTER.parse(text)):
        return ""
    return text.format(**values).strip()


# -- text layout --------------------------------------------------------------------------------------
def _wrap(text: str, f: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for token in _TOKEN_RE.findall(text):
        candidate = line + token
        if f.getlength(candidate.rstrip()) <= width or not line.strip():
            if f.getlength(candidate.strip()) > width and not token.isspace():
                # one word wider than the box: break it by characters
                for ch in token:
                    if f.getlength((line + ch).strip()) > width and line.strip():
                        lines.append(line.strip())
                        line = ch
                    else:
                        line += ch
                continue
            line = candidate
        else:
            lines.append(line.strip())
            line = "" if token.isspace() else token
    if line.strip():
        lines.append(line.strip())
    return lines


def _line_height(f: ImageFont.FreeTypeFont) -> int:
    ascent, descent = f.getmetrics()
    return ascent + descent


@lru_cache(maxsize=20_000)
def _layout(text: str, font_name: str, size: int, min_size: int, w: int, h: int,
            max_lines: int) -> tuple[ImageFont.FreeTypeFont, tuple[str, ...]]:
    """Largest font size in [min_size, size] whose wrapped lines fit the box; else min_size, ellipsised."""

    def fits(s: int) -> tuple[bool, ImageFont.FreeTypeFont, list[str]]:
        f = font_for(font_name, s, text)
        lines = _wrap(text, f, w)
        ok = len(lines) <= max_lines and _line_height(f) * len(lines) <= h
        return ok, f, lines

    lo, hi, best = min_size, size, None
    while lo <= hi:
        mid = (lo + hi) // 2
        ok, f, lines = fits(mid)
        if ok:
            best, lo = (f, lines), mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return best[0], tuple(best[1])
    f = font_for(font_name, min_size, text)
    n = max(1, min(max_lines, h // max(1, _line_height(f))))
    lines = _wrap(text, f, w)[:n]
    last = lines[-1] if lines else ""
    while last and f.getlength(last + "…") > w:
        last = last[:-1]
    return f, tuple(lines[:-1] + [last.rstrip() + "…"])


def _fg(draw: ImageDraw.ImageDraw, lt: LabelType, name: str, box: tuple[int, int, int, int]) -> int:
    """Palette index for text of colour ``name``; on a light accent (yellow) the box is highlighted instead
    and the text goes black."""
    if name in ("accent", "red", "yellow") and lt.accent_is_light:
        x, y, w, h = box
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=lt.accent)
        return 1
    return lt.color_index(name)


def _x_for(align: str, x: int, w: int, line_w: float) -> float:
    if align == "center":
        return x + (w - line_w) / 2
    if align == "right":
        return x + w - line_w
    return x


def _draw_text(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType, values: dict[str, str],
               promo: bool) -> None:
    text = _fill(el.text, values)
    if not text:
        return
    x, y, w, h = el.box
    f, lines = _layout(text, el.font, el.size, el.min_size, w, h, el.max_lines)
    lh = _line_height(f)
    top = y + (h - lh * len(lines)) // 2
    color = _fg(draw, lt, el.color, el.box)
    for i, line in enumerate(lines):
        draw.text((round(_x_for(el.align, x, w, f.getlength(line))), top + i * lh), line, font=f, fill=color)


def _draw_strike(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType,
                 values: dict[str, str], promo: bool) -> None:
    text = f"{values['currency']}{values['regular_price']}"
    x, y, w, h = el.box
    f, lines = _layout(text, el.font, el.size, el.min_size, w, h, 1)
    line = lines[0]
    color = _fg(draw, lt, el.color, el.box)
    tx = round(_x_for(el.align, x, w, f.getlength(line)))
    ty = y + (h - _line_height(f)) // 2
    draw.text((tx, ty), line, font=f, fill=color)
    left, top, right, bottom = draw.textbbox((tx, ty), line, font=f)
    thickness = max(1, f.size // 9)
    mid = (top + bottom) // 2
    draw.rectangle((left - 1, mid - thickness // 2, right, mid - thickness // 2 + thickness - 1), fill=color)


def _draw_price(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType, values: dict[str, str],
                promo: bool) -> None:
    main, _, frac = values["price"].partition(".")
    cur = values["currency"]
    x, y, w, h = el.box
    color = _fg(draw, lt, el.promo_color if promo else el.color, el.box)
    size = _price_size(el.font, el.size, el.min_size, w, h, cur, main, frac)
    big, small = font(el.font, size), font(el.font, max(6, int(size * 0.5)))
    total = small.getlength(cur) + big.getlength(main) + small.getlength(frac) + (2 if cur else 0)
    left = _x_for(el.align, x, w, total)
    top_main = -big.getbbox(main, anchor="ls")[1]  # digit height above the baseline
    baseline = y + (h - top_main) // 2 + top_main
    small_top = -small.getbbox(frac or "0", anchor="ls")[1]
    small_baseline = baseline - top_main + small_top  # small digits share the top edge of the big ones
    cx = left
    if cur:
        draw.text((round(cx), small_baseline), cur, font=small, fill=color, anchor="ls")
        cx += small.getlength(cur) + 2
    draw.text((round(cx), baseline), main, font=big, fill=color, anchor="ls")
    cx += big.getlength(main)
    draw.text((round(cx) + 1, small_baseline), frac, font=small, fill=color, anchor="ls")


@lru_cache(maxsize=4096)
def _price_size(font_name: str, size: int, min_size: int, w: int, h: int, cur: str, main: str, frac: str) -> int:
    lo, hi, best = min_size, size, min_size
    while lo <= hi:
        s = (lo + hi) // 2
        big, small = font(font_name, s), font(font_name, max(6, int(s * 0.5)))
        width = small.getlength(cur) + big.getlength(main) + small.getlength(frac) + 3
        height = -big.getbbox(main, anchor="ls")[1]
        if width <= w and height <= h:
            best, lo = s, s + 1
        else:
            hi = s - 1
    return best


def _draw_rect(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType, values: dict[str, str],
               promo: bool) -> None:
    x, y, w, h = el.box
    outline = lt.color_index(el.outline) if el.outline else None
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=lt.color_index(el.fill), outline=outline, width=el.width)


def _draw_line(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType, values: dict[str, str],
               promo: bool) -> None:
    x, y, w, h = el.box
    draw.line((x, y, x + w - 1, y + h - 1), fill=lt.color_index(el.fill), width=el.width)


def _draw_barcode(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType,
                  values: dict[str, str], promo: bool) -> None:
    code = values["barcode"]
    if not code:
        return
    x, y, w, h = el.box
    m = max(1, w // 113)
    digits_font = font("mono", max(8, min(h // 4, 6 * m + 2))) if el.digits else None
    try:
        draw_ean13(draw, el.box, code, lt.color_index(el.color), digits_font)
    except BarcodeError as exc:
        raise RenderError(f"{el.kind} at {list(el.box)}: {exc}") from exc


def _draw_qr(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType, values: dict[str, str],
             promo: bool) -> None:
    data = _fill(el.data, values)
    if not data:
        return
    matrix = _qr_matrix(data)
    n = len(matrix)
    x, y, w, h = el.box
    m = min(w, h) // (n + 4)  # 2-module quiet zone each side
    if m < 1:
        raise RenderError(f"qr at {list(el.box)}: {n + 4} modules do not fit {min(w, h)} px")
    x0 = x + (w - n * m) // 2
    y0 = y + (h - n * m) // 2
    color = lt.color_index(el.color)
    for r, row in enumerate(matrix):
        for c, bit in enumerate(row):
            if bit:
                draw.rectangle((x0 + c * m, y0 + r * m, x0 + (c + 1) * m - 1, y0 + (r + 1) * m - 1), fill=color)


@lru_cache(maxsize=4096)
def _qr_matrix(data: str) -> tuple[tuple[int, ...], ...]:
    # A fixed mask: choosing the "best" of 8 masks costs ~6 ms per code in pure Python and any mask scans.
    qr = segno.make(data, error="m", micro=False, mask=0)
    return tuple(tuple(1 if v else 0 for v in row) for row in qr.matrix)


def _draw_image(image: Image.Image, draw: ImageDraw.ImageDraw, el: Element, lt: LabelType, values: dict[str, str],
                promo: bool) -> None:
    assert el.path is not None
    quantized = _quantized_image(el.path, el.box[2], el.box[3], lt.colors, el.dither)
    x, y, w, h = el.box
    image.paste(quantized, (x + (w - quantized.width) // 2, y + (h - quantized.height) // 2))


@lru_cache(maxsize=256)
def _quantized_image(path: Path, w: int, h: int, colors: str, dither: bool) -> Image.Image:
    """``path`` scaled to fit (w, h), mapped to the palette ``colors`` (Floyd–Steinberg when ``dither``)."""
    from devices.esl.model import PALETTES

    palette = PALETTES[colors]
    try:
        src = Image.open(path)
        src.load()
    except OSError as exc:
        raise RenderError(f"image {path}: cannot be read: {exc}") from exc
    rgba = src.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    rgb = flat.convert("RGB")
    rgb.thumbnail((w, h), Image.Resampling.LANCZOS)
    pal_img = Image.new("P", (1, 1))
    # Pad the 256-entry palette with copies of white so no extra index can be chosen.
    pal_img.putpalette([c for rgb_ in palette for c in rgb_] + [255, 255, 255] * (256 - len(palette)))
    out = rgb.quantize(palette=pal_img, dither=Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE)
    indices = np.asarray(out)
    indices = np.where(indices < len(palette), indices, 0).astype(np.uint8)
    clean = Image.frombytes("P", out.size, indices.tobytes())
    clean.putpalette([c for rgb_ in palette for c in rgb_])
    return clean


_DRAW = {"text": _draw_text, "price": _draw_price, "strike_price": _draw_strike, "rect": _draw_rect,
         "line": _draw_line, "barcode": _draw_barcode, "qr": _draw_qr, "image": _draw_image}
