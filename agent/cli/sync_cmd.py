"""``store-agent sync status|dead-letters``: the outbox as the local store sees it."""

from __future__ import annotations

import sqlite3

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json

app = typer.Typer(help="Inspect the store-and-forward outbox.", no_args_is_help=True)


def _open_ro(config) -> sqlite3.Connection:
    cfg = load_or_exit(config)
    if not cfg.db_path.exists():
        typer.echo(f"no local store at {cfg.db_path}", err=True)
        raise typer.Exit(1)
    return sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)


@app.command("status")
def sync_status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Per stream: priority, depth, enqueued, acked, shed, expired, rejected, oldest pending message age."""
    conn = _open_ro(config)
    try:
        rows = conn.execute(
            "SELECT s.stream, s.priority, s.depth, s.enqueued, s.acked, s.shed, s.expired, s.rejected,"
            " (SELECT strftime('%s','now') - MIN(o.enqueued_at) FROM outbox o WHERE o.stream = s.stream)"
            " FROM outbox_streams s ORDER BY s.priority, s.stream").fetchall()
    finally:
        conn.close()
    keys = ("stream", "priority", "depth", "enqueued", "acked", "shed", "expired", "rejected", "oldest_age_s")
    data = [dict(zip(keys, r, strict=True)) for r in rows]
    if as_json:
        print_json(data)
        return
    for d in data:
        typer.echo("  ".join(f"{k}={d[k]}" for k in keys))


@app.command("dead-letters")
def dead_letters(config: ConfigOption = DEFAULT_CONFIG, limit: int = 50) -> None:
    """Messages the broker refused for good (e.g. not authorised), newest first."""
    conn = _open_ro(config)
    try:
        rows = conn.execute("SELECT msg_id, stream, seq, reason, failed_at FROM outbox_dead ORDER BY failed_at DESC"
                            " LIMIT ?", (limit,)).fetchall()
    finally:
        conn.close()
    print_json([dict(zip(("msg_id", "stream", "seq", "reason", "failed_at"), r, strict=True)) for r in rows])
