"""``store-agent cloud serve|send|summary``: the reference cloud receiver and command sender."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import print_json
from agent.config import parse_broker_url
from agent.logs import setup_logging
from sync.cloud.commands import build_command
from sync.cloud.receiver import CloudReceiver, ReceiverSettings
from sync.cloud.sender import send_command
from sync.cloud.store import CloudStore
from sync.settings import TlsSettings
from sync.signing import load_private_key

app = typer.Typer(help="Reference cloud: receive, deduplicate, acknowledge; sign and send commands.",
                  no_args_is_help=True)

BrokerOpt = Annotated[str, typer.Option("--broker", help="mqtt://host:port or mqtts://host:port")]
DbOpt = Annotated[Path, typer.Option("--db", help="The cloud's SQLite database.")]
CaOpt = Annotated[Optional[Path], typer.Option("--tls-ca", help="CA file (mqtts).")]
CertOpt = Annotated[Optional[Path], typer.Option("--tls-cert", help="Client certificate (mutual TLS).")]
TlsKeyOpt = Annotated[Optional[Path], typer.Option("--tls-key", help="Client certificate's key.")]


def _settings(broker: str, ca: Path | None, cert: Path | None, key: Path | None, client_id: str,
              share_group: str | None = "cloud") -> ReceiverSettings:
    address = parse_broker_url(broker)
    return ReceiverSettings(host=address.host, port=address.port, client_id=client_id, share_group=share_group,
                            tls=TlsSettings(enabled=address.use_tls, ca_file=ca, cert_file=cert, key_file=key))


@app.command()
def serve(broker: BrokerOpt = "mqtt://127.0.0.1:1883", db: DbOpt = Path("cloud.db"),
          client_id: Annotated[str, typer.Option(help="MQTT client id (unique per receiver).")] = "store-cloud-receiver",
          share_group: Annotated[str, typer.Option(help="MQTT 5 shared-subscription group; '' to subscribe "
                                                        "directly.")] = "cloud",
          tls_ca: CaOpt = None, tls_cert: CertOpt = None, tls_key: TlsKeyOpt = None) -> None:
    """Receive every store's messages until interrupted."""
    setup_logging()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    receiver = CloudReceiver(_settings(broker, tls_ca, tls_cert, tls_key, client_id, share_group or None), db)
    receiver.run(stop)
    typer.echo(json.dumps(dict(receiver.counts)))


@app.command()
def send(
    kind: Annotated[str, typer.Argument(help="Command kind, e.g. ping, config.update, sync.resend.")],
    store: Annotated[str, typer.Option("--store", help="Target store id.")],
    body: Annotated[str, typer.Option("--body", help="Command body as a JSON object.")] = "{}",
    key: Annotated[Path, typer.Option("--key", help="Private signing key (from `keys generate`).")] = Path("cloud-1.key"),
    key_id: Annotated[Optional[str], typer.Option("--key-id", help="Key id; default: the key file's stem.")] = None,
    version: Annotated[Optional[int], typer.Option(help="Resource version; default: now in ms.")] = None,
    ttl: Annotated[float, typer.Option(help="Seconds until the command expires.")] = 3600.0,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the store's result.")] = 10.0,
    broker: BrokerOpt = "mqtt://127.0.0.1:1883",
    db: Annotated[Optional[Path], typer.Option("--db", help="Record it in the cloud DB for re-sends.")] = None,
    tls_ca: CaOpt = None, tls_cert: CertOpt = None, tls_key: TlsKeyOpt = None,
) -> None:
    """Sign and send a command; print the store's result; exit 0 only if it was applied."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        typer.echo(f"--body is not JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(payload, dict):
        typer.echo("--body must be a JSON object", err=True)
        raise typer.Exit(2)
    cmd = build_command(kind, store, payload, key=load_private_key(key), key_id=key_id or key.stem,
                        version=version, ttl_s=ttl)
    settings = _settings(broker, tls_ca, tls_cert, tls_key, "unused")
    try:
        result = send_command(settings, cmd, wait_s=wait, db_path=db)
    except ConnectionError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3) from exc
    if result is None:
        print_json({"cmd_id": cmd["cmd_id"], "status": "no_result", "waited_s": wait})
        raise typer.Exit(1)
    print_json(result)
    if result.get("status") != "applied":
        raise typer.Exit(1)


@app.command()
def summary(db: DbOpt = Path("cloud.db")) -> None:
    """Per store and stream: received, duplicates, sequence range and gaps."""
    store = CloudStore(db)
    try:
        print_json(store.summary())
    finally:
        store.close()
