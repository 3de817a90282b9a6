"""The records the scorer writes, encoded for Kafka.  All functions are pure.

The formats are defined in :mod:`npusuite.platform.contracts` (described in
``docs/contracts.md``); this module only turns the scorer's results into
their bytes:

* ``fraud-scores`` (key = account_id): :func:`score_value`, a
  :class:`~npusuite.platform.contracts.score.FraudScore`;
* ``fraud-alerts`` (decisions ``review``/``decline``; key = account_id):
  :func:`alert_value`, a :class:`~npusuite.platform.contracts.alert.FraudAlert`
  built and validated through the record;
* ``transactions-dlq``: the original key and value untouched, with the
  headers of :class:`~npusuite.platform.contracts.dead_letter.DeadLetterHeaders`
  (:func:`dlq_headers`).  A reason is one line of at most
  :data:`MAX_REASON_CHARS` characters; for a record that failed in scoring it
  is the exception's type and message (:func:`error_reason`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from npusuite.fraud.schema import Transaction
from npusuite.platform.contracts import dead_letter
from npusuite.platform.contracts.alert import build_alert, encode_alert
from npusuite.platform.contracts.dead_letter import DeadLetterHeaders
from npusuite.platform.contracts.score import ScoreFields, encode_score
from npusuite.platform.contracts.transaction import TRANSACTION_FIELDS

DLQ_REASON_HEADER = dead_letter.REASON_HEADER
DLQ_SOURCE_HEADER = dead_letter.SOURCE_HEADER
#: Longest dead-letter reason (characters); longer ones are cut with an ellipsis.
MAX_REASON_CHARS = dead_letter.FRAUD_REASON_CHARS

__all__ = ["DLQ_REASON_HEADER", "DLQ_SOURCE_HEADER", "MAX_REASON_CHARS", "TRANSACTION_FIELDS", "alert_value",
           "dlq_headers", "error_reason", "one_line", "score_value"]


def score_value(score: ScoreFields) -> bytes:
    """The ``fraud-scores`` value (see :func:`~npusuite.platform.contracts.score.encode_score`)."""
    return encode_score(score)


def alert_value(score: ScoreFields | Mapping, transaction: Transaction, recent_raw: Iterable[bytes],
                features: Mapping[str, float], llm_rationale: str | None,
                thresholds: Mapping[str, float] | None = None) -> bytes:
    """The ``fraud-alerts`` value; ``recent_raw`` are the account's earlier accepted messages, oldest first;
    ``thresholds`` the deciding model's ``{review, decline}`` (None: unknown, the field stays null)."""
    return encode_alert(build_alert(score, transaction, recent_raw, features, llm_rationale, thresholds))


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    return dead_letter.one_line(text, limit)


def error_reason(exc: BaseException) -> str:
    """The dead-letter reason for a record that failed in scoring: ``<type>: <message>``, one line."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not fail the dead letter too
        message = "(no message)"
    return one_line(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def dlq_headers(reason: str, topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    return DeadLetterHeaders.of(reason, topic, partition, offset, limit=MAX_REASON_CHARS).to_kafka()
