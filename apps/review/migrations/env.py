"""Alembic environment: runs online against the connection handed in by
:func:`npusuite.review.db.migrate` (``config.attributes["connection"]``), or
builds an engine from ``sqlalchemy.url`` when run by the ``alembic`` tool."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from npusuite.review.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
