"""``npusuite review``: serve the case-review app and manage its users, tokens and labels.

The database is ``--db URL`` (a SQLAlchemy URL such as
``postgresql://user@host/db``, or a plain file path for SQLite), else
``NPUSUITE_REVIEW_DB``, else a SQLite file in the npusuite data folder.  Every
command migrates the database to the newest schema first.
"""

from __future__ import annotations

import getpass
import logging
import sys
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help=__doc__)

DB_HELP = "Database: a SQLAlchemy URL or a SQLite file path (default: NPUSUITE_REVIEW_DB, else a local SQLite file)."


def _db_url(db: str | None) -> str:
    from npusuite.platform.settings import ReviewSettings
    from npusuite.review.config import default_db_url, sqlite_url

    db = db or ReviewSettings().db
    if not db:
        return default_db_url()
    return db if "://" in db else sqlite_url(Path(db))


def _sessions(db: str | None):
    from npusuite.review.db import make_engine, migrate, session_factory

    engine = make_engine(_db_url(db))
    migrate(engine)
    return engine, session_factory(engine)


def _check_port_free(host: str, port: int) -> None:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port") from None


@app.command()
def serve(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8300, "--port", help="TCP port to listen on."),
    bootstrap: str | None = typer.Option(None, "--bootstrap", help=(
        "Kafka bootstrap servers to consume fraud alerts from (default: KAFKA_BOOTSTRAP; "
        "without either, cases arrive only through the HTTP ingest API).")),
    alerts_topic: str = typer.Option("fraud-alerts", "--alerts-topic", help="Topic of fraud alerts."),
    group: str = typer.Option("npusuite-review", "--group", help="Kafka consumer group id."),
    sla_decline_min: float = typer.Option(60.0, "--sla-decline-min", help="SLA for declined-transaction alerts."),
    sla_review_min: float = typer.Option(240.0, "--sla-review-min", help="SLA for review alerts."),
    sla_qc_severe_min: float = typer.Option(240.0, "--sla-qc-severe-min",
                                            help="SLA for severe inspection rejects (score >= 1.5x threshold)."),
    sla_inspection_min: float = typer.Option(480.0, "--sla-inspection-min", help="SLA for other inspection rejects."),
    cookie_secure: bool = typer.Option(False, "--cookie-secure", help="Mark cookies Secure (serve behind HTTPS)."),
) -> None:
    """Serve the review web app (pages, JSON API, ingest API) and consume fraud alerts.

    Example: npusuite review serve --port 8300 --bootstrap 127.0.0.1:9092
    then add a user with `npusuite review add-user alice --role analyst` and open http://127.0.0.1:8300/.
    """
    import uvicorn
    from pydantic import ValidationError

    from npusuite.platform.settings import KafkaSettings, ReviewSettings
    from npusuite.review.config import ReviewConfig
    from npusuite.review.consumer import AlertConsumer
    from npusuite.review.web.app import create_app

    _check_port_free(host, port)
    engine, sessions = _sessions(db)
    try:
        cfg = ReviewConfig(db_url=engine.url.render_as_string(), env_ingest_token=ReviewSettings().ingest_token,
                           sla_fraud_decline_min=sla_decline_min, sla_fraud_review_min=sla_review_min,
                           sla_qc_severe_min=sla_qc_severe_min, sla_inspection_min=sla_inspection_min,
                           cookie_secure=cookie_secure)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"bad setting {err['loc'][0]}: {err['msg']}") from None
    bootstrap = bootstrap or KafkaSettings().bootstrap
    consumer = AlertConsumer(bootstrap, sessions, cfg, topic=alerts_topic, group_id=group) if bootstrap else None
    if consumer is None:
        logger.info("no Kafka bootstrap given: fraud alerts arrive only through POST /api/ingest/fraud-alerts")
    logger.info("review app on http://%s:%d (database %s)", host, port, engine.url.render_as_string())
    uvicorn.run(create_app(cfg, sessions, consumer), host=host, port=port, log_level="warning",
                proxy_headers=False)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise UserError("the two passwords differ")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@app.command("add-user")
def add_user(
    name: str = typer.Argument(..., help="User name: letters, digits, '.', '_' or '-'."),
    role: str = typer.Option(..., "--role", help="analyst, supervisor or admin."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    update: bool = typer.Option(False, "--update", help="Change the password and role of an existing user."),
    team: list[str] | None = typer.Option(None, "--team", help=(
        "A team: fraud or qc, optionally with its role (fraud:supervisor); repeat for both. "
        "Default: both teams with --role (a new user), or the teams they had (--update).")),
) -> None:
    """Create a user; the password is read from stdin (first line), never from the command line.

    Example: printf '%s\\n' "$PASSWORD" | npusuite review add-user alice --role analyst --team fraud
    """
    from npusuite.review.accounts import create_user

    password = _read_password()
    if not password:
        raise UserError("no password on stdin: pipe it in, e.g. printf '%s\\n' \"$PASSWORD\" | "
                        "npusuite review add-user ...")
    _engine, sessions = _sessions(db)
    with sessions() as session:
        user = create_user(session, name, password, role, update=update, teams=team or None)
        teams = ", ".join(f"{t} {r}" for t, r in user.team_roles().items()) or "no team"
    typer.echo(f"user {user.username} ({user.role}; {teams}) saved")


@app.command("add-token")
def add_token(
    name: str = typer.Argument(..., help="Who will use the token, e.g. inspection-line-1."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Create a service token for the ingest API and print it (only its hash is stored; it is shown once).

    Use it as `Authorization: Bearer TOKEN` on POST /api/ingest/inspections and /api/ingest/fraud-alerts.
    """
    from npusuite.review.accounts import add_service_token

    _engine, sessions = _sessions(db)
    with sessions() as session:
        token = add_service_token(session, name)
    typer.echo(token)


@app.command("revoke-token")
def revoke_token(
    name: str = typer.Argument(..., help="The token's name, as given to add-token."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Revoke a service token: ingest calls with it are refused (401) from now on."""
    from npusuite.review.accounts import revoke_service_token

    _engine, sessions = _sessions(db)
    with sessions() as session:
        revoke_service_token(session, name)
    typer.echo(f"service token {name} revoked")


@app.command("export-labels")
def export_labels(
    out: Path = typer.Option(..., "--out", help="Folder to write labels and images to (created)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Write decided cases as training data for the next training run.

    OUT/fraud/labels.jsonl holds labels (docs/contracts.md); OUT/inspection/good/*.png are false rejects,
    OUT/inspection/defective/TYPE/*.png confirmed defects, OUT/inspection/decisions.jsonl describes each image.
    """
    from npusuite.review.export import export_labels as run_export

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    _engine, sessions = _sessions(db)
    with sessions() as session:
        summary = run_export(session, out)
    typer.echo(f"{summary.fraud_labels} fraud labels, {summary.good_images} good and "
               f"{summary.defective_images} defective images written to {out}")
