"""``python -m npusuite.fraud.service ARGS`` runs the same command as ``npusuite fraud run ARGS``."""

import sys

import typer

from npusuite.fraud.service.command import run
from npusuite.platform import logs
from npusuite.platform.cli import run_click
from npusuite.platform.settings import LogSettings

if __name__ == "__main__":
    settings = LogSettings()
    logs.configure(settings.level, settings.format)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(run)
    run_click(typer.main.get_command(app), sys.argv[1:], "npusuite fraud run")
