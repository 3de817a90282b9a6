"""Wire formats the scorer writes (shared CONTRACTS.md §2 and the agreed alert message).

* ``fraud-scores``: key = account_id, value = the §2 score JSON.
* ``fraud-alerts`` (decisions ``review``/``decline``): key = account_id, value =
  the score fields plus ``transaction`` (§1 object), ``account_recent`` (up to
  20 previous §1 objects, oldest first), ``features`` ({name: number}),
  ``llm_rationale`` (str or null) and ``fraud_type`` (always null live).
* ``transactions-dlq``: key and value are the original message's bytes,
  untouched; the reason and the source position travel as headers
  ``npusuite.dlq.reason`` and ``npusuite.dlq.source`` (``topic/partition@offset``),
  as Kafka Connect's dead-letter queues do.  A reason is one line of at most
  :data:`MAX_REASON_CHARS` characters; for a record that failed in scoring it
  is the exception's type and message (:func:`error_reason`).

All functions are pure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from pydantic_core import to_json

from npusuite.fraud.schema import Transaction

DLQ_REASON_HEADER = "npusuite.dlq.reason"
DLQ_SOURCE_HEADER = "npusuite.dlq.source"
#: Longest dead-letter reason (characters); longer ones are cut with an ellipsis.
MAX_REASON_CHARS = 300

#: The §1 fields, in contract order; anything else on an incoming message (e.g. labels) is not forwarded.
TRANSACTION_FIELDS = ("transaction_id", "timestamp", "account_id", "card_id", "amount", "currency", "merchant_id",
                      "merchant_category", "channel", "country", "lat", "lon", "device_id", "ip")


def score_value(score: Mapping) -> bytes:
    """The §2 record; ``score`` holds at least the six contract fields.  Compact UTF-8 JSON (pydantic-core's
    encoder: a fifth of the standard library's time per record)."""
    return to_json(score)


def contract_transaction(raw: bytes) -> dict:
    """An already validated message's bytes as a §1 object (unknown fields dropped)."""
    # The bytes passed parse_transaction when they were accepted (size, depth and NaN checked there), so
    # the plain parser is safe here; the shared loader's checks cost 40% more per recent transaction.
    data = json.loads(raw)
    return {name: data.get(name) for name in TRANSACTION_FIELDS}


def alert_value(score: Mapping, transaction: Transaction, recent_raw: Iterable[bytes],
                features: Mapping[str, float], llm_rationale: str | None) -> bytes:
    out = dict(score)
    out["transaction"] = transaction.to_json_dict()
    out["account_recent"] = [contract_transaction(raw) for raw in recent_raw]
    out["features"] = {name: float(value) for name, value in features.items()}
    out["llm_rationale"] = llm_rationale
    out["fraud_type"] = None
    return to_json(out)


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def error_reason(exc: BaseException) -> str:
    """The dead-letter reason for a record that failed in scoring: ``<type>: <message>``, one line."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not fail the dead letter too
        message = "(no message)"
    return one_line(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def dlq_headers(reason: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    return [(DLQ_REASON_HEADER, one_line(reason).encode("utf-8", "replace")),
            (DLQ_SOURCE_HEADER, f"{topic}/{partition}@{offset}".encode())]
