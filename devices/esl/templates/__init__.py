"""Declarative label templates (TOML or JSON): a list of elements placed in boxes on the label.

A template file::

    name = "standard"
    size = [296, 128]          # the label size it is drawn for (checked against the label type)
    currency = "€"             # optional; prefix of prices
    date_format = "%d.%m."     # optional; for {valid_from} / {valid_until}

    [[element]]
    type = "text"              # text | price | strike_price | rect | line | barcode | qr | image
    box = [4, 2, 288, 40]      # x, y, w, h in px
    text = "{name}"            # placeholders: see PLACEHOLDERS
    font = "sans-bold"         # sans | sans-bold | mono | cjk (CJK text switches to cjk by itself)
    size = 22                  # largest size; shrunk down to min_size to fit the box
    min_size = 10
    max_lines = 2
    align = "left"             # left | center | right
    color = "black"            # white | black | accent (red/yellow; black on a two-colour label) | on_accent
                               # (reads on an accent fill). Accent *text* on yellow labels is drawn black
                               # on a yellow highlight of its box, since yellow on white is unreadable.
    when = "always"            # always | promo | regular (promo = while the article's promo runs)

Element extras: ``price`` has ``promo_color``; ``rect``/``line`` have ``fill`` and ``width``; ``qr`` has
``data`` (a placeholder string); ``image`` has ``path`` (relative to the template file) and ``dither``
(Floyd–Steinberg to the palette, default true: photos and logos); ``barcode`` has ``digits`` (bool).
Every error names the file and the field (``element[3].box``).
"""

from __future__ import annotations

import json
import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).resolve().parent
KINDS = ("text", "price", "strike_price", "rect", "line", "barcode", "qr", "image")
FONTS = ("sans", "sans-bold", "mono", "cjk")
COLORS = ("white", "black", "accent", "red", "yellow", "on_accent")
PLACEHOLDERS = ("plu", "name", "origin", "unit", "unit_price", "price", "regular_price", "promo_price",
                "valid_from", "valid_until", "barcode", "currency")
_COMMON = {"type", "box", "when"}
_KEYS: dict[str, set[str]] = {
    "text": _COMMON | {"text", "font", "size", "min_size", "max_lines", "align", "color"},
    "price": _COMMON | {"font", "size", "min_size", "align", "color", "promo_color"},
    "strike_price": _COMMON | {"font", "size", "min_size", "align", "color"},
    "rect": _COMMON | {"fill", "outline", "width"},
    "line": _COMMON | {"fill", "width"},
    "barcode": _COMMON | {"color", "digits"},
    "qr": _COMMON | {"data", "color"},
    "image": _COMMON | {"path", "dither"},
}


class TemplateError(ValueError):
    """A template that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Element:
    """One drawn element (fields not used by a kind keep their defaults)."""

    kind: str
    box: tuple[int, int, int, int]
    when: str = "always"
    text: str = ""
    font: str = "sans"
    size: int = 16
    min_size: int = 8
    max_lines: int = 1
    align: str = "left"
    color: str = "black"
    promo_color: str = "accent"
    fill: str = "black"
    outline: str | None = None
    width: int = 1
    digits: bool = True
    data: str = ""
    path: Path | None = None
    dither: bool = True


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template; ``source`` is the file it came from."""

    name: str
    size: tuple[int, int] | None
    elements: tuple[Element, ...]
    currency: str = ""
    date_format: str = "%d.%m."
    source: str = "<dict>"


def load_template(name_or_path: str | Path, label_type: Any = None) -> Template:
    """Load a template by file path, or by name for a label type (``{name}_{w}x{h}.toml`` in the template
    directory, else ``{name}.toml``). With ``label_type`` its size must match the template's."""
    size = (label_type.width, label_type.height) if label_type is not None else None
    return _load_cached(str(name_or_path), size)


@lru_cache(maxsize=128)
def _load_cached(name_or_path: str, size: tuple[int, int] | None) -> Template:
    path = _resolve(name_or_path, size)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from exc
    template = parse_template(data, source=str(path), base_dir=path.parent)
    if size is not None and template.size is not None and template.size != size:
        raise TemplateError(f"{path}: size: template is for {template.size[0]}x{template.size[1]}, "
                            f"the label is {size[0]}x{size[1]}")
    return template


def available_templates() -> list[str]:
    """Template files shipped in the template directory."""
    return sorted(p.name for p in TEMPLATE_DIR.iterdir() if p.suffix in (".toml", ".json"))


def _resolve(name: str, size: tuple[int, int] | None) -> Path:
    as_path = Path(name)
    if as_path.suffix in (".toml", ".json") or as_path.is_file():
        if not as_path.is_file():
            raise TemplateError(f"template file {name} does not exist")
        return as_path
    candidates = ([TEMPLATE_DIR / f"{name}_{size[0]}x{size[1]}.toml"] if size else []) + [TEMPLATE_DIR / f"{name}.toml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise TemplateError(f"no template {name!r}" + (f" for {size[0]}x{size[1]}" if size else "")
                        + f"; shipped: {', '.join(available_templates())}")


