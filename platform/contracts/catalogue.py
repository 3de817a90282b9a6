"""Every Kafka topic and HTTP ingest body of the suite, with its records: the source of the generated docs.

Rules:

* One :class:`TopicSpec` per topic (its default name; every name is
  configurable), one :class:`HttpBody` per ingest endpoint, one
  :class:`FileSpec` per JSONL file format that is not also a topic value.
* A topic's value is either a record (JSON) or ``None`` (binary, described in
  words); its headers are a record or ``None``.
* ``producers``/``consumers`` name the suite's own components (``bank`` is the
  outside world): the AsyncAPI document has a ``send`` operation for each
  topic the suite writes and a ``receive`` for each it reads.

Nothing here does I/O; :mod:`.generate` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from npusuite.platform.contracts.account_state import ChangelogValueHeader
from npusuite.platform.contracts.alert import FraudAlert
from npusuite.platform.contracts.dead_letter import DeadLetterHeaders
from npusuite.platform.contracts.inspection import InspectionResult
from npusuite.platform.contracts.score import FraudScore
from npusuite.platform.contracts.transaction import Label, Transaction

#: Components of the suite that produce or consume.
SCORER = "npusuite fraud serve (the fraud scorer)"
REVIEW = "npusuite review serve (the case-review app)"
EDGE = "npusuite edge agent"
BANK = "the bank (outside the suite)"
COMPARE = "npusuite fraud compare (champion/challenger report)"
SUITE = (SCORER, REVIEW, EDGE, COMPARE)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    summary: str
    key: str
    value: type[BaseModel] | None
    value_text: str
    headers: type[BaseModel] | None
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    ordering: str
    delivery: str
    compacted: bool = False

    @property
    def slug(self) -> str:
        """The topic as a camelCase identifier (``fraud-scores`` -> ``fraudScores``) for AsyncAPI ids."""
        head, *rest = self.name.replace("_", "-").split("-")
        return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class HttpBody:
    method: str
    path: str
    record: type[BaseModel]
    summary: str


@dataclass(frozen=True)
class FileSpec:
    name: str
    record: type[BaseModel]
    summary: str


_EXACTLY_ONCE = ("written in the fraud scorer's Kafka transaction with its consumed offsets: read it with "
                 "isolation.level=read_committed to see each record exactly once")

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("transactions", "Card and account transactions to score.",
              "account_id (UTF-8); it must equal the value's account_id", Transaction,
              "one Transaction JSON object", None, (BANK,), (SCORER,),
              "per account: the key sends an account's transactions to one partition, scored in offset order",
              "the bank's choice; the scorer dead-letters a repeated transaction_id"),
    TopicSpec("fraud-scores", "Exactly one score per transaction.", "account_id (UTF-8)", FraudScore,
              "one FraudScore JSON object", None, (SCORER,), (COMPARE,),
              "per account, in the order the transactions were read", _EXACTLY_ONCE),
    TopicSpec("fraud-scores-shadow", "The challenger's score of every transaction (npusuite fraud run --shadow): "
              "champion/challenger comparison only, never a decision.", "account_id (UTF-8)", FraudScore,
              "one FraudScore JSON object; model names the challenger version, reasons and reason_codes are "
              "empty, latency_ms is the challenger's own forward pass", None, (SCORER,), (COMPARE,),
              "per account, in the order the transactions were read",
              _EXACTLY_ONCE + ", in the same transaction as the champion's fraud-scores record (exactly one "
              "shadow score per committed score; a batch the challenger failed on has none, counted in "
              "npusuite_fraud_shadow_skipped_total)"),
    TopicSpec("fraud-alerts", "Scores that need a person (decisions review and decline), with evidence.",
              "account_id (UTF-8)", FraudAlert, "one FraudAlert JSON object", None, (SCORER,), (REVIEW,),
              "per account, in the order the transactions were read",
              _EXACTLY_ONCE + "; the review app reads at least once and recognises a repeated transaction_id"),
    TopicSpec("transactions-dlq", "Transactions the scorer could not use.", "the original key, untouched", None,
              "the original value's bytes, untouched", DeadLetterHeaders, (SCORER,), (),
              "the partition of the original record when the topics have as many partitions", _EXACTLY_ONCE),
    TopicSpec("fraud-alerts-dlq", "Alerts the review app could not turn into cases.",
              "the original key, untouched", None, "the original value's bytes, untouched", DeadLetterHeaders,
              (REVIEW,), (), "by key", "at least once (acks=all): a dead letter may appear twice after a "
              "broker failure, never lost"),
    TopicSpec("npusuite-fraud-account-state", "The fraud scorer's account state (private; compacted).",
              "<account_id>#<seq mod ring size> (UTF-8)", None,
              "binary: a ChangelogValueHeader (>QHI: seq u64, transaction_id length u16, snapshot length u32), "
              "the transaction_id, the state snapshot, the transaction's original bytes", None, (SCORER,),
              (SCORER,), "partition p holds the accounts of partition p of transactions", _EXACTLY_ONCE,
              compacted=True),
    TopicSpec("inspection-results", "Every inspection verdict of an edge box (OK and NG).",
              "id (UTF-8), the result's idempotency key", InspectionResult, "one InspectionResult JSON object",
              None, (EDGE,), (), "by id (no order across results)",
              "at least once (acks=all, resent after a crash between send and acknowledgement): consumers "
              "dedupe by id"),
)

HTTP_BODIES: tuple[HttpBody, ...] = (
    HttpBody("POST", "/api/ingest/fraud-alerts", FraudAlert,
             "A fraud alert becomes a case (the same body as a fraud-alerts message)."),
    HttpBody("POST", "/api/ingest/inspections", InspectionResult,
             "An inspection result becomes a case (the same body as an inspection-results message)."),
)

FILES: tuple[FileSpec, ...] = (
    FileSpec("labels", Label, "One label per line of a labels JSONL file (npusuite fraud train/evaluate)."),
)

#: Records with no schema file of their own, described for completeness.
BINARY_HEADERS: tuple[type[BaseModel], ...] = (ChangelogValueHeader,)


def topic(name: str) -> TopicSpec:
    """The topic spec called ``name``.  Raises KeyError."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
