"""A poll batch's transaction values to validated records, with the least Python per record.

:func:`parse_values` gives, for each value, what
:func:`~npusuite.fraud.schema.parse_transaction` gives (the same
:class:`~npusuite.fraud.schema.Transaction`) or the :class:`SchemaError` it
raises (the same reason), never raising itself.  Rules, in order, per value:

1. ``None`` (a Kafka tombstone) is left to the caller (it is not a parse error);
2. a ``bytes`` value within :data:`~npusuite.fraud.schema.MAX_TRANSACTION_BYTES` whose
   bracket count is within the platform's JSON depth limit (the cheap test
   :func:`~npusuite.platform.records.check_json_shape` makes first) goes
   straight to the model's own pydantic-core validator (what
   ``Transaction.model_validate_json`` calls), one C call;
3. anything else, and anything that validator refuses, goes through
   :func:`parse_transaction` itself, which decides and words the reason exactly
   as it always has.

So validation is exactly as strict as :func:`parse_transaction`, by
construction: step 2 only accepts what step 3 would accept, through the same
validator.  Why not one ``validate_json`` over the whole batch joined into a
JSON array: a value need not be a whole JSON document, and two crafted values
can join into one valid element (a string or array opened in the first and
closed in the second), which would accept records that are refused alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from npusuite.fraud.schema import MAX_TRANSACTION_BYTES, SchemaError, Transaction, parse_transaction
from npusuite.platform.records import MAX_JSON_DEPTH

_validate_json = Transaction.__pydantic_validator__.validate_json


def parse_values(values: Sequence[bytes | None]) -> list[Transaction | SchemaError | None]:
    """One entry per value: the Transaction, the SchemaError that refuses it, or None for a None value."""
    out: list[Transaction | SchemaError | None] = []
    append = out.append
    for value in values:
        if value is None:
            append(None)
            continue
        if (value.__class__ is bytes and len(value) <= MAX_TRANSACTION_BYTES
                and value.count(b"[") + value.count(b"{") <= MAX_JSON_DEPTH):
            try:
                append(_validate_json(value))
                continue
            except ValidationError:
                pass  # worded below, exactly as parse_transaction words it
        try:
            append(parse_transaction(value))
        except SchemaError as exc:
            append(exc)
    return out
