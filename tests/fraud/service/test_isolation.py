"""Poison isolation without Kafka: a scorer that raises on one record after updating the states
before it (as the real one does in place) through :func:`isolate_poison`.  The issue's hostile
records through :func:`process_batch` are in test_processor.py."""

from __future__ import annotations

import json

import pytest

from npusuite.fraud.service import messages
from npusuite.fraud.service.account_store import AccountStore, decode_value
from npusuite.fraud.service.config import Topics
from npusuite.fraud.service.isolation import ScorerUnavailable, isolate_poison
from npusuite.fraud.service.processor import InRecord, ScoreResult, process_batch

TOPICS = Topics()
CHANGELOG = "g-account-state"


def tx_bytes(tid: str, account: str = "A1", **extra) -> bytes:
    tx = {"transaction_id": tid, "timestamp": "2026-03-02T00:01:16Z", "account_id": account, "card_id": "C1",
          "amount": 12.5, "currency": "EUR", "merchant_id": "M1", "merchant_category": "5411",
          "channel": "ecommerce", "country": "DE"}
    tx.update(extra)
    return json.dumps(tx).encode()


def rec(offset: int, value: bytes | None, key: bytes = b"A1", partition: int = 0) -> InRecord:
    return InRecord(partition, offset, key, value, 1_700_000_000_000)


def store_with(*partitions: int) -> AccountStore:
    store = AccountStore(ring_size=20)
    for p in partitions:
        store.set_partition(p, {})
    return store


class InPlaceScorer:
    """State = a one-element list [count], advanced in place like the live scorer's AccountState.
    A transaction at merchant ``BOOM`` raises after the states before it have moved on; ``fail`` makes
    every call raise ``fail`` (an engine that is down)."""

    def __init__(self, fail: Exception | None = None):
        self.fail = fail
        self.calls = 0

    def score_batch(self, requests):
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        out = []
        for r in requests:
            if r.transaction.merchant_id == "BOOM":
                raise ZeroDivisionError(f"float division by zero in {r.transaction.transaction_id}")
            r.state[0] += 1
            out.append(ScoreResult({"transaction_id": r.transaction.transaction_id, "score": 0.1,
                                    "decision": "approve", "reasons": [], "model": "count@1", "latency_ms": 0.0},
                                   r.state))
        return out

    def encode_state(self, state):
        return str(state[0]).encode()

    def restore_state(self, snapshot, transactions):
        return [(int(snapshot) if snapshot else 0) + len(transactions)]


def dlq(outcome):
    return [(r.value, dict(r.headers)[messages.DLQ_REASON_HEADER].decode()) for r in outcome.records
            if r.topic == TOPICS.dlq]


def scored(outcome):
    return [json.loads(r.value)["transaction_id"] for r in outcome.records if r.topic == TOPICS.scores]


def count(store, account, partition=0):
    entry = store.partitions[partition][account]
    state = entry.state
    if not isinstance(state, list):  # a PendingState after a restore: resolve it as the processor would
        state = InPlaceScorer().restore_state(state.snapshot, state.transactions)
    return state[0], entry.seq


def test_a_record_that_fails_alone_is_dead_lettered_and_the_rest_scored_with_their_state_intact():
    """Accounts A1 and B1 interleaved; A1's 4th transaction raises after the states before it moved on."""
    store = store_with(0)
    scorer = InPlaceScorer()
    # A first, committed batch: A1 at 2, B1 at 1.
    process_batch([rec(0, tx_bytes("A-1")), rec(1, tx_bytes("A-2")), rec(2, tx_bytes("B-1", "B1"), b"B1")],
                  store, scorer, TOPICS, CHANGELOG)
    batch = [rec(3, tx_bytes("A-3")), rec(4, tx_bytes("B-2", "B1"), b"B1"), rec(5, b"{broken"),
             rec(6, tx_bytes("A-4", merchant_id="BOOM")), rec(7, tx_bytes("A-5")), rec(8, tx_bytes("B-3", "B1"), b"B1")]
    outcome = isolate_poison(batch, store, scorer, TOPICS, CHANGELOG)
    dead = dlq(outcome)
    assert [v for v, _ in dead] == [b"{broken", batch[3].value]
    assert dead[1][1] == "ZeroDivisionError: float division by zero in A-4"
    assert scored(outcome) == ["A-3", "B-2", "A-5", "B-3"]  # offset order kept
    assert outcome.next_offsets == {0: 9}
    assert outcome.dead_letters == {"schema": 1, "scoring": 1}
    assert sum(outcome.decisions.values()) == 4
    # Exactly the valid transactions were applied, once each.
    assert count(store, "A1") == (4, 4) and count(store, "B1") == (3, 3)
    changelog = [decode_value(r.value)[1] for r in outcome.records if r.topic == CHANGELOG]
    assert changelog == ["A-3", "B-2", "A-5", "B-3"]


def test_every_record_failing_alone_is_dead_lettered_and_a_new_account_is_not_left_behind():
    store = store_with(0, 1)
    batch = [rec(0, tx_bytes("N-1", "N1", merchant_id="BOOM"), b"N1"),
             rec(0, tx_bytes("M-1", "M1", merchant_id="BOOM"), b"M1", partition=1)]
    outcome = isolate_poison(batch, store, InPlaceScorer(), TOPICS, CHANGELOG)
    assert len(dlq(outcome)) == 2 and outcome.next_offsets == {0: 1, 1: 1}
    assert store.partitions == {0: {}, 1: {}}


@pytest.mark.parametrize("failure", [OSError("disk full"), ValueError("model weights are NaN")])
def test_a_failure_that_is_not_a_records_is_retried_never_dead_lettered(failure):
    """An infrastructure error propagates at once; any other error that a probe transaction on a blank
    account hits too is the scorer's, not the record's (ScorerUnavailable)."""
    store = store_with(0)
    expected = OSError if isinstance(failure, OSError) else ScorerUnavailable
    with pytest.raises(expected):
        isolate_poison([rec(0, tx_bytes("T1")), rec(1, tx_bytes("T2"))], store, InPlaceScorer(failure), TOPICS,
                       CHANGELOG)


def test_isolation_costs_nothing_when_the_batch_scores():
    store = store_with(0)
    scorer = InPlaceScorer()
    outcome = isolate_poison([rec(i, tx_bytes(f"T{i}")) for i in range(50)], store, scorer, TOPICS, CHANGELOG)
    assert scorer.calls == 1 and len(scored(outcome)) == 50 and not dlq(outcome)


def test_one_poison_in_a_large_batch_takes_logarithmically_many_tries():
    store = store_with(0)
    scorer = InPlaceScorer()
    batch = [rec(i, tx_bytes(f"T{i}", merchant_id="BOOM" if i == 1234 else "M1")) for i in range(2000)]
    outcome = isolate_poison(batch, store, scorer, TOPICS, CHANGELOG)
    assert [v for v, _ in dlq(outcome)] == [batch[1234].value] and len(scored(outcome)) == 1999
    assert scorer.calls <= 2 * 11 + 2  # 2 log2(2000) tries, plus the probe
    assert count(store, "A1") == (1999, 1999)


def test_dead_letter_reasons_are_one_bounded_line():
    reason = messages.error_reason(ValueError("line one\nline two " + "x" * 1000))
    assert reason.startswith("ValueError: line one line two") and "\n" not in reason
    assert len(reason) == messages.MAX_REASON_CHARS
