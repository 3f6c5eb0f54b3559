"""Render many labels on every core: a process pool fed in chunks, plus the render benchmark.

The pool uses the ``spawn`` start method: the agent has threads (MQTT, supervisor), and forking a threaded
process can copy a held lock into the child. Workers cache fonts and templates, so only the first chunk pays
for loading them.

Example::

    with BatchRenderer(processes=2) as pool:
        out = pool.render([RenderJob(article, "29bwr", "standard", now), ...])   # list[RenderedLabel]
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from devices.esl.model import LABEL_TYPES
from devices.esl.render import RenderedLabel, render_label
from devices.esl.templates import load_template


@dataclass(frozen=True, slots=True)
class RenderJob:
    """One label to draw: the article (picklable), the label type name, the template (None = the type's
    default; a name or a file path) and the time whose promo state to show."""

    article: Any
    label_type: str
    template: str | None = None
    at_ts: float = 0.0


def render_one(job: RenderJob) -> RenderedLabel:
    """Render one job in this process."""
    lt = LABEL_TYPES[job.label_type]
    return render_label(job.article, lt, load_template(job.template or lt.default_template, lt), job.at_ts)


def _render_chunk(jobs: Sequence[RenderJob]) -> list[tuple[bytes, int, int, str, str]]:
    out = []
    for job in jobs:
        r = render_one(job)
        out.append((r.image.tobytes(), r.image.width, r.image.height, job.label_type, r.hash))
    return out


def _rebuild(raw: tuple[bytes, int, int, str, str]) -> RenderedLabel:
    pixels, w, h, type_name, digest = raw
    image = Image.frombytes("P", (w, h), pixels)
    image.putpalette([c for rgb in LABEL_TYPES[type_name].palette for c in rgb])
    return RenderedLabel(image, digest)


class BatchRenderer:
    """A pool of render processes (``processes=1`` renders in the calling process, no pool)."""

    def __init__(self, processes: int | None = None, chunk_size: int = 64) -> None:
        self.processes = max(1, processes or os.cpu_count() or 1)
        self.chunk_size = chunk_size
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> BatchRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def render(self, jobs: Sequence[RenderJob]) -> list[RenderedLabel]:
        """Render ``jobs`` in order; exceptions from a job (e.g. ``RenderError``) propagate."""
        if self.processes == 1 or len(jobs) < 2 * self.chunk_size:
            return [render_one(j) for j in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        chunks = [list(jobs[i:i + self.chunk_size]) for i in range(0, len(jobs), self.chunk_size)]
        results: list[RenderedLabel] = []
        for part in self._pool.map(_render_chunk, chunks):
            results.extend(_rebuild(raw) for raw in part)
        return results

    def warm_up(self) -> None:
        """Start the workers now (spawn + imports take ~1 s) instead of on the first batch."""
        if self.processes > 1 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
            list(self._pool.map(_noop, range(self.processes)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _noop(_: int) -> None:
    return None


def bench_render(n_labels: int, processes: int = 2, article_factory: Any = None) -> float:
    """Render ``n_labels`` labels of mixed types (every shipped type in turn; a third on promo, some CJK
    names) with ``processes`` workers; returns labels per second (pool start-up excluded).

    ``article_factory(i) -> article`` supplies the articles (default: :func:`bench_articles`).
    """
    return bench_render_details(n_labels, processes, article_factory)["render_labels_per_s"]


def bench_render_details(n_labels: int, processes: int = 2, article_factory: Any = None) -> dict[str, Any]:
    """:func:`bench_render` with the figures behind it (seconds, per-type counts, distinct hashes)."""
    make = article_factory or bench_article
    at = 1_800_000_000.0
    types = list(LABEL_TYPES)
    jobs = [RenderJob(make(i, at), types[i % len(types)], None, at) for i in range(n_labels)]
    with BatchRenderer(processes) as pool:
        pool.warm_up()
        t0 = time.perf_counter()
        out = pool.render(jobs)
        elapsed = time.perf_counter() - t0
    return {"labels": n_labels, "processes": pool.processes, "seconds": round(elapsed, 3),
            "render_labels_per_s": round(n_labels / elapsed, 1) if elapsed > 0 else 0.0,
            "distinct_hashes": len({r.hash for r in out}),
            "types": {t: sum(1 for j in jobs if j.label_type == t) for t in types}}


_NAMES = ("Organic Bananas", "Whole Milk 3.5% 1 l", "Sourdough Rye Bread", "有机香蕉", "Emmental Cheese sliced",
          "特级初榨橄榄油 Olive Oil", "Free-range Eggs x10", "Atlantic Salmon Fillet", "苹果 Fuji Apples",
          "Dark Chocolate 70% Cocoa 100 g")


@dataclass(frozen=True, slots=True)
class BenchArticle:
    """A self-contained article for the benchmark (same fields and methods as the price book's)."""

    plu: str
    name: str
    price: float
    unit: str
    promo_price: float | None
    promo_start: float | None
    promo_end: float | None
    barcode: str | None
    origin: str | None
    typical_weight_kg: tuple[float, float] | None = None

    def promo_active(self, at_ts: float) -> bool:
        return (self.promo_price is not None and (self.promo_start is None or self.promo_start <= at_ts)
                and (self.promo_end is None or at_ts < self.promo_end))

    def price_at(self, at_ts: float) -> float:
        return self.promo_price if self.promo_active(at_ts) and self.promo_price is not None else self.price

    def unit_price_text(self, price: float | None = None, currency: str = "") -> str:
        p = self.price if price is None else price
        return f"{currency}{p:.2f} / {self.unit}"


def bench_article(i: int, at: float) -> BenchArticle:
    """The i-th synthetic article: varied names (some CJK), prices, units, a third on promo."""
    from devices.esl.barcode import check_digit

    body = f"400{i:09d}"[-12:]
    price = round(0.49 + (i * 37 % 2000) / 100, 2)
    promo = i % 3 == 0
    return BenchArticle(plu=str(1000 + i), name=f"{_NAMES[i % len(_NAMES)]} #{i}", price=price,
                        unit=("kg", "piece", "100g")[i % 3], promo_price=round(price * 0.8, 2) if promo else None,
                        promo_start=at - 3600 if promo else None, promo_end=at + 7 * 86400 if promo else None,
                        barcode=body + str(check_digit(body)), origin="EC" if i % 2 else None)
