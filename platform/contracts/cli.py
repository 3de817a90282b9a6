"""``npusuite contracts``: generate and check the wire-format schemas in ``docs/contracts``.

``generate`` writes the files of :mod:`.generate` (JSON Schemas and
``asyncapi.yaml``); ``check`` exits 2 with one line naming the stale files
and the command that regenerates them.  Both only touch files they generate.
"""

from __future__ import annotations

from pathlib import Path

import typer

from npusuite.platform.errors import UserError

app = typer.Typer(no_args_is_help=True, add_completion=False)

_DIR_HELP = "Folder of the generated files."


@app.command("generate")
def generate_cmd(out: Path = typer.Option(Path("docs/contracts"), "--out", help=_DIR_HELP)) -> None:
    """Write one JSON Schema per topic and file format, and the AsyncAPI 3.0 document."""
    from npusuite.platform.contracts import generate

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is not a folder")
    changed = generate.write(out)
    typer.echo(f"{out}: {len(changed)} file(s) changed" + (f" ({', '.join(changed)})" if changed else ""))


@app.command("check")
def check_cmd(dir_: Path = typer.Option(Path("docs/contracts"), "--dir", help=_DIR_HELP)) -> None:
    """Exit 2 when the generated files in --dir are not what the records generate."""
    from npusuite.platform.contracts import generate

    stale = generate.stale(dir_)
    if stale:
        raise UserError(f"{dir_} is stale ({', '.join(stale)}): run `npusuite contracts generate --out {dir_}`")
    typer.echo(f"{dir_}: up to date")
