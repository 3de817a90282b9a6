"""Bytes to validated records: the part every edge parser of the suite shares.

Rule: a parser calls :func:`load_json_object` on what arrived, validates it
with its pydantic model, and turns a ``ValidationError`` into a
:class:`SchemaError` whose message is :func:`validation_reason` — one line
naming the first offending field, fit for a CLI error, an HTTP 4xx body or a
dead-letter header.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from npusuite.platform.errors import SchemaError


def load_json_object(raw: bytes | str | dict) -> dict:
    """Raises SchemaError when ``raw`` is not JSON or not a JSON object; a dict passes through."""
    data = raw
    if isinstance(raw, bytes | str):
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SchemaError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaError("not a JSON object")
    return data


def validation_reason(exc: ValidationError, whole: str = "record") -> str:
    """``field 'a.b': <pydantic's message>`` for the first error (``whole`` when it has no field)."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or whole
    return f"field '{field}': {err['msg']}"
