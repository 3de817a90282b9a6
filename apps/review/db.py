"""Database engine and migrations.

Rules:

- Any SQLAlchemy URL works; SQLite (the default) and PostgreSQL (through
  psycopg 3) are tested.  ``postgresql://`` is taken to mean psycopg 3.
- SQLite runs in WAL mode with a 30 s busy timeout and foreign keys on, so the
  web workers and the Kafka consumer thread can write side by side; every
  write is a short transaction.
- :func:`migrate` brings a database to the newest alembic revision and is
  safe to run at every start: ``npusuite review serve`` and every CLI command
  call it before touching tables.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from npusuite.platform.errors import UserError

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` -> ``postgresql+psycopg://``.  Raises UserError on a malformed URL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        make_url(url)
    except ArgumentError as exc:
        raise UserError(f"bad database URL {url!r}: {exc}") from None
    return url


def make_engine(url: str) -> Engine:
    """An engine for URL with this app's connection rules.  Raises UserError on a bad URL or a missing SQLite folder."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).resolve().parent
            if not folder.is_dir():
                raise UserError(f"database folder does not exist: {folder}")
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def alembic_config(engine: Engine):
    """An alembic Config for ENGINE's database, pointing at this package's migrations."""
    # alembic announces each plugin it sets up (at import) at INFO; keep our logs to what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision.  Raises UserError when the database cannot be reached."""
    cfg = alembic_config(engine)
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.begin() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            after = MigrationContext.configure(conn).get_current_revision()
    except Exception as exc:
        if isinstance(exc, UserError):
            raise
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            raise UserError(f"cannot open the review database {engine.url.render_as_string()}: {exc.orig}") from None
        raise
    if before != after:
        logger.info("review database %s migrated from %s to %s", engine.url.render_as_string(), before, after)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
