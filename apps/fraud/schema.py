"""Typed records at the fraud app's edges (shared CONTRACTS.md §1–2).

``Transaction`` is validated once, where bytes become a record
(:func:`parse_transaction`), and trusted inside.  ``Label`` is one line of a
labels file; ``FraudScore`` is one line of ``fraud-scores``.

:func:`parse_transaction` raises :class:`SchemaError` whose message names the
offending field, so callers can prefix a line number (files) or put it in a
dead-letter record (Kafka).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from npusuite.platform.errors import SchemaError
from npusuite.platform.records import load_json_object, validation_reason

Channel = Literal["card_present", "ecommerce", "atm", "transfer"]
Decision = Literal["approve", "review", "decline"]


class Transaction(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str = Field(min_length=1)
    timestamp: datetime
    account_id: str = Field(min_length=1)
    card_id: str
    amount: float = Field(gt=0, allow_inf_nan=False)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    merchant_id: str
    merchant_category: str = Field(pattern=r"^\d{4}$")
    channel: Channel
    country: str = Field(pattern=r"^[A-Z]{2}$")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    device_id: str | None = None
    ip: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a UTC offset (RFC 3339), e.g. 2026-03-02T00:01:16Z")
        return value.astimezone(UTC)

    @property
    def epoch_s(self) -> float:
        return self.timestamp.timestamp()

    def to_json_dict(self) -> dict:
        out = self.model_dump(mode="json")
        out["timestamp"] = self.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return out


class Label(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str = Field(min_length=1)
    is_fraud: bool
    fraud_type: str | None = None


class FraudScore(BaseModel):
    model_config = ConfigDict(extra="allow")

    transaction_id: str
    score: float = Field(ge=0.0, le=1.0)
    decision: Decision
    reasons: list[str]
    model: str
    latency_ms: float


def parse_transaction(raw: bytes | str | dict) -> Transaction:
    """Bytes (or an already-decoded dict) to a validated Transaction.

    Raises SchemaError: not JSON, not an object, or a field that breaks the contract.
    """
    if isinstance(raw, bytes | str):
        try:  # pydantic-core parses and validates in one pass (half the time of json.loads + validate)
            return Transaction.model_validate_json(raw)
        except ValidationError:
            pass  # bad input: the path below gives the reason, worded the same for every parser
    try:
        return Transaction.model_validate(load_json_object(raw))
    except ValidationError as exc:
        raise SchemaError(validation_reason(exc)) from None


def parse_label(raw: bytes | str | dict) -> Label:
    """Raises SchemaError like :func:`parse_transaction`."""
    try:
        return Label.model_validate(load_json_object(raw))
    except ValidationError as exc:
        raise SchemaError(validation_reason(exc)) from None
