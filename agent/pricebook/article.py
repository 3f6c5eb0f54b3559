"""The ``Article`` record of the price book and its validation (shared by the scale and the shelf labels).

Validation errors name the field (``upsert[2].price``) so a cloud operator can fix the delta without reading
code. Prices are plain floats with at most 3 decimals; the currency is the store's, not the article's.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

UNITS: tuple[str, ...] = ("kg", "piece", "lb", "100g")
MAX_PRICE = 1_000_000.0
KG_PER_LB = 0.45359237
_PLU_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
#: Fields a delta may carry for one article (``version`` is set by the price book, not by the sender).
ARTICLE_FIELDS: tuple[str, ...] = ("plu", "name", "price", "unit", "promo_price", "promo_start", "promo_end",
                                   "barcode", "origin", "typical_weight_kg")
_REQUIRED = ("plu", "name", "price", "unit")


class ArticleError(ValueError):
    """An article that cannot enter the price book; ``field`` is the offending field path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Article:
    """One sellable item. ``price`` is per ``unit``; the promo applies while ``promo_start <= t < promo_end``
    (an open bound is unbounded). ``typical_weight_kg`` = (min, max) of a piece, for plausibility checks at
    the scale and the per-kg unit price of piece goods."""

    plu: str
    name: str
    price: float
    unit: str = "piece"
    promo_price: float | None = None
    promo_start: float | None = None
    promo_end: float | None = None
    barcode: str | None = None
    origin: str | None = None
    typical_weight_kg: tuple[float, float] | None = None
    version: int = 0

    def promo_active(self, at_ts: float) -> bool:
        """Whether the promo price applies at ``at_ts`` (epoch seconds)."""
        if self.promo_price is None:
            return False
        if self.promo_start is not None and at_ts < self.promo_start:
            return False
        return self.promo_end is None or at_ts < self.promo_end

    def price_at(self, at_ts: float) -> float:
        """The price to charge at ``at_ts``: the promo price while it runs, else the regular one."""
        return self.promo_price if self.promo_active(at_ts) and self.promo_price is not None else self.price

    def price_per_kg(self, price: float | None = None) -> float | None:
        """``price`` (default: the regular price) expressed per kg; None for piece goods of unknown weight."""
        p = self.price if price is None else price
        if self.unit == "kg":
            return p
        if self.unit == "100g":
            return p * 10.0
        if self.unit == "lb":
            return p / KG_PER_LB
        if self.typical_weight_kg is not None:
            mean = (self.typical_weight_kg[0] + self.typical_weight_kg[1]) / 2.0
            return p / mean if mean > 0 else None
        return None

    def unit_price_text(self, price: float | None = None, currency: str = "") -> str:
        """The unit-price line of a label, e.g. ``"1.29 / 100 g = 12.90 / kg"`` or ``"≈ 8.33 / kg"``."""
        p = self.price if price is None else price
        per_kg = self.price_per_kg(p)
        if self.unit == "kg":
            return f"{currency}{p:.2f} / kg"
        if self.unit == "100g":
            return f"{currency}{p:.2f} / 100 g = {currency}{per_kg:.2f} / kg"
        if self.unit == "lb":
            return f"{currency}{p:.2f} / lb = {currency}{per_kg:.2f} / kg"
        if per_kg is not None:
            return f"{currency}{p:.2f} / piece ≈ {currency}{per_kg:.2f} / kg"
        return f"{currency}{p:.2f} / piece"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``typical_weight_kg`` as a list)."""
        d = asdict(self)
        if self.typical_weight_kg is not None:
            d["typical_weight_kg"] = list(self.typical_weight_kg)
        return d

    def with_version(self, version: int) -> Article:
        """A copy carrying the price-book version that set it."""
        return replace(self, version=version)


def article_from_dict(data: Any, where: str = "article", *, version: int = 0) -> Article:
    """Validate one article dict (as sent in ``price.update``) and build the ``Article``.

    Raises ``ArticleError`` naming the field (``where`` prefixes it, e.g. ``upsert[3]``).
    """
    if not isinstance(data, dict):
        raise ArticleError(where, "must be an object with plu, name, price, unit")
    unknown = sorted(set(data) - set(ARTICLE_FIELDS))
    if unknown:
        raise ArticleError(f"{where}.{unknown[0]}", f"unknown field (allowed: {', '.join(ARTICLE_FIELDS)})")
    for name in _REQUIRED:
        if data.get(name) is None:
            raise ArticleError(f"{where}.{name}", "is required")
    plu = validate_plu(data["plu"], f"{where}.plu")
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ArticleError(f"{where}.name", "must be a non-empty string of at most 200 characters")
    unit = data["unit"]
    if unit not in UNITS:
        raise ArticleError(f"{where}.unit", f"must be one of {', '.join(UNITS)}, got {unit!r}")
    price = _price(data["price"], f"{where}.price")
    promo_price = _price(data["promo_price"], f"{where}.promo_price") if data.get("promo_price") is not None else None
    promo_start = _ts(data.get("promo_start"), f"{where}.promo_start")
    promo_end = _ts(data.get("promo_end"), f"{where}.promo_end")
    if promo_start is not None and promo_end is not None and promo_end <= promo_start:
        raise ArticleError(f"{where}.promo_end", "must be after promo_start")
    if (promo_start is not None or promo_end is not None) and promo_price is None:
        raise ArticleError(f"{where}.promo_price", "is required when promo_start or promo_end is given")
    barcode = validate_barcode(data.get("barcode"), f"{where}.barcode")
    origin = data.get("origin")
    if origin is not None and (not isinstance(origin, str) or len(origin) > 100):
        raise ArticleError(f"{where}.origin", "must be a string of at most 100 characters")
    weight = _weight(data.get("typical_weight_kg"), f"{where}.typical_weight_kg")
    return Article(plu=plu, name=name.strip(), price=price, unit=unit, promo_price=promo_price,
                   promo_start=promo_start, promo_end=promo_end, barcode=barcode, origin=origin,
                   typical_weight_kg=weight, version=version)


def validate_plu(value: Any, where: str = "plu") -> str:
    """A PLU as a string (integers are accepted and converted); 1-32 of ``A-Z a-z 0-9 _ . -``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not _PLU_RE.match(value):
        raise ArticleError(where, f"must be 1-32 characters of letters, digits, '_', '.', '-'; got {value!r}")
    return value


