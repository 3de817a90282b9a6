"""The ``fraud-alerts`` topic (and ``POST /api/ingest/fraud-alerts``): a score that needs a person.

Wire format: one JSON object per message, key = the transaction's
``account_id``; the same body is accepted over HTTP by the review app.  It is
every :class:`~npusuite.platform.contracts.score.FraudScore` field (same rules)
plus the evidence an analyst reads:

* ``transaction``: the scored transaction (its ``transaction_id`` must equal
  the alert's; checked by :func:`parse_fraud_alert`);
* ``account_recent``: up to :data:`MAX_RECENT` earlier transactions of the
  account, oldest first (a consumer keeps the last :data:`MAX_RECENT` of a
  longer list);
* ``features``: ``{name: finite number}``, at most :data:`MAX_FEATURES`;
* ``llm_rationale``: the LLM tier's words, or null;
* ``fraud_type``: null from the live scorer (a label, not a prediction);
* ``thresholds``: the deciding model's ``{review, decline}`` thresholds on
  ``score`` (:class:`~npusuite.platform.contracts.score.DecisionThresholds`),
  or null/absent from scorers that predate it (optional: older producers stay
  valid; the review app then falls back to ``decision``).

Unknown fields are ignored.  The scorer sends alerts only for the decisions
``review`` and ``decline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import Field, field_validator

from npusuite.platform.contracts.parsing import parse_record
from npusuite.platform.contracts.score import DecisionThresholds, FraudScore, ScoreFields
from npusuite.platform.contracts.transaction import MAX_FRAUD_TYPE_CHARS, Transaction
from npusuite.platform.errors import SchemaError

#: Earlier transactions of the account an alert carries (and a consumer keeps).
MAX_RECENT = 20
#: Most features an alert carries.
MAX_FEATURES = 1024

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class FraudAlert(FraudScore):
    """One ``fraud-alerts`` message: the score's fields plus the evidence."""

    transaction: Transaction
    account_recent: list[Transaction] = Field(default_factory=list, description="Oldest first.")
    features: dict[str, FiniteFloat] = Field(default_factory=dict, max_length=MAX_FEATURES)
    llm_rationale: str | None = None
    fraud_type: str | None = Field(default=None, max_length=MAX_FRAUD_TYPE_CHARS)
    thresholds: DecisionThresholds | None = Field(
        default=None, description="The model card's review/decline thresholds on score; absent from older scorers.")

    @field_validator("account_recent")
    @classmethod
    def _last_twenty(cls, value: list[Transaction]) -> list[Transaction]:
        return value[-MAX_RECENT:]


def build_alert(score: ScoreFields | Mapping, transaction: Transaction, recent: Iterable[bytes | Transaction],
                features: Mapping[str, float], llm_rationale: str | None,
                thresholds: DecisionThresholds | Mapping[str, float] | None = None) -> FraudAlert:
    """The alert for a score the scorer made (``recent``: earlier accepted transactions, raw bytes or records;
    ``thresholds``: the deciding model's ``{review, decline}``, or None when unknown).

    Raises pydantic's ValidationError when the pieces break the record's rules (a scorer bug, never input:
    every transaction here passed :func:`~npusuite.platform.contracts.transaction.parse_transaction`).
    """
    account_recent = [r if isinstance(r, Transaction) else Transaction.model_validate_json(r) for r in recent]
    return FraudAlert(**score, transaction=transaction, account_recent=account_recent,
                      features={name: float(value) for name, value in features.items()},
                      llm_rationale=llm_rationale, fraud_type=None,
                      thresholds=thresholds if thresholds is None or isinstance(thresholds, DecisionThresholds)
                      else DecisionThresholds(review=thresholds["review"], decline=thresholds["decline"]))


def encode_alert(alert: FraudAlert) -> bytes:
    """The ``fraud-alerts`` value: the record's compact UTF-8 JSON."""
    return alert.__pydantic_serializer__.to_json(alert)


def parse_fraud_alert(raw: bytes | str | dict, max_bytes: int | None = None) -> FraudAlert:
    """Raises SchemaError: not JSON, too large or deep, wrong shape, or a transaction id differing from the alert's."""
    alert = parse_record(FraudAlert, raw, max_bytes)
    if alert.transaction.transaction_id != alert.transaction_id:
        raise SchemaError("field 'transaction.transaction_id' differs from the alert's transaction_id")
    return alert
