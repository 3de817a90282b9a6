"""Which failures are the infrastructure's and which are the record's, and how to name them.

Rules (the alert consumer and the HTTP API both follow them):

- A failure is *transient* when it says nothing about the record: the
  database could not be reached or was busy (SQLAlchemy ``OperationalError``,
  ``InterfaceError``, ``DisconnectionError``, pool ``TimeoutError``, any error
  that invalidated its connection) or the broker could not be reached (a
  ``KafkaError``).  A transient failure is retried, and the record it
  happened on is neither dead-lettered nor answered as the caller's fault.
- Everything else is the record's: a value the database refuses
  (``DataError``, e.g. a NUL character in a PostgreSQL text column), a
  constraint, or any bug its content reaches.  Retrying would fail the same
  way forever, so the consumer dead-letters the record and goes on, and the
  API answers 4xx/500 for that request only.
- :func:`one_line` names a failure in one bounded line (type and message), for
  a dead-letter header or a log line; it never goes into an HTTP body.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

#: Longest reason a dead-letter header carries.
MAX_REASON_CHARS = 500

_TRANSIENT_DB = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """True when EXC is the infrastructure's (retry), False when it is the record's (dead-letter / refuse)."""
    if isinstance(exc, _TRANSIENT_DB):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    try:
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - kafka-python is a dependency of the suite
        return False
    return isinstance(exc, KafkaError)


def first_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """The first non-empty line of TEXT, cut to LIMIT characters (with ``...`` when cut)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def one_line(exc: BaseException, limit: int = MAX_REASON_CHARS) -> str:
    """``Type: message`` on one line of at most LIMIT characters (SQL and parameters left out)."""
    # SQLAlchemy's message runs on with the statement and its parameters; the driver's own message is the reason.
    message = str(exc.orig) if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else str(exc)
    return first_line(f"{type(exc).__name__}: {message}", limit)


def database_refusal(exc: BaseException) -> str | None:
    """The driver's one-line reason when the database refused a value of the record (DataError), else None."""
    if isinstance(exc, sa_exc.DataError):
        return first_line(str(exc.orig) if exc.orig is not None else "value refused", 200)
    return None
