"""batch_parsing.parse_values: exactly parse_transaction's verdict and reason for every value, hostile ones too."""

from __future__ import annotations

import json

from npusuite.fraud.schema import MAX_TRANSACTION_BYTES, SchemaError, Transaction, parse_transaction
from npusuite.fraud.service.batch_parsing import parse_values

GOOD = {"transaction_id": "t1", "timestamp": "2026-03-02T00:01:16Z", "account_id": "A", "card_id": "C",
        "amount": 12.5, "currency": "EUR", "merchant_id": "M", "merchant_category": "5411", "channel": "ecommerce",
        "country": "DE", "lat": 52.5, "lon": 13.4, "device_id": "D", "ip": "10.1.2.3"}


def _value(**changes) -> bytes:
    return json.dumps(GOOD | changes, separators=(",", ":")).encode()


HOSTILE: list[bytes | str] = [
    _value(),
    _value(currency="USD\n"),                       # a pattern that a lax parser lets through
    _value(amount=float("nan")),                    # NaN is not JSON
    _value(amount=-1),
    _value(timestamp="2026-03-02T00:01:16"),       # no UTC offset
    _value(timestamp="0001-01-01T00:00:00+01:00"),  # leaves years 1-9999 in UTC
    _value(transaction_id="x" * 129),
    _value(extra={"deep": json.loads("[" * 70 + "]" * 70)}),  # nested past the depth limit, in an ignored field
    _value(extra="y" * MAX_TRANSACTION_BYTES),       # larger than a transaction may be
    b'{"transaction_id":"t2"',                        # cut short
    b"\xff\xfe not utf-8",
    b"[1, 2, 3]",
    b'{"transaction_id":"a"},{"transaction_id":"b"}',  # two documents in one value
    b"",
    _value().decode(),                                # a str, not bytes
    _value(transaction_id="t3", account_id="B"),
]


def _verdict(result) -> tuple[str, object]:
    if isinstance(result, Transaction):
        return "ok", result
    assert isinstance(result, SchemaError), result
    return "refused", str(result)


def test_every_value_gets_parse_transactions_own_verdict_and_reason():
    got = parse_values([*HOSTILE, None])
    assert got[-1] is None  # a tombstone is the caller's to dead-letter
    for value, result in zip(HOSTILE, got, strict=False):
        try:
            expected = ("ok", parse_transaction(value))
        except SchemaError as exc:
            expected = ("refused", str(exc))
        assert _verdict(result) == expected, value[:80]
    accepted = sum(isinstance(r, Transaction) for r in got)
    assert accepted == 3  # GOOD, its str copy and t3; everything else refused


def test_a_refused_value_does_not_change_its_neighbours():
    alone = parse_values([_value(transaction_id="n1"), _value(transaction_id="n2")])
    mixed = parse_values([_value(transaction_id="n1"), b'{"x":"', b'"}', _value(transaction_id="n2")])
    assert [r.transaction_id for r in alone] == [mixed[0].transaction_id, mixed[3].transaction_id]
    assert isinstance(mixed[1], SchemaError) and isinstance(mixed[2], SchemaError)
