"""PriceBook over a real SQLite store: the timeline of changes, promos, revisions and transitions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.pricebook import Article, ArticleError, PriceBook, article_from_dict
from agent.store import connect, open_store

T0 = 1_800_000_000.0


@pytest.fixture
def book(tmp_path: Path) -> PriceBook:
    return PriceBook(connect(open_store(tmp_path)))


def test_an_upserted_article_is_read_back_with_every_field(book: PriceBook) -> None:
    a = Article("4011", "Bananas 香蕉", 1.99, "kg", promo_price=1.49, promo_start=T0 + 10, promo_end=T0 + 20,
                barcode="4006381333931", origin="EC", typical_weight_kg=(0.1, 0.25))
    book.upsert([a], now=T0)
    assert book.get("4011", T0) == a
    assert book.all(T0) == [a]
    assert book.get("nope", T0) is None


def test_a_scheduled_change_applies_at_its_time_without_anything_running(book: PriceBook) -> None:
    book.upsert([Article("1", "Milk", 0.99, "piece")], now=T0)
    book.upsert([Article("1", "Milk", 1.09, "piece")], effective_at=T0 + 3600, now=T0)
    assert book.effective_price("1", T0 + 3599.9) == 0.99
    assert book.effective_price("1", T0 + 3600) == 1.09
    assert book.next_transition(T0 + 1) == T0 + 3600
    assert book.plus_changing_between(T0 + 1, T0 + 3600) == {"1"}
    assert book.plus_changing_between(T0 + 3600, T0 + 9999) == set()


def test_promo_price_applies_only_inside_its_validity(book: PriceBook) -> None:
    book.upsert([Article("2", "Cheese", 12.5, "kg", promo_price=9.99, promo_start=T0 + 100, promo_end=T0 + 200)],
                now=T0)
    assert [book.effective_price("2", T0 + dt) for dt in (99, 100, 199.9, 200)] == [12.5, 9.99, 9.99, 12.5]
    assert book.next_transition(T0 + 100) == T0 + 200
    assert book.plus_changing_between(T0 + 150, T0 + 250) == {"2"}


def test_delete_removes_from_its_effective_time_and_history_keeps_everything(book: PriceBook) -> None:
    book.upsert([Article("3", "Bread", 2.2, "piece"), Article("4", "Jam", 3.0, "piece")], now=T0)
    book.delete(["3"], effective_at=T0 + 50, now=T0)
    assert book.get("3", T0 + 49) is not None and book.get("3", T0 + 50) is None
    assert [a.plu for a in book.all(T0 + 60)] == ["4"]
    assert [c.op for c in book.history("3")] == ["upsert", "delete"]
    assert book.many(["3", "4", "x"], T0 + 60).keys() == {"4"}


def test_equal_effective_times_are_ordered_by_version_then_write_order(book: PriceBook) -> None:
    book.apply_delta(5, T0, [Article("5", "Tea", 4.0, "piece")], [], now=T0)
    book.apply_delta(6, T0 + 10, [Article("5", "Tea", 5.0, "piece")], [], now=T0)
    # A later delta (higher version) with the same effective time cancels the scheduled one.
    book.apply_delta(7, T0 + 10, [Article("5", "Tea", 4.0, "piece")], [], now=T0)
    assert book.effective_price("5", T0 + 20) == 4.0
    assert book.get("5", T0 + 20).version == 7
    assert book.version == 7


def test_revision_is_monotonic_and_names_the_changed_plus(book: PriceBook) -> None:
    r0 = book.revision
    r1 = book.upsert([Article("6", "Salt", 0.5, "piece")], now=T0)
    r2 = book.upsert([Article("7", "Sugar", 1.5, "piece")], effective_at=T0 + 999, now=T0)
    assert r0 < r1 < r2 == book.revision
    assert book.changed_plus_since(r1) == {"7"}
    assert book.changed_plus_since(r0) == {"6", "7"}


def test_local_upsert_does_not_advance_the_cloud_version(book: PriceBook) -> None:
    book.apply_delta(3, None, [Article("8", "Oil", 6.0, "piece")], [], now=T0)
    book.upsert([Article("8", "Oil", 6.5, "piece")], now=T0 + 1)
    assert book.version == 3


def test_a_failed_write_inside_a_batch_leaves_nothing(book: PriceBook) -> None:
    before = book.revision
    with pytest.raises(ArticleError, match=r"upsert\[1\]\.price"):
        book.apply_delta(1, None, [{"plu": "9", "name": "A", "price": 1, "unit": "kg"},
                                   {"plu": "10", "name": "B", "price": -1, "unit": "kg"}], [], now=T0)
    assert book.revision == before and book.all(T0) == [] and book.version == 0


def test_compact_keeps_the_article_in_force_and_future_changes(book: PriceBook) -> None:
    for i in range(5):
        book.upsert([Article("11", "Rice", 1.0 + i, "kg")], effective_at=T0 + i, now=T0)
    book.upsert([Article("11", "Rice", 9.0, "kg")], effective_at=T0 + 100, now=T0)
    removed = book.compact(T0 + 50)
    assert removed == 4
    assert book.effective_price("11", T0 + 50) == 5.0 and book.effective_price("11", T0 + 100) == 9.0


def test_writes_join_a_callers_transaction_without_committing_it(book: PriceBook, tmp_path: Path) -> None:
    book.conn.execute("BEGIN IMMEDIATE")
    book.upsert([Article("12", "Egg", 0.3, "piece")], now=T0)
    book.conn.execute("ROLLBACK")
    assert book.get("12", T0) is None
    other = sqlite3.connect(tmp_path / "agent.db")
    assert other.execute("SELECT COUNT(*) FROM pricebook_changes").fetchone()[0] == 0


@pytest.mark.parametrize(("data", "field"), [
    ({"plu": "1", "name": "x", "price": "1.99", "unit": "kg"}, "a.price"),
    ({"plu": "1", "name": "x", "price": float("nan"), "unit": "kg"}, "a.price"),
    ({"plu": "1", "name": "x", "price": 1.9999, "unit": "kg"}, "a.price"),
    ({"plu": "1", "name": "x", "price": 1, "unit": "gallon"}, "a.unit"),
    ({"plu": "1", "name": "x", "price": 1, "unit": "kg", "colour": "red"}, "a.colour"),
    ({"plu": "1 2", "name": "x", "price": 1, "unit": "kg"}, "a.plu"),
    ({"name": "x", "price": 1, "unit": "kg"}, "a.plu"),
    ({"plu": "1", "name": "x", "price": 1, "unit": "kg", "barcode": "4006381333932"}, "a.barcode"),
    ({"plu": "1", "name": "x", "price": 1, "unit": "kg", "promo_price": 1, "promo_start": 5, "promo_end": 4},
     "a.promo_end"),
    ({"plu": "1", "name": "x", "price": 1, "unit": "kg", "promo_start": 5}, "a.promo_price"),
    ({"plu": "1", "name": "x", "price": 1, "unit": "piece", "typical_weight_kg": [0.3, 0.1]},
     "a.typical_weight_kg"),
])
def test_invalid_articles_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ArticleError) as info:
        article_from_dict(data, "a")
    assert info.value.field == field


def test_barcode_of_12_digits_gets_its_check_digit_and_unit_prices_convert() -> None:
    a = article_from_dict({"plu": 7, "name": "Ham", "price": 1.29, "unit": "100g", "barcode": "400638133393"})
    assert a.plu == "7" and a.barcode == "4006381333931"
    assert a.price_per_kg() == pytest.approx(12.9)
    assert a.unit_price_text() == "1.29 / 100 g = 12.90 / kg"
    lb = Article("8", "Steak", 4.99, "lb")
    assert lb.price_per_kg() == pytest.approx(4.99 / 0.45359237)
    piece = Article("9", "Melon", 2.0, "piece", typical_weight_kg=(0.8, 1.2))
    assert piece.unit_price_text() == "2.00 / piece ≈ 2.00 / kg"
    assert Article("10", "Pen", 1.0, "piece").price_per_kg() is None
