"""Bytes to a contract record: the one way every ingest body of the suite is parsed.

Rules, in order: the body is refused when it is larger than ``max_bytes``,
nested deeper than :data:`~npusuite.platform.records.MAX_JSON_DEPTH`, not
UTF-8 JSON, holds NaN/Infinity, or is not a JSON object
(:func:`~npusuite.platform.records.load_json_object`); then the record
validates it.  Every failure is a :class:`SchemaError` with one line naming the
first bad field (``field 'score': ...``); nothing else escapes, so a caller can
turn it into a 4xx body, a CLI error or a dead-letter reason.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from npusuite.platform.errors import SchemaError
from npusuite.platform.records import load_json_object, validation_reason

R = TypeVar("R", bound=BaseModel)


def parse_record(model: type[R], raw: bytes | str | dict, max_bytes: int | None = None,
                 whole: str = "body") -> R:
    """``raw`` as a validated ``model``.  Raises SchemaError only (``whole`` names an error without a field)."""
    try:
        return model.model_validate(load_json_object(raw, max_bytes=max_bytes))
    except ValidationError as exc:
        raise SchemaError(validation_reason(exc, whole)) from None
    except (ValueError, ArithmeticError) as exc:
        # pydantic passes on what a validator raises besides ValueError: a timestamp of year 1 with a
        # positive offset raises OverflowError when it is moved to UTC.
        raise SchemaError(f"{whole}: {exc}") from None
