"""``python -m npusuite.fraud.service ARGS`` runs the same command as ``npusuite fraud run ARGS``."""

import sys

import click
import typer

from npusuite.fraud.service.command import run
from npusuite.platform import logs
from npusuite.platform.errors import UserError
from npusuite.platform.settings import LogSettings

if __name__ == "__main__":
    settings = LogSettings()
    logs.configure(settings.level, settings.format)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(run)
    try:
        typer.main.get_command(app).main(args=sys.argv[1:], prog_name="npusuite fraud run", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UserError as exc:
        print(f"npusuite: error: {exc}", file=sys.stderr)
        sys.exit(2)
