"""Read a price-book CSV (``store-agent prices import``): one article per row, header required.

Columns: ``plu,name,price,unit`` (required) and optional ``promo_price,promo_start,promo_end,barcode,origin,
weight_min_kg,weight_max_kg``. Dates are epoch seconds or ISO 8601 (``2026-12-24`` or with a time; naive =
UTC). Empty cells are absent values. Errors name the line and field.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agent.pricebook.article import Article, ArticleError, article_from_dict

REQUIRED = ("plu", "name", "price", "unit")
OPTIONAL = ("promo_price", "promo_start", "promo_end", "barcode", "origin", "weight_min_kg", "weight_max_kg")


def read_csv(path: Path) -> list[Article]:
    """Parse and validate every row; raises ``ArticleError`` (``line 7.price: …``) on the first bad one."""
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ArticleError("header", f"missing column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}")
        unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
        if unknown:
            raise ArticleError("header", f"unknown column {unknown[0]!r}; allowed: {', '.join(REQUIRED + OPTIONAL)}")
        articles = []
        seen: set[str] = set()
        for row in reader:
            where = f"line {reader.line_num}"
            cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            article = article_from_dict(_to_fields(cells, where), where)
            if article.plu in seen:
                raise ArticleError(f"{where}.plu", f"PLU {article.plu!r} appears twice")
            seen.add(article.plu)
            articles.append(article)
    return articles


def _to_fields(cells: dict[str, str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"plu": cells["plu"], "name": cells["name"], "unit": cells["unit"]}
    for name in ("price", "promo_price"):
        if cells.get(name):
            out[name] = _number(cells[name], f"{where}.{name}")
    for name in ("promo_start", "promo_end"):
        if cells.get(name):
            out[name] = _timestamp(cells[name], f"{where}.{name}")
    for name in ("barcode", "origin"):
        if cells.get(name):
            out[name] = cells[name]
    lo, hi = cells.get("weight_min_kg"), cells.get("weight_max_kg")
    if lo or hi:
        out["typical_weight_kg"] = [_number(lo or hi or "", f"{where}.weight_min_kg"),
                                    _number(hi or lo or "", f"{where}.weight_max_kg")]
    return out


def _number(text: str, where: str) -> float:
    try:
        return float(text.replace(",", ".")) if text.count(",") == 1 and "." not in text else float(text)
    except ValueError:
        raise ArticleError(where, f"is not a number: {text!r}") from None


def _timestamp(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ArticleError(where, f"is neither epoch seconds nor an ISO date: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