def parse_template(data: Any, *, source: str = "<dict>", base_dir: Path | None = None) -> Template:
    """Validate a template's data (already parsed TOML/JSON); ``TemplateError`` names the field."""
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: the template must be a table/object")
    unknown = sorted(set(data) - {"name", "size", "currency", "date_format", "element"})
    if unknown:
        raise TemplateError(f"{source}: {unknown[0]}: unknown key (allowed: name, size, currency, date_format, "
                            "element)")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise TemplateError(f"{source}: name: required, a non-empty string")
    size = data.get("size")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and 8 <= v <= 2000 for v in size)):
            raise TemplateError(f"{source}: size: must be [width, height] in px")
        size = (int(size[0]), int(size[1]))
    currency = data.get("currency", "")
    date_format = data.get("date_format", "%d.%m.")
    if not isinstance(currency, str) or len(currency) > 4:
        raise TemplateError(f"{source}: currency: must be a string of at most 4 characters")
    if not isinstance(date_format, str) or "%" not in date_format:
        raise TemplateError(f"{source}: date_format: must be a strftime pattern such as '%d.%m.'")
    raw = data.get("element")
    if not isinstance(raw, list) or not raw:
        raise TemplateError(f"{source}: element: at least one [[element]] is required")
    elements = tuple(_element(item, f"{source}: element[{i}]", size, base_dir) for i, item in enumerate(raw))
    return Template(name=name, size=size, elements=elements, currency=currency, date_format=date_format,
                    source=source)


def _element(item: Any, where: str, size: tuple[int, int] | None, base_dir: Path | None) -> Element:
    if not isinstance(item, dict):
        raise TemplateError(f"{where}: must be a table/object")
    kind = item.get("type")
    if kind not in KINDS:
        raise TemplateError(f"{where}.type: must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(item) - _KEYS[kind])
    if unknown:
        raise TemplateError(f"{where}.{unknown[0]}: unknown key for a {kind} element "
                            f"(allowed: {', '.join(sorted(_KEYS[kind]))})")
    box = item.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_int(v) for v in box)
            and box[0] >= 0 and box[1] >= 0 and box[2] > 0 and box[3] > 0):
        raise TemplateError(f"{where}.box: must be [x, y, w, h] with non-negative integers, w and h > 0")
    if size is not None and (box[0] + box[2] > size[0] or box[1] + box[3] > size[1]):
        raise TemplateError(f"{where}.box: {box} reaches outside the {size[0]}x{size[1]} label")
    kw: dict[str, Any] = {"kind": kind, "box": tuple(int(v) for v in box)}
    kw["when"] = _choice(item, "when", ("always", "promo", "regular"), "always", where)
    if "text" in item:
        kw["text"] = _format(item["text"], f"{where}.text")
    elif kind == "text":
        raise TemplateError(f"{where}.text: required for a text element")
    if "font" in item:
        kw["font"] = _choice(item, "font", FONTS, "sans", where)
    for key in ("color", "promo_color", "fill"):
        if key in item:
            kw[key] = _choice(item, key, COLORS, "black", where)
    if "outline" in item:
        kw["outline"] = _choice(item, "outline", COLORS, "black", where)
    if "align" in item:
        kw["align"] = _choice(item, "align", ("left", "center", "right"), "left", where)
    for key, lo, hi in (("size", 6, 400), ("min_size", 6, 400), ("max_lines", 1, 10), ("width", 1, 50)):
        if key in item:
            if not _is_int(item[key]) or not lo <= item[key] <= hi:
                raise TemplateError(f"{where}.{key}: must be an integer between {lo} and {hi}")
            kw[key] = int(item[key])
    kw.setdefault("size", kw.get("size", 16))
    if kw.get("min_size", 8) > kw["size"]:
        kw["min_size"] = kw["size"]
    for key in ("digits", "dither"):
        if key in item:
            if not isinstance(item[key], bool):
                raise TemplateError(f"{where}.{key}: must be true or false")
            kw[key] = item[key]
    if kind == "qr":
        if not isinstance(item.get("data"), str) or not item["data"]:
            raise TemplateError(f"{where}.data: required for a qr element, e.g. \"https://shop.example/p/{{plu}}\"")
        kw["data"] = _format(item["data"], f"{where}.data")
    if kind == "image":
        raw = item.get("path")
        if not isinstance(raw, str) or not raw:
            raise TemplateError(f"{where}.path: required for an image element")
        path = Path(raw) if Path(raw).is_absolute() or base_dir is None else base_dir / raw
        if not path.is_file():
            raise TemplateError(f"{where}.path: image file {path} does not exist")
        kw["path"] = path
    return Element(**kw)


def _choice(item: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, where: str) -> str:
    value = item.get(key, default)
    if value not in allowed:
        raise TemplateError(f"{where}.{key}: must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _format(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{where}: must be a string")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise TemplateError(f"{where}: bad placeholder syntax: {exc}") from exc
    for f in fields:
        if f not in PLACEHOLDERS:
            raise TemplateError(f"{where}: unknown placeholder {{{f}}} (known: {', '.join(PLACEHOLDERS)})")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
