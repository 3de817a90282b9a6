import math

import pytest

from npusuite.platform.errors import SchemaError
from npusuite.platform.records import MAX_JSON_DEPTH, json_depth, load_json, load_json_object


def test_deep_nesting_is_a_schema_error_not_a_recursion_error():
    raw = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(SchemaError, match="nested"):
        load_json_object(raw)
    with pytest.raises(SchemaError, match="nested"):
        load_json('{"a":' * 5000 + "1" + "}" * 5000)


def test_brackets_inside_strings_do_not_count_as_depth():
    raw = '{"note": "' + "[" * 10_000 + '\\"{{{"}'
    assert json_depth(raw) == 1
    assert load_json_object(raw)["note"].startswith("[[[")


def test_the_depth_limit_is_inclusive():
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_depth(ok) == MAX_JSON_DEPTH
    load_json(ok)
    with pytest.raises(SchemaError):
        load_json("[" + ok + "]")


@pytest.mark.parametrize("const", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_are_not_json(const):
    with pytest.raises(SchemaError, match="not a JSON number"):
        load_json_object('{"x": ' + const + '}')


def test_body_size_is_checked_before_parsing():
    with pytest.raises(SchemaError, match="larger than the limit"):
        load_json_object(b'{"x": "' + b"a" * 2000 + b'"}', max_bytes=1000)
    assert math.isfinite(load_json_object(b'{"x": 1e308}')["x"])


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"[1,2]", b"", b"{", "\ud800"])
def test_anything_else_is_one_schema_error(raw):
    with pytest.raises(SchemaError):
        load_json_object(raw)
