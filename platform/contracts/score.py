"""The ``fraud-scores`` topic: exactly one score per transaction.

Wire format: one compact UTF-8 JSON object per message, key = the
transaction's ``account_id``; in files (``npusuite fraud score --out``) one
per line, possibly with extra fields (``account_id``, ``card_id``,
``timestamp``) that consumers ignore.

Rules of the record (a consumer may rely on them; the review app refuses an
alert that breaks them):

* ``transaction_id`` 1-:data:`MAX_ID_CHARS` characters; ``score`` a finite
  number in [0, 1]; ``decision`` one of :data:`Decision`; ``model`` the
  ``name@version`` that decided (``fast@3+llm@2`` when the LLM tier did),
  1-128 characters; ``latency_ms`` finite and >= 0.
* ``reasons``: at most :data:`MAX_REASONS` phrases for people, each
  1-:data:`MAX_REASON_TEXT_CHARS` characters.  ``reason_codes``: the stable
  code of each phrase (``amount_spike``...), same order; optional (default
  empty) so records from producers that predate it stay valid.  When it is
  not empty it has exactly as many entries as ``reasons``.
* ``rules_fired``: the names of the analysts' rules (``npusuite fraud rules``)
  that fired on this transaction, at most :data:`MAX_RULES_FIRED`, each
  1-64 characters; optional (default empty) so older records stay valid.

The scorer's hot path does not build this model per score (validating one
costs about 1.6 µs, more than encoding it): it builds a :class:`ScoreFields`
dict with :func:`score_fields`, whose keys are exactly this record's fields
in record order, and :func:`encode_score` writes it with pydantic-core.  A test
(``tests/platform/contracts/test_score.py``) proves the bytes equal
``FraudScore.model_validate(fields).model_dump_json()`` for real scorer
output.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import to_json

from npusuite.platform.contracts.transaction import MAX_ID_CHARS

Decision = Literal["approve", "review", "decline"]

#: Most reasons one score carries.
MAX_REASONS = 64
#: Longest reason phrase accepted (the review app shows a shortened copy past 256 characters).
MAX_REASON_TEXT_CHARS = 4096
#: Longest reason code (codes are short identifiers such as ``amount_spike``).
MAX_REASON_CODE_CHARS = 64
#: Longest ``model`` reference.
MAX_MODEL_CHARS = 128
#: Most rule names a score carries, and the longest rule name.
MAX_RULES_FIRED = 32
MAX_RULE_NAME_CHARS = 64



def _each_bounded(value: list[str], limit: int, what: str) -> list[str]:
    """Raises ValueError unless every string of VALUE is 1-LIMIT characters."""
    if any(not v or len(v) > limit for v in value):
        raise ValueError(f"each {what} must be 1-{limit} characters")
    return value

class FraudScore(BaseModel):
    """One ``fraud-scores`` message."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="Calibrated P(fraud)-like score.")
    decision: Decision
    reasons: list[str] = Field(max_length=MAX_REASONS, description="Phrases for people, strongest first.")
    reason_codes: list[str] = Field(default_factory=list, max_length=MAX_REASONS,
                                    description="Stable code of each reason, same order; empty from older "
                                                "producers.")
    model: str = Field(min_length=1, max_length=MAX_MODEL_CHARS, description="name@version[+name@version].")
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    rules_fired: list[str] = Field(default_factory=list, max_length=MAX_RULES_FIRED,
                                   description="Analysts' rules that fired, by name; empty from older producers.")

    @field_validator("rules_fired")
    @classmethod
    def _bounded_rule_names(cls, value: list[str]) -> list[str]:
        return _each_bounded(value, MAX_RULE_NAME_CHARS, "rule name")

    @field_validator("reasons")
    @classmethod
    def _bounded_reasons(cls, value: list[str]) -> list[str]:
        return _each_bounded(value, MAX_REASON_TEXT_CHARS, "reason")

    @field_validator("reason_codes")
    @classmethod
    def _bounded_codes(cls, value: list[str]) -> list[str]:
        return _each_bounded(value, MAX_REASON_CODE_CHARS, "reason code")

    @model_validator(mode="after")
    def _codes_match_reasons(self):
        if self.reason_codes and len(self.reason_codes) != len(self.reasons):
            raise ValueError(f"reason_codes has {len(self.reason_codes)} entries for {len(self.reasons)} reasons")
        return self


class DecisionThresholds(BaseModel):
    """The deciding model's own thresholds on ``score`` (its model card's): ``review`` at or above
    ``review``, ``decline`` at or above ``decline``; 0 < review <= decline <= 1."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    review: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)
    decline: float = Field(gt=0.0, le=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self):
        if self.review > self.decline:
            raise ValueError(f"review threshold {self.review} is above the decline threshold {self.decline}")
        return self


class ScoreFields(TypedDict):
    """A :class:`FraudScore` as the scorer's hot path holds it (same keys, same order)."""

    transaction_id: str
    score: float
    decision: Decision
    reasons: list[str]
    reason_codes: list[str]
    model: str
    latency_ms: float
    rules_fired: list[str]


#: The record's fields in order; :func:`score_fields` builds its dict in this order.
SCORE_FIELDS: tuple[str, ...] = tuple(FraudScore.model_fields)


def score_fields(transaction_id: str, score: float, decision: Decision, reasons: list[str],
                 reason_codes: list[str], model: str, latency_ms: float,
                 rules_fired: list[str] | None = None) -> ScoreFields:
    """The score as a :class:`ScoreFields` dict, keys in record order (what :func:`encode_score` relies on)."""
    return {"transaction_id": transaction_id, "score": score, "decision": decision, "reasons": reasons,
            "reason_codes": reason_codes, "model": model, "latency_ms": latency_ms,
            "rules_fired": rules_fired if rules_fired is not None else []}


def encode_score(fields: ScoreFields) -> bytes:
    """The ``fraud-scores`` value: compact UTF-8 JSON, byte for byte what the record's own serialiser writes
    for fields made by :func:`score_fields` (pydantic-core's encoder, without building the model)."""
    return to_json(fields)