def ean13_check_digit(digits12: str) -> int:
    """The EAN-13 check digit of the first 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits12))
    return (10 - total % 10) % 10


def validate_barcode(value: Any, where: str = "barcode") -> str | None:
    """An EAN-13 (12 digits get their check digit appended; 13 must have the right one) or None."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value).zfill(13) if len(str(value)) > 12 else str(value).zfill(12)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) not in (12, 13):
        raise ArticleError(where, f"must be an EAN-13 of 12 or 13 digits, got {value!r}")
    check = ean13_check_digit(value[:12])
    if len(value) == 12:
        return value + str(check)
    if int(value[12]) != check:
        raise ArticleError(where, f"EAN-13 check digit of {value} should be {check}")
    return value


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArticleError(where, f"must be a number, got {value!r}")
    price = float(value)
    if not math.isfinite(price) or price < 0 or price > MAX_PRICE:
        raise ArticleError(where, f"must be between 0 and {MAX_PRICE:.0f}, got {value!r}")
    if abs(price * 1000 - round(price * 1000)) > 1e-6:
        raise ArticleError(where, f"has more than 3 decimals: {value!r}")
    return round(price, 3)


def _ts(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) \
            or value < 0:
        raise ArticleError(where, f"must be epoch seconds (a non-negative number) or null, got {value!r}")
    return float(value)


def _weight(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ArticleError(where, "must be [min_kg, max_kg] or a single number")
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo or hi > 1000:
        raise ArticleError(where, f"must satisfy 0 < min <= max <= 1000, got {list(value)!r}")
    return (lo, hi)
