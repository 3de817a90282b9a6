"""Errors that carry a message meant for the person at the keyboard.

Rule: anything raised as :class:`UserError` (or a subclass) is printed by the
CLI as one line, ``npusuite: error: <message>``, and the command exits with
status 2.  It is for bad input and missing prerequisites: a file that does not
exist, a schema violation, an unknown model, a busy port, a missing Java.
Programming errors stay ordinary exceptions; the CLI still reports them in one
line (and the traceback only with ``--debug``).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing prerequisite; the message says which and how to fix it."""


class NotFoundError(UserError):
    """A named thing (file, model, version, case) does not exist."""


class SchemaError(UserError):
    """Input does not match its contract (the wire formats: docs/contracts.md, npusuite.platform.contracts)."""
