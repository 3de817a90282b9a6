"""Poison isolation: in a batch that failed in scoring, dead-letter the records that fail alone.

A batch is scored in one call (:func:`~.processor.process_batch`), so one
record that makes the scorer raise fails the whole batch.  Retrying the batch
would fail forever and stall its partitions; dying would crash-loop the
process.  :func:`isolate_poison` instead bisects the batch:

* try a range of records with :func:`~.processor.process_batch`; if it
  scores, keep its outcome; if it raises, put the entries of the accounts it
  named back as they were before the try, split the range in halves and try
  the left half, then the right (so each account's transactions are still
  applied in offset order: the left half's states are the right half's
  starting point);
* a single record that fails alone is dead-lettered, kind ``scoring``, with
  the exception's type and message as its reason (one line, bounded), in the
  same outcome, hence the same Kafka transaction, as the other records'
  scores and the batch's offsets: exactly-once holds for dead letters too.

Rules:

* Precondition: the entries of the batch's accounts are as committed before
  the batch (the runner reloads the batch's partitions from the changelog
  after the failed first attempt; the first attempt takes no copies, so the
  happy path pays nothing for isolation).
* Before each try, the entries of the accounts the range names are copied
  (the state through ``scorer.encode_state``, restored lazily as a
  :class:`~.account_store.PendingState`): only a failing batch pays for it.
* Infrastructure is retried, never dead-lettered: an exception of
  :data:`INFRASTRUCTURE_ERRORS` (Kafka, OS and disk, memory, a model engine
  that is busy, closed or swapping) propagates.  And before a record that
  failed alone is dead-lettered, a probe transaction on a blank account is
  scored: if the probe fails too, the scorer is broken, not the record, and
  :class:`ScorerUnavailable` propagates instead.  The runner then rolls the
  batch back and tries again later.
* Cost: a batch with one poison record takes about ``2 log2(n)`` tries of
  shrinking ranges, each scored in one call.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from confluent_kafka import KafkaException

from npusuite.fraud.schema import SchemaError, Transaction, parse_transaction
from npusuite.fraud.service import messages
from npusuite.fraud.service.account_store import AccountEntry, AccountStore, PendingState
from npusuite.fraud.service.config import Topics
from npusuite.fraud.service.processor import (
    BatchOutcome,
    BatchScorer,
    InRecord,
    ScoreRequest,
    dead_letter,
    merge,
    process_batch,
)
from npusuite.platform.engine.errors import (
    DeadlineExceededError,
    EngineBusyError,
    EngineClosedError,
    ModelNotReadyError,
    SwapError,
)

logger = logging.getLogger(__name__)

#: Dead-letter kind (metric label) of a record that failed in scoring.
KIND = "scoring"


class ScorerUnavailable(RuntimeError):
    """The scorer failed on a probe transaction too: the failure is not the record's."""


#: Failures of what the scorer runs on, not of a record: retried, never dead-lettered.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    KafkaException, OSError, MemoryError, EngineBusyError, DeadlineExceededError, EngineClosedError,
    ModelNotReadyError, SwapError, ScorerUnavailable)

#: A plain, valid transaction of an account no bank has; scoring it has no side effect.
_PROBE = Transaction(transaction_id="npusuite-probe", timestamp=datetime(2026, 1, 1, tzinfo=UTC),
                     account_id="npusuite-probe", card_id="probe", amount=10.0, currency="EUR",
                     merchant_id="probe", merchant_category="5411", channel="card_present", country="DE")


def is_infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, INFRASTRUCTURE_ERRORS)


def _accounts(records: Sequence[InRecord]) -> set[tuple[int, str]]:
    """(partition, account_id) of every record that names an account (what a try may change)."""
    out = set()
    for rec in records:
        if rec.value is not None:
            try:
                out.add((rec.partition, parse_transaction(rec.value).account_id))
            except SchemaError:
                pass
    return out


def _copy(entry: AccountEntry, scorer: BatchScorer) -> AccountEntry:
    state = entry.state
    if state is not None and not isinstance(state, PendingState):
        state = PendingState(scorer.encode_state(state), ())
    return AccountEntry(entry.seq, state, deque(entry.recent, maxlen=entry.recent.maxlen), set(entry.ids),
                        entry.snapshot_seq)


def _save(store: AccountStore, scorer: BatchScorer, records: Sequence[InRecord]) -> dict:
    saved = {}
    for partition, account_id in _accounts(records):
        entry = store.partitions[partition].get(account_id)
        saved[partition, account_id] = None if entry is None else _copy(entry, scorer)
    return saved


def _restore(store: AccountStore, saved: dict) -> None:
    for (partition, account_id), entry in saved.items():
        if entry is None:
            store.partitions[partition].pop(account_id, None)
        else:
            store.partitions[partition][account_id] = entry


def _probe(scorer: BatchScorer, cause: BaseException) -> None:
    try:
        scorer.score_batch([ScoreRequest(_PROBE, scorer.restore_state(None, ()))])
    except Exception as exc:
        raise ScorerUnavailable(f"the scorer fails on a probe transaction too ({messages.error_reason(exc)}); "
                                f"not dead-lettering on {messages.error_reason(cause)}") from exc


def isolate_poison(records: Sequence[InRecord], store: AccountStore, scorer: BatchScorer, topics: Topics,
                   changelog_topic: str, clock: Callable[[], float] = time.time,
                   same_partitions: bool = False) -> BatchOutcome:
    """The outcome of ``records`` with every record that fails alone dead-lettered (see the module rules).

    Raises an INFRASTRUCTURE_ERRORS exception (ScorerUnavailable included) when the failure is not a
    record's; the touched partitions' entries must then be restored, as after process_batch."""
    out = BatchOutcome()
    tries = {"n": 0}

    def attempt(part: Sequence[InRecord]) -> None:
        saved = _save(store, scorer, part)
        tries["n"] += 1
        try:
            result = process_batch(part, store, scorer, topics, changelog_topic, clock, same_partitions)
        except Exception as exc:
            if is_infrastructure(exc):
                raise
            _restore(store, saved)
            if len(part) > 1:
                mid = len(part) // 2
                attempt(part[:mid])
                attempt(part[mid:])
                return
            _probe(scorer, exc)
            rec = part[0]
            reason = messages.error_reason(exc)
            logger.warning("dead-lettering %s/%d@%d: it fails alone in scoring: %s", topics.transactions,
                           rec.partition, rec.offset, reason)
            out.next_offsets[rec.partition] = rec.offset + 1
            dead_letter(out, rec, reason, KIND, topics, same_partitions)
            return
        merge(out, result)

    attempt(records)
    logger.info("isolated a failed batch of %d records in %d tries: %d dead-lettered as %s", len(records),
                tries["n"], out.dead_letters[KIND], KIND)
    return out
