"""``store-agent prices list|show|import``: the local price book from the command line.

The cloud owns prices (signed ``price.update``); ``import`` is for stores without central pricing, the demo
and tests. It writes the agent's database directly (safe while the agent runs: SQLite WAL, short transaction).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json

app = typer.Typer(help="Price book: list articles, show one PLU's history, import a CSV.", no_args_is_help=True)

AtOption = Annotated[Optional[float], typer.Option("--at", help="Evaluate at this epoch time (default: now).")]


def _book(config: Path):  # noqa: ANN202 - PriceBook (imported lazily to keep the CLI fast)
    from agent.pricebook import PriceBook
    from agent.store import StoreError, connect, open_store

    cfg = load_or_exit(config)
    try:
        return PriceBook(connect(open_store(cfg.data_dir)))
    except StoreError as exc:
        typer.echo(f"cannot open the local store: {exc}", err=True)
        raise typer.Exit(2) from exc


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@app.command("list")
def list_prices(config: ConfigOption = DEFAULT_CONFIG, at: AtOption = None, as_json: JsonOption = False) -> None:
    """Every article in force now (or --at), with the price charged at that time."""
    book = _book(config)
    at_ts = time.time() if at is None else at
    articles = book.all(at_ts)
    if as_json:
        print_json({"version": book.version, "revision": book.revision, "at": at_ts,
                    "articles": [{**a.to_dict(), "price_now": a.price_at(at_ts)} for a in articles]})
        return
    typer.echo(f"price book version {book.version}, {len(articles)} articles")
    for a in articles:
        promo = " PROMO" if a.promo_active(at_ts) else ""
        typer.echo(f"  {a.plu:<10} {a.name[:32]:<32} {a.price_at(at_ts):>9.2f} / {a.unit}{promo}")


@app.command("show")
def show(plu: Annotated[str, typer.Argument(help="The article's PLU.")], config: ConfigOption = DEFAULT_CONFIG,
         at: AtOption = None, as_json: JsonOption = False) -> None:
    """One article in force now (or --at) and its timeline of changes, including scheduled ones."""
    book = _book(config)
    at_ts = time.time() if at is None else at
    article = book.get(plu, at_ts)
    history = book.history(plu)
    if article is None and not history:
        typer.echo(f"unknown PLU {plu!r}", err=True)
        raise typer.Exit(1)
    if as_json:
        print_json({"plu": plu, "at": at_ts, "article": article.to_dict() if article else None,
                    "price_now": article.price_at(at_ts) if article else None,
                    "history": [{"effective_at": c.effective_at, "version": c.version, "op": c.op,
                                 "article": c.article.to_dict() if c.article else None} for c in history]})
        return
    if article is None:
        typer.echo(f"{plu}: not in force at {_when(at_ts)}")
    else:
        typer.echo(f"{article.plu}  {article.name}  {article.price_at(at_ts):.2f} / {article.unit}"
                   f"{'  (promo)' if article.promo_active(at_ts) else ''}  v{article.version}")
        typer.echo(f"  unit price: {article.unit_price_text(article.price_at(at_ts))}")
    typer.echo("history:")
    for c in history:
        what = f"{c.article.price:.2f} / {c.article.unit}" if c.article else "deleted"
        typer.echo(f"  {_when(c.effective_at)}  v{c.version}  {c.op:<6} {what}")


@app.command("import")
def import_csv(file: Annotated[Path, typer.Argument(help="CSV with plu,name,price,unit[,promo_price,…].",
                                                    exists=True, dir_okay=False)],
               config: ConfigOption = DEFAULT_CONFIG,
               effective_at: Annotated[Optional[float], typer.Option(
                   "--effective-at", help="Epoch time from which the rows apply (default: now).")] = None,
               as_json: JsonOption = False) -> None:
    """Validate every row, then write them all in one transaction (nothing is written on any error)."""
    from agent.pricebook import ArticleError, read_csv

    try:
        articles = read_csv(file)
    except (ArticleError, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    book = _book(config)
    revision = book.upsert(articles, effective_at=effective_at)
    if as_json:
        print_json({"imported": len(articles), "revision": revision, "effective_at": effective_at})
    else:
        typer.echo(f"imported {len(articles)} articles (revision {revision})")
