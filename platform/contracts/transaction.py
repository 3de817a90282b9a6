"""The ``transactions`` topic: one card/account transaction, and a labels-file line.

Wire format: one JSON object per Kafka message (key = ``account_id``, UTF-8),
one per line in JSONL files.  ``transaction_id`` is unique and is the
idempotency key everywhere downstream; all scorer state is per
``account_id``.  Unknown fields are ignored (a transaction file may carry
``is_fraud``/``fraud_type`` inline), never forwarded.

``Transaction`` is validated once, where bytes become a record
(:func:`parse_transaction`), and trusted inside.  What is refused here, so
nothing downstream has to cope with it:

* a message over :data:`MAX_TRANSACTION_BYTES`, JSON nested deeper than the
  platform's ``MAX_JSON_DEPTH``, NaN/Infinity, bytes that are not UTF-8 JSON;
* identifiers longer than :data:`MAX_ID_CHARS` (``ip``: :data:`MAX_IP_CHARS`):
  a 1 MB ``transaction_id`` is a dead letter here, not a crash in the
  changelog or a case the review app refuses (its limit is 128 too);
* a timestamp without a UTC offset, or one that leaves the representable
  range (years 1-9999) when moved to UTC;
* an amount that is not a finite number > 0; a currency, country or
  merchant category that does not match its pattern; a channel outside
  :data:`Channel`; lat/lon outside [-90, 90] / [-180, 180].

Everything else that passes, however extreme (an amount of 1e-320 or 1e308, a
timestamp in year 1), is a valid transaction: the fraud feature code is total
over it.  :func:`parse_transaction` raises nothing but :class:`SchemaError`,
whatever the bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from npusuite.platform.contracts.parsing import parse_record
from npusuite.platform.errors import SchemaError
from npusuite.platform.records import check_json_shape

Channel = Literal["card_present", "ecommerce", "atm", "transfer"]

#: Longest identifier (transaction, account, card, merchant, device): the review app's case key is at
#: most 128 characters, and nothing longer is a real identifier.
MAX_ID_CHARS = 128
#: Longest ``ip``: the longest textual IPv6 address (IPv4-mapped) is 45 characters.
MAX_IP_CHARS = 45
#: Longest ``fraud_type`` of a label.
MAX_FRAUD_TYPE_CHARS = 64
#: Largest message accepted as a transaction.  A transaction is about 400 bytes; the room left is for
#: extra fields (labels), which are ignored, but travel in the changelog, so they stay bounded.
MAX_TRANSACTION_BYTES = 16 * 1024


class Transaction(BaseModel):
    """One transaction (amount in major units of ``currency``; ``merchant_category`` 6011 = ATM)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Unique; the idempotency key.")
    timestamp: datetime = Field(description="RFC 3339 with a UTC offset; stored in UTC.")
    account_id: str = Field(min_length=1, max_length=MAX_ID_CHARS,
                            description="The Kafka key; all scorer state is per account.")
    card_id: str = Field(max_length=MAX_ID_CHARS)
    amount: float = Field(gt=0, allow_inf_nan=False, description="Major units of `currency`.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217.")
    merchant_id: str = Field(max_length=MAX_ID_CHARS)
    merchant_category: str = Field(pattern=r"^\d{4}$", description="ISO 18245 MCC; 6011 = ATM.")
    channel: Channel
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2.")
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    device_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    ip: str | None = Field(default=None, max_length=MAX_IP_CHARS)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a UTC offset (RFC 3339), e.g. 2026-03-02T00:01:16Z")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: not an error pydantic would catch
            raise ValueError("timestamp is outside years 1-9999 in UTC") from None

    @property
    def epoch_s(self) -> float:
        return self.timestamp.timestamp()

    def to_json_dict(self) -> dict:
        out = self.model_dump(mode="json")
        # isoformat pads the year to 4 digits (strftime's %Y writes year 1 as "1", which is not RFC 3339).
        out["timestamp"] = self.timestamp.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        return out


#: The transaction's fields, in record order; anything else on an incoming message is not forwarded.
TRANSACTION_FIELDS: tuple[str, ...] = tuple(Transaction.model_fields)


class Label(BaseModel):
    """One line of a labels file: whether a transaction was fraud, and of which type."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    is_fraud: bool
    fraud_type: str | None = Field(default=None, max_length=MAX_FRAUD_TYPE_CHARS)


def parse_transaction(raw: bytes | str | dict) -> Transaction:
    """Bytes (or an already-decoded dict) to a validated Transaction.

    Raises SchemaError (and nothing else): too large or too deep, not JSON, not an object, or a field
    that breaks the rules above.
    """
    if isinstance(raw, bytes | str):
        check_json_shape(raw, max_bytes=MAX_TRANSACTION_BYTES)
        try:  # pydantic-core parses and validates in one pass (half the time of json.loads + validate)
            return Transaction.model_validate_json(raw)
        except ValidationError:
            pass  # bad input: the path below gives the reason, worded the same for every parser
    return parse_record(Transaction, raw, max_bytes=MAX_TRANSACTION_BYTES, whole="record")


def parse_label(raw: bytes | str | dict) -> Label:
    """Raises SchemaError like :func:`parse_transaction`."""
    return parse_record(Label, raw, whole="record")


__all__ = ["MAX_FRAUD_TYPE_CHARS", "MAX_ID_CHARS", "MAX_IP_CHARS", "MAX_TRANSACTION_BYTES", "TRANSACTION_FIELDS",
           "Channel", "Label", "SchemaError", "Transaction", "parse_label", "parse_transaction"]
