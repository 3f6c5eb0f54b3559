"""``store-agent esl ...``: shelf labels from the command line (preview a label; pick, find, simulate-ap).

Rendering lives in ``devices.esl.render``; gateway-side commands (pick, find, simulate-ap) in ``agent.esl``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from agent.cli.common import DEFAULT_CONFIG, ConfigOption, JsonOption, load_or_exit, print_json
from devices.esl.model import LABEL_TYPES

app = typer.Typer(help="Electronic shelf labels: preview, pick, find, simulator.", no_args_is_help=True)


@app.command("preview")
def preview(plu: Annotated[str, typer.Argument(help="The article's PLU (from the price book).")],
            label_type: Annotated[str, typer.Option("--label-type", "-t",
                                                    help=f"Label hardware type: {', '.join(LABEL_TYPES)}.")],
            out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
            template: Annotated[Optional[str], typer.Option(
                "--template", help="Template name or .toml/.json path (default: the type's default).")] = None,
            at: Annotated[Optional[float], typer.Option("--at", help="Render as at this epoch time.")] = None,
            scale: Annotated[int, typer.Option("--scale", min=1, max=8, help="Enlarge the PNG n× (nearest).")] = 1,
            config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Render the label of PLU for a label type from the price book and write it as PNG."""
    from agent.pricebook import PriceBook
    from agent.store import StoreError, connect, open_store
    from devices.esl.fonts import FontError
    from devices.esl.render import RenderError, render_label
    from devices.esl.templates import TemplateError, load_template

    if label_type not in LABEL_TYPES:
        typer.echo(f"unknown label type {label_type!r}; known: {', '.join(LABEL_TYPES)}", err=True)
        raise typer.Exit(2)
    lt = LABEL_TYPES[label_type]
    try:
        tpl = load_template(template or lt.default_template, lt)
    except TemplateError as exc:
        typer.echo(f"template error: {exc}", err=True)
        raise typer.Exit(2) from exc
    cfg = load_or_exit(config)
    try:
        book = PriceBook(connect(open_store(cfg.data_dir)))
    except StoreError as exc:
        typer.echo(f"cannot open the local store: {exc}", err=True)
        raise typer.Exit(2) from exc
    at_ts = time.time() if at is None else at
    article = book.get(plu, at_ts)
    if article is None:
        typer.echo(f"unknown PLU {plu!r} (not in the price book at that time; see `store-agent prices list`)",
                   err=True)
        raise typer.Exit(1)
    try:
        rendered = render_label(article, lt, tpl, at_ts)
    except (RenderError, FontError) as exc:
        typer.echo(f"cannot render {plu} on {label_type}: {exc}", err=True)
        raise typer.Exit(2) from exc
    image = rendered.image
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), 0)
    image.save(out)
    info = {"plu": plu, "label_type": label_type, "template": tpl.name, "hash": rendered.hash,
            "size": [rendered.image.width, rendered.image.height], "out": str(out)}
    if as_json:
        print_json(info)
    else:
        typer.echo(f"wrote {out} ({lt.width}x{lt.height}, {lt.colors}) hash {rendered.hash[:16]}")


# Gateway-side commands (pick, find, labels, simulate-ap) live in their own module.
from agent.cli import esl_gateway_cmd  # noqa: E402

esl_gateway_cmd.register(app)
