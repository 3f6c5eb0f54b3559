"""``store-agent keys generate``: Ed25519 key pairs for signing cloud commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sync.signing import generate_keypair, write_private_key

app = typer.Typer(help="Manage command-signing keys.", no_args_is_help=True)


@app.command()
def generate(
    key_id: Annotated[str, typer.Option("--key-id", help="Name of the key, listed in commands.trusted_keys.")] = "cloud-1",
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where to write KEY_ID.key and KEY_ID.pub.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write KEY_ID.key (private, mode 0600: keep it in the cloud) and KEY_ID.pub (public, for stores)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    private, public = out_dir / f"{key_id}.key", out_dir / f"{key_id}.pub"
    if not force and (private.exists() or public.exists()):
        typer.echo(f"{private} or {public} exists; use --force to overwrite", err=True)
        raise typer.Exit(1)
    key, public_b64 = generate_keypair()
    write_private_key(key, private)
    public.write_text(public_b64 + "\n")
    typer.echo(f"private key: {private} (keep it secret, on the cloud side)")
    typer.echo(f"public key:  {public}")
    typer.echo(f'add to the store config:\n[commands.trusted_keys]\n"{key_id}" = "{public_b64}"')
