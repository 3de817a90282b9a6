"""The ``npusuite`` command: one group per component.

Groups are looked up by module name and added only when their module exists,
so a component that is not built yet simply does not appear (no stubs).  Each
group module exposes ``app: typer.Typer`` and must import heavy libraries
(torch, transformers, cv2) inside its commands, so ``npusuite --help`` stays
fast.

Errors: a :class:`~npusuite.platform.errors.UserError` becomes one line on
stderr and exit status 2; any other exception is also reported in one line
(exit 1), with the traceback only under ``--debug``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from typing import NoReturn

import click
import typer

from npusuite.platform import logs
from npusuite.platform.errors import UserError
from npusuite.platform.settings import LogSettings

logger = logging.getLogger(__name__)

#: (group name, module, one-line help).  Order is the order in ``--help``.
GROUPS: list[tuple[str, str, str]] = [
    ("kafka", "npusuite.platform.kafka.cli", "Run a real single-node Apache Kafka 4.x broker locally."),
    ("platform", "npusuite.platform.serving.cli", "Serve models over KServe v2 / OpenAI HTTP; make test models."),
    ("models", "npusuite.platform.repository.cli", "Manage the model repository: add, list, promote, roll back."),
    ("contracts", "npusuite.platform.contracts.cli", "Generate and check the wire formats' JSON Schemas and AsyncAPI."),
    ("fraud", "npusuite.fraud.cli", "Generate, train, score and evaluate fraud models; run the live scorer."),
    ("review", "npusuite.review.cli", "The case-review web app for fraud analysts and QC engineers."),
    ("inspection", "npusuite.inspection.cli", "Generate, train and run visual defect inspection."),
    ("edge", "npusuite.edge.cli", "Edge agent, signed releases and fleet rollouts."),
    ("ops", "npusuite.platform.ops.cli", "AIOps from Prometheus: anomalies, root cause, scaling advice, report."),
    ("demo", "npusuite.platform.demo", "Start the whole suite on local defaults."),
]


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="npusuite",
        help=(
            "npusuite: one inference platform for streaming fraud scoring and edge visual "
            "inspection, on Ascend NPUs, CUDA or CPU.\n\n"
            "Start everything locally with `npusuite demo`, or see `npusuite GROUP --help`."
        ),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Verbose logs and full tracebacks."),
        log_json: bool = typer.Option(False, "--log-json", help="Structured JSON log lines."),
    ) -> None:
        settings = LogSettings()
        logs.configure("DEBUG" if debug else settings.level, "json" if log_json else settings.format)

    for name, module, help_text in GROUPS:
        if not _module_exists(module):
            continue
        sub = importlib.import_module(module)
        if isinstance(sub.app, typer.Typer):
            app.add_typer(sub.app, name=name, help=help_text)
        else:  # a single command
            app.command(name=name, help=help_text)(sub.app)
    return app


def run_click(command: click.Command, args: list[str], prog_name: str) -> NoReturn:
    """Run a click/typer command and exit; errors become one line on stderr, never a traceback."""
    debug = "--debug" in args
    try:
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        print("npusuite: aborted", file=sys.stderr)
        sys.exit(130)
    except (click.ClickException, typer.TyperException) as exc:  # typer >= 0.2x vendors its own click
        if hasattr(exc, "show"):
            exc.show()
        else:
            print(f"npusuite: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except UserError as exc:
        print(f"npusuite: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # one line, never a bare traceback
        if debug:
            logger.exception("unexpected error")
        print(f"npusuite: error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def main(argv: list[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    run_click(typer.main.get_command(build_app()), args, "npusuite")
