"""One poll batch in, everything the scorer must write for it out: the pure core.

:func:`process_batch` takes the consumed records, the account store and a
:class:`BatchScorer`, and returns a :class:`BatchOutcome`: the records to send
(scores, alerts, dead letters, changelog updates), the next offsets to commit
and the counts for metrics.  It does no I/O; the runner wraps it in one Kafka
transaction.

Rules, in order, for each record:

1. validation: a null value, bytes that are not a §1 transaction
   (:func:`~npusuite.fraud.schema.parse_transaction`), a key that is not the
   account_id, or a transaction_id the account already had (within the last
   ``ring_size`` transactions, or earlier in this batch) becomes a dead letter
   with its reason.  Nothing else stops the batch.
2. scoring: all valid transactions of the batch go to the scorer in one call
   (one batched model pass), in offset order; an account that appears several
   times is chained by the scorer, so each of its transactions sees the state
   the previous one left.  (Scoring in *waves*, one call per repeat, cost a
   model pass per wave: bursty accounts made most waves a few rows long.)
3. every scored transaction yields one ``fraud-scores`` record and one
   changelog record; ``review``/``decline`` also yield a ``fraud-alerts``
   record.  An account's state snapshot, when due, rides on its *last*
   changelog record of the batch (see :mod:`.account_store`).  Account entries
   are updated in place (see there for what the runner does when the Kafka
   transaction then aborts).
4. shadow scoring (:mod:`.shadow`): a result whose ``extras`` hold a
   challenger score also yields one ``fraud-scores-shadow`` record, in the
   same transaction as its champion score; one marked skipped is counted.

Validation never raises.  Anything that raises later (the scorer, a
changelog value that cannot be encoded) propagates out of
:func:`process_batch`, leaving the batch's accounts half-updated; the runner
then restores them and hands the batch to :mod:`.isolation`, which
dead-letters the record(s) that fail alone and scores the rest.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from npusuite.fraud.schema import Transaction
from npusuite.fraud.service import messages
from npusuite.fraud.service.account_store import AccountEntry, AccountStore, PendingState
from npusuite.fraud.service.batch_parsing import parse_values
from npusuite.fraud.service.config import Topics
from npusuite.fraud.service.shadow import SHADOW, SHADOW_SKIPPED
from npusuite.platform.contracts.score import encode_score


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x per record
class InRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x per record
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    #: None: the producer's key partitioner chooses.
    partition: int | None = None
    headers: list[tuple[str, bytes]] | None = None


@dataclass(slots=True)  # not frozen: one per scored transaction, and a frozen __init__ costs ~3x
class ScoreRequest:
    transaction: Transaction
    #: The account's state before this transaction (None: a new account); the scorer's own type.
    state: object | None


@dataclass
class ScoreResult:
    """What the processor reads of each scored transaction: any object with these attributes will do
    (the live scorer hands over the tiered scorer's own results without copying them)."""

    #: The §2 fields (transaction_id, score, decision, reasons, model, latency_ms).
    fields: dict
    #: The account's state after this transaction (the request's object may have been updated in place).
    state: object
    #: {name: number}, or an object with ``as_dict()`` (converted only for alerts).
    features: object = field(default_factory=dict)
    llm_rationale: str | None = None
    escalated: bool = False
    llm_fallback: bool = False
    #: The deciding model's ``{review, decline}`` thresholds, carried into alerts (None: unknown).
    thresholds: dict | None = None


class BatchScorer(Protocol):
    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """One result per request, in order.  Requests are in time order; an account's requests all
        carry its state before the first of them, and each must see the state the previous one left
        (a scorer that updates states in place gets the same object each time).  The processor reads
        ``ScoreResult.state`` only at an account's last request."""
        ...

    def encode_state(self, state: object) -> bytes:
        ...

    def restore_state(self, snapshot: bytes | None, transactions: Sequence[bytes]) -> object:
        """The state a snapshot (None: a new account) reaches after these transactions (original bytes).

        Raises SchemaError on a snapshot this scorer cannot read."""
        ...


@dataclass
class BatchOutcome:
    records: list[OutRecord] = field(default_factory=list)
    #: partition -> offset of the next record to consume.
    next_offsets: dict[int, int] = field(default_factory=dict)
    decisions: Counter = field(default_factory=Counter)
    dead_letters: Counter = field(default_factory=Counter)
    escalations: int = 0
    llm_fallbacks: int = 0
    #: Per scored transaction: seconds from the producer's timestamp to scored.
    latencies_s: list[float] = field(default_factory=list)
    models: Counter = field(default_factory=Counter)
    #: Shadow scoring: ``scored`` records written to the shadow topic, ``skipped`` (the challenger failed).
    shadow: Counter = field(default_factory=Counter)


def process_batch(records: Sequence[InRecord], store: AccountStore, scorer: BatchScorer, topics: Topics,
                  changelog_topic: str, clock: Callable[[], float] = time.time,
                  same_partitions: bool = False) -> BatchOutcome:
    """Raises whatever the scorer raises; the touched partitions' entries must then be restored (the
    runner does, then finds the failing records with :func:`~.isolation.isolate_poison`).

    ``same_partitions``: the output topics have as many partitions as the input, so each output
    record goes to its input's partition number (the key partitioner's choice, without rehashing)."""
    out = BatchOutcome()
    valid: list[tuple[InRecord, Transaction, AccountEntry]] = []
    seen_ids: set[tuple[int, str, str]] = set()
    next_offsets = out.next_offsets

    def dead(rec: InRecord, reason: str, kind: str) -> None:
        dead_letter(out, rec, reason, kind, topics, same_partitions)

    for rec, tx in zip(records, parse_values([rec.value for rec in records]), strict=True):
        partition = rec.partition
        next_offsets[partition] = rec.offset + 1
        if tx.__class__ is not Transaction:
            if tx is None:
                dead(rec, "empty message (null value)", "empty")
            else:
                dead(rec, str(tx), "schema")
            continue
        account_id, transaction_id = tx.account_id, tx.transaction_id
        if rec.key is None or rec.key != account_id.encode():
            dead(rec, f"message key {rec.key!r} is not the account_id {account_id!r}", "key")
            continue
        seen = (partition, account_id, transaction_id)
        entry = store.entry(partition, account_id)  # KeyError: a partition this process does not own
        if seen in seen_ids or transaction_id in entry.ids:
            dead(rec, f"duplicate transaction_id {transaction_id!r}: already scored", "duplicate")
            continue
        seen_ids.add(seen)
        valid.append((rec, tx, entry))
    if valid:
        _score(valid, store, scorer, topics, changelog_topic, clock, same_partitions, out)
    return out


def dead_letter(out: BatchOutcome, rec: InRecord, reason: str, kind: str, topics: Topics,
                same_partitions: bool) -> None:
    """Add ``rec``, its key and value untouched, to the dead-letter topic with ``reason``."""
    out.records.append(OutRecord(topics.dlq, rec.key, rec.value, rec.partition if same_partitions else None,
                                 messages.dlq_headers(reason, topics.transactions, rec.partition, rec.offset)))
    out.dead_letters[kind] += 1


def merge(out: BatchOutcome, part: BatchOutcome) -> None:
    """Append ``part`` (the outcome of records after ``out``'s) to ``out``."""
    out.records.extend(part.records)
    out.next_offsets.update(part.next_offsets)
    out.decisions.update(part.decisions)
    out.dead_letters.update(part.dead_letters)
    out.escalations += part.escalations
    out.llm_fallbacks += part.llm_fallbacks
    out.latencies_s.extend(part.latencies_s)
    out.models.update(part.models)
    out.shadow.update(part.shadow)


def shadow_record(out: BatchOutcome, result: object, key: bytes | None, topic: str) -> None:
    """The challenger's score of ``result`` (see :mod:`.shadow`) as a record, or count it skipped."""
    extras = getattr(result, "extras", None)
    if not extras:
        return
    shadow = extras.get(SHADOW)
    if shadow is not None:
        out.records.append(OutRecord(topic, key, messages.score_value(shadow)))
        out.shadow["scored"] += 1
    elif extras.get(SHADOW_SKIPPED):
        out.shadow["skipped"] += 1


def _score(valid: list[tuple[InRecord, Transaction, AccountEntry]], store: AccountStore, scorer: BatchScorer,
           topics: Topics, changelog_topic: str, clock: Callable[[], float], same_partitions: bool,
           out: BatchOutcome) -> None:
    last: dict[int, int] = {}  # id(entry) -> index of the account's last transaction in the batch
    for i, (_, _, entry) in enumerate(valid):
        state = entry.state
        if state is None:
            entry.state = scorer.restore_state(None, ())
        elif state.__class__ is PendingState:
            entry.state = scorer.restore_state(state.snapshot, state.transactions)
        last[id(entry)] = i
    results = scorer.score_batch([ScoreRequest(tx, entry.state) for _, tx, entry in valid])
    if len(results) != len(valid):
        raise RuntimeError(f"scorer returned {len(results)} results for {len(valid)} requests")
    now = clock()
    records = out.records
    append = records.append
    scores_topic, snapshot_due, record, score_value = topics.scores, store.snapshot_due, store.record, encode_score
    decisions: list[str] = []
    models: list[str] = []
    for i, ((rec, tx, entry), result) in enumerate(zip(valid, results, strict=True)):
        score = result.fields
        decision = score["decision"]
        key = rec.key
        partition = rec.partition if same_partitions else None
        if decision != "approve":
            feats = result.features
            feats = feats.as_dict() if hasattr(feats, "as_dict") else feats
            append(OutRecord(topics.alerts, key, messages.alert_value(
                score, tx, [raw for _, raw in entry.recent], feats, result.llm_rationale,
                # getattr: any object with ScoreResult's attributes will do, older ones lack this one.
                getattr(result, "thresholds", None)), partition))
        state = result.state
        snapshot = scorer.encode_state(state) if last[id(entry)] == i and snapshot_due(entry) else None
        ckey, cvalue = record(entry, tx.account_id, tx.transaction_id, state, snapshot, rec.value)
        append(OutRecord(scores_topic, key, score_value(score), partition))  # = messages.score_value
        if getattr(result, "extras", None):
            shadow_record(out, result, key, topics.shadow_scores)
        append(OutRecord(changelog_topic, ckey, cvalue, rec.partition))
        decisions.append(decision)
        models.append(score["model"])
        if result.escalated:
            out.escalations += 1
        if result.llm_fallback:
            out.llm_fallbacks += 1
    out.decisions.update(decisions)
    out.models.update(models)
    out.latencies_s.extend([max(0.0, now - rec.timestamp_ms / 1000.0) for rec, _, _ in valid])
