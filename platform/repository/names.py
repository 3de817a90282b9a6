"""Names of models, versions and aliases: the one pattern every boundary checks.

Rules: a name is 1-128 characters of letters, digits, ``.``, ``_`` and ``-``,
starts with a letter or digit, and never contains ``..``; so it is one path
component that cannot climb out of the model root.  HTTP routes check it
before anything else (400), and the repository checks it again, plus that
the resolved folder stays under its root, before touching the disk (defence
in depth).  :class:`InvalidNameError` is a ``UserError``.
"""

from __future__ import annotations

import re
from pathlib import Path

from npusuite.platform.errors import UserError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


class InvalidNameError(UserError):
    """A model, version or alias name that does not follow :data:`NAME_PATTERN`."""


def is_valid_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME.fullmatch(value)) and ".." not in value


def check_name(what: str, value: object) -> str:
    """Return ``value`` when it is a valid name; raises InvalidNameError naming ``what``."""
    if not is_valid_name(value):
        shown = value if not isinstance(value, str) or len(value) <= 140 else value[:140] + "..."
        raise InvalidNameError(f"invalid {what} {shown!r}: use 1-128 letters, digits, '.', '_' or '-', "
                               f"starting with a letter or digit, without '..'")
    return value


def folder_under(root: Path, *parts: str) -> Path:
    """``root/part/...`` after checking that it resolves inside ``root``; raises InvalidNameError."""
    folder = root.joinpath(*parts)
    base = root.resolve()
    resolved = folder.resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidNameError(f"{'/'.join(parts)!r} resolves outside the model root")
    return folder
