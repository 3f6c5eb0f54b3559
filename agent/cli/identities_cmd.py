"""``store-agent identities ...``: key, enrolment, listing, forgetting, stats, alert decisions, audit log.

Works on the local store directly (the daemon may be running: it picks up enrolments and deletions within a few
seconds). Nothing printed here contains an embedding.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json
from sync.sqlite import transaction

app = typer.Typer(help="Face identity galleries: enrol, list, forget, stats, alerts, audit.", no_args_is_help=True)

KIND_HELP = "Gallery: member, vip, staff, watchlist (or optout: a person who refuses identification)."


def _conn(config: Path):  # noqa: ANN202 - (AgentConfig, sqlite3.Connection)
    from agent.store import connect, open_store

    cfg = load_or_exit(config)
    return cfg, connect(open_store(cfg.data_dir))


def _cipher(cfg):  # noqa: ANN001, ANN202
    from agent.identity.crypto import IdentityKeyError, load_cipher

    if cfg.identity.embedding_key_file is None:
        typer.echo("[identity] embedding_key_file is not set; create a key with `store-agent identities init-key "
                   "PATH` and set it in the config", err=True)
        raise typer.Exit(2)
    try:
        return load_cipher(cfg.identity.embedding_key_file)
    except IdentityKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


@app.command("init-key")
def init_key(path: Annotated[Path, typer.Argument(help="Where to write the key (mode 0600).")],
             force: Annotated[bool, typer.Option("--force", help="Overwrite (stored embeddings become "
                                                                 "unreadable).")] = False) -> None:
    """Create the AES-256 key that encrypts embeddings at rest; set its path as identity.embedding_key_file."""
    from agent.identity.crypto import generate_key_file

    try:
        generate_key_file(path, force=force)
    except FileExistsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"key written to {path} (mode 0600). Add to the config:\n[identity]\nembedding_key_file = \"{path}\"")


@app.command()
def stats(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Enrolled identities per gallery (what regulators ask for), visits, tombstones, pending alerts."""
    from agent.identity.repository import stats as gallery_stats

    _, conn = _conn(config)
    info = gallery_stats(conn)
    conn.close()
    if as_json:
        print_json(info)
        return
    for gallery, n in info["galleries"].items():
        typer.echo(f"{gallery:<10} {n}")
    typer.echo(f"watchlist by kind: {info['watchlist_kinds']}")
    typer.echo(f"visits {info['visits']}  tombstones {info['tombstones']}  pending alerts {info['pending_alerts']}")


@app.command("list")
def list_cmd(config: ConfigOption = DEFAULT_CONFIG,
             kind: Annotated[Optional[str], typer.Option("--kind", help="Only this gallery.")] = None,
             as_json: JsonOption = False) -> None:
    """Identities (ids, gallery, kind, reason, dates, embedding count; never the embeddings)."""
    from agent.identity import repository as repo

    _, conn = _conn(config)
    rows = [{"id": r.id, "gallery": r.gallery, "kind": r.kind, "reason": r.reason, "source": r.source,
             "created_at": r.created_at, "last_seen": r.last_seen, "expires_at": r.expires_at,
             "embeddings": repo.embedding_count(conn, r.id)} for r in repo.list_identities(conn, kind)]
    conn.close()
    if as_json:
        print_json({"identities": rows})
        return
    for r in rows:
        typer.echo(f"{r['id']}  {r['gallery']:<9} {r['kind'] or '':<8} embeddings {r['embeddings']}  "
                   f"{r['reason'] or ''}")


