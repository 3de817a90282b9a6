"""Bytes to validated records: the part every edge parser of the suite shares.

Rule: a parser calls :func:`load_json_object` on what arrived, validates it
with its pydantic model, and turns a ``ValidationError`` into a
:class:`SchemaError` whose message is :func:`validation_reason` — one line
naming the first offending field, fit for a CLI error, an HTTP 4xx body or a
dead-letter header.

Hostile input is refused *before* it is parsed: a body over ``max_bytes`` or
nested deeper than ``max_depth`` (arrays and objects, :data:`MAX_JSON_DEPTH`
by default) is a :class:`SchemaError`, never a ``RecursionError`` or a
gigabyte of Python objects.  ``NaN`` and ``±Infinity`` are not JSON (RFC 8259)
and are refused too, so nothing non-finite enters a record through here.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from npusuite.platform.errors import SchemaError

#: Deepest nesting of arrays and objects any record of the suite accepts; the
#: suite's own records nest at most 4 deep.
MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes | str) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (brackets inside strings do not count).

    Never raises: malformed JSON gets an approximate depth, and the parser that
    runs after this check reports what is wrong with it.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest


def check_json_shape(raw: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raises SchemaError when ``raw`` is larger than ``max_bytes`` or nests deeper than ``max_depth``.

    Cheap when the body is flat: it counts brackets first and scans only when
    there are more than ``max_depth`` of them.
    """
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if max_bytes is not None and size > max_bytes:
        raise SchemaError(f"body of {size} bytes is larger than the limit of {max_bytes} bytes")
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return
    depth = json_depth(data)
    if depth > max_depth:
        raise SchemaError(f"JSON nested {depth} deep; at most {max_depth} levels are accepted")


def _refuse_constant(name: str) -> float:
    raise SchemaError(f"not valid JSON: {name} is not a JSON number")


def load_json(raw: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Any JSON value, after :func:`check_json_shape`.

    Raises SchemaError: too large, too deep, not UTF-8, not JSON, or NaN/Infinity.
    """
    check_json_shape(raw, max_bytes=max_bytes, max_depth=max_depth)
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"not valid JSON: {exc}") from None
    except RecursionError:  # a backstop: check_json_shape should have refused it
        raise SchemaError(f"JSON nested too deep; at most {max_depth} levels are accepted") from None


def load_json_object(raw: bytes | str | dict, *, max_bytes: int | None = None,
                     max_depth: int = MAX_JSON_DEPTH) -> dict:
    """Raises SchemaError when ``raw`` is not a JSON object (see :func:`load_json`); a dict passes through."""
    data = raw if isinstance(raw, dict) else load_json(raw, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(data, dict):
        raise SchemaError("not a JSON object")
    return data


def validation_reason(exc: ValidationError, whole: str = "record") -> str:
    """``field 'a.b': <pydantic's message>`` for the first error (``whole`` when it has no field)."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or whole
    return f"field '{field}': {err['msg']}"
