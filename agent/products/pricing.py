"""What a weighing costs: the price book's unit price applied to the weight (or an estimated piece count).

Example:
    >>> from agent.pricebook import Article
    >>> price_weighing(Article(plu="4011", name="Bananas", price=1.99, unit="kg"), 0.512, 0)
    {'unit_price': 1.99, 'unit': 'kg', 'quantity': 0.512, 'total': 1.02}
    >>> price_weighing(Article(plu="3", name="Melon", price=2.5, unit="piece", typical_weight_kg=(1.0, 2.0)), 3.1, 0)
    {'unit_price': 2.5, 'unit': 'piece', 'quantity': 2, 'total': 5.0}
"""

from __future__ import annotations

from typing import Any

KG_PER_LB = 0.45359237


def price_weighing(article: Any, weight_kg: float, at_ts: float) -> dict[str, Any]:
    """``unit_price`` (promo applied at ``at_ts``), ``unit``, ``quantity`` (kg/lb/100 g or pieces), ``total``."""
    price = float(article.price_at(at_ts))
    unit = article.unit
    if unit == "kg":
        qty: float = weight_kg
    elif unit == "100g":
        qty = weight_kg * 10.0
    elif unit == "lb":
        qty = weight_kg / KG_PER_LB
    else:
        piece = article.typical_weight_kg
        mean = (piece[0] + piece[1]) / 2.0 if piece else 0.0
        qty = max(1, round(weight_kg / mean)) if mean > 0 else 1
    return {"unit_price": price, "unit": unit, "quantity": round(qty, 3) if unit != "piece" else qty,
            "total": round(price * qty, 2)}