@app.command()
def forget(identity_id: Annotated[str, typer.Argument(help="Visitor, member, VIP, staff or watchlist id.")],
           config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Delete an identity with its embeddings and visits, leaving a tombstone so it is never re-enrolled."""
    from agent.identity import repository as repo
    from agent.identity.audit import forget as forget_identity

    _, conn = _conn(config)
    with transaction(conn):
        row = forget_identity(conn, identity_id, actor="cli", now=time.time())
    conn.close()
    out = {"id": identity_id, "deleted": row is not None, "gallery": row.gallery if row else None, "tombstone": True}
    if as_json:
        print_json(out)
    else:
        typer.echo(f"{identity_id}: {'deleted' if row else 'not found'}; tombstone recorded")


@app.command()
def enroll(
    kind: Annotated[str, typer.Option("--kind", help=KIND_HELP)],
    from_dir: Annotated[Path, typer.Option("--from-dir", help="Photos of ONE consenting person.", exists=True,
                                           file_okay=False)],
    config: ConfigOption = DEFAULT_CONFIG,
    identity_id: Annotated[Optional[str], typer.Option("--id", help="Id to use (default: a new ULID).")] = None,
    watchlist_kind: Annotated[str, typer.Option("--watchlist-kind", help="theft, scalper or custom.")] = "custom",
    reason: Annotated[Optional[str], typer.Option("--reason", help="Why (kept in the audit log).")] = None,
    expires_days: Annotated[Optional[float], typer.Option("--expires-days", help="Expiry of the entry.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol one person from a folder of photos; only embeddings are kept (encrypted), never the photos."""
    from agent.identity import repository as repo
    from agent.identity.audit import Tombstoned, enrol
    from agent.identity.enrolment import EnrolmentError, embed_folder

    if kind not in repo.ENROL_GALLERIES:
        typer.echo(f"--kind must be one of {', '.join(repo.ENROL_GALLERIES)}", err=True)
        raise typer.Exit(2)
    if kind == "watchlist" and watchlist_kind not in repo.WATCHLIST_KINDS:
        typer.echo(f"--watchlist-kind must be one of {', '.join(repo.WATCHLIST_KINDS)}", err=True)
        raise typer.Exit(2)
    cfg = load_or_exit(config)
    cipher = _cipher(cfg)
    from agent.identity.pipeline import FacePipeline

    pipeline = FacePipeline.from_config(cfg.identity, Path(cfg.models.dir))
    try:
        result = embed_folder(from_dir, pipeline.embed_photo, keep=cfg.identity.max_embeddings_per_identity)
    except EnrolmentError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    _, conn = _conn(config)
    now = time.time()
    new_id = identity_id or repo.new_id()
    try:
        with transaction(conn):
            enrol(conn, cipher, identity_id=new_id, gallery=kind,
                  kind=watchlist_kind if kind == "watchlist" else None, reason=reason, source="cli:enroll",
                  expires_at=now + expires_days * 86400.0 if expires_days else None, embeddings=result.embeddings,
                  actor="cli", now=now)
    except Tombstoned:
        typer.echo(f"{new_id} was deleted on request (tombstone) and cannot be enrolled again", err=True)
        raise typer.Exit(1) from None
    finally:
        conn.close()
    out = {"id": new_id, "gallery": kind, "photos": result.photos, "embeddings": len(result.embeddings),
           "skipped": result.skipped}
    if as_json:
        print_json(out)
    else:
        typer.echo(f"enrolled {new_id} in {kind}: {len(result.embeddings)} embedding(s) from {result.photos} "
                   f"photo(s); photos are not kept")


def _decide(alert_id: str, decision: str, config: Path, by: str, note: str, as_json: bool) -> None:
    from agent.identity.audit import record_alert_decision
    from sync.envelope import new_msg_id
    from sync.outbox import Outbox

    cfg, conn = _conn(config)
    outbox = Outbox(cfg.db_path, store_id=cfg.store_id, boot_id=new_msg_id(), priority_for=cfg.sync.priority_for)
    conn.execute("BEGIN IMMEDIATE")
    try:
        item = record_alert_decision(conn, alert_id, decision, actor=f"cli:{by}", now=time.time(), note=note)
        if item is not None:
            outbox.enqueue_in(conn, [item])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
        outbox.close()
    if as_json:
        print_json({"alert_id": alert_id, "decision": decision, "recorded": item is not None})
    elif item is None:
        typer.echo(f"no pending alert {alert_id}", err=True)
    else:
        typer.echo(f"alert {alert_id}: {decision} recorded in the audit log")
    if item is None:
        raise typer.Exit(1)


ByOption = Annotated[str, typer.Option("--by", help="Who decided (recorded in the audit log).")]
NoteOption = Annotated[str, typer.Option("--note", help="Optional note for the audit log.")]


@app.command()
def confirm(alert_id: Annotated[str, typer.Argument(help="Alert id from the alert message.")],
            config: ConfigOption = DEFAULT_CONFIG, by: ByOption = "staff", note: NoteOption = "",
            as_json: JsonOption = False) -> None:
    """A person checked and confirms the possible match."""
    _decide(alert_id, "confirm", config, by, note, as_json)


@app.command()
def dismiss(alert_id: Annotated[str, typer.Argument(help="Alert id from the alert message.")],
            config: ConfigOption = DEFAULT_CONFIG, by: ByOption = "staff", note: NoteOption = "",
            as_json: JsonOption = False) -> None:
    """A person checked and dismisses the possible match (not the same person)."""
    _decide(alert_id, "dismiss", config, by, note, as_json)


@app.command()
def alerts(config: ConfigOption = DEFAULT_CONFIG,
           status: Annotated[Optional[str], typer.Option("--status", help="pending, confirmed or dismissed.")] = None,
           as_json: JsonOption = False) -> None:
    """Watchlist and VIP alerts, newest first."""
    from agent.identity.audit import list_alerts

    _, conn = _conn(config)
    rows = list_alerts(conn, status=status)
    conn.close()
    if as_json:
        print_json({"alerts": rows})
        return
    for r in rows:
        typer.echo(f"{r['alert_id']}  {r['status']:<9} {r['gallery']:<9} {r['kind'] or '':<8} score {r['score']:.2f}"
                   f"  camera {r['camera']}")


@app.command()
def audit(config: ConfigOption = DEFAULT_CONFIG,
          limit: Annotated[int, typer.Option("--limit", help="Lines to show.")] = 50,
          as_json: JsonOption = False) -> None:
    """The audit log: watchlist changes, hits, confirmations, deletions, newest first."""
    from agent.identity.repository import audit_log

    _, conn = _conn(config)
    rows = audit_log(conn, limit=limit)
    conn.close()
    if as_json:
        print_json({"audit": rows})
        return
    for r in rows:
        typer.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['ts']))}  {r['action']:<17} "
                   f"{r['gallery'] or '':<9} {r['identity_id'] or ''}  by {r['actor']}  {r['detail']}")
