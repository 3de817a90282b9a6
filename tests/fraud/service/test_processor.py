"""The pure per-batch core and the changelog encoding, without Kafka.

The scorer here is a hand-built one implementing the ``BatchScorer`` protocol
(state = number of transactions seen), so the processor's own rules are
checked in isolation; the Kafka tests use the real models.
"""

from __future__ import annotations

import json
from collections import deque

import pytest

from npusuite.fraud.service import messages
from npusuite.fraud.service.account_store import AccountEntry, AccountStore, decode_value, encode_value, rebuild
from npusuite.fraud.service.config import Topics
from npusuite.fraud.service.processor import InRecord, ScoreResult, process_batch

TOPICS = Topics()
CHANGELOG = "g-account-state"


class CountingScorer:
    """Every 3rd transaction of an account is declined; state is the count."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def score_batch(self, requests):
        self.calls.append([r.transaction.transaction_id for r in requests])
        out, latest = [], {}
        for r in requests:
            n = latest.get(r.transaction.account_id, r.state or 0) + 1
            latest[r.transaction.account_id] = n
            decision = "decline" if n % 3 == 0 else "approve"
            out.append(ScoreResult({"transaction_id": r.transaction.transaction_id, "score": 0.9 if n % 3 == 0 else 0.1,
                                    "decision": decision, "reasons": [], "model": "count@1", "latency_ms": 0.0},
                                   n, {"n": float(n)}))
        return out

    def encode_state(self, state):
        return str(state).encode()

    def restore_state(self, snapshot, transactions):
        return (int(snapshot) if snapshot else 0) + len(transactions)


def tx_bytes(tid: str, account: str = "A1", **extra) -> bytes:
    tx = {"transaction_id": tid, "timestamp": "2026-03-02T00:01:16.966969Z", "account_id": account,
          "card_id": "C1", "amount": 12.5, "currency": "EUR", "merchant_id": "M1", "merchant_category": "5411",
          "channel": "ecommerce", "country": "DE", "lat": None, "lon": None, "device_id": "D1", "ip": None}
    tx.update(extra)
    return json.dumps(tx).encode()


def rec(offset: int, value: bytes | None, key: bytes | None = b"A1", partition: int = 0) -> InRecord:
    return InRecord(partition, offset, key, value, 1_700_000_000_000)


def store_with(*partitions: int) -> AccountStore:
    store = AccountStore(ring_size=20)
    for p in partitions:
        store.set_partition(p, {})
    return store


def by_topic(outcome, topic):
    return [r for r in outcome.records if r.topic == topic]


def test_bad_messages_become_dead_letters_with_reason_and_original_bytes():
    store = store_with(0)
    bad = [rec(0, b"{not json"), rec(1, tx_bytes("T1", amount=-3)), rec(2, None), rec(3, tx_bytes("T2"), key=b"B9"),
           rec(4, b"[1, 2]")]
    outcome = process_batch([*bad, rec(5, tx_bytes("T3"))], store, CountingScorer(), TOPICS, CHANGELOG)
    dlq = by_topic(outcome, TOPICS.dlq)
    assert [r.value for r in dlq] == [b.value for b in bad]
    reasons = [dict(r.headers)[messages.DLQ_REASON_HEADER].decode() for r in dlq]
    assert "not valid JSON" in reasons[0]
    assert "amount" in reasons[1]
    assert "null value" in reasons[2]
    assert "not the account_id" in reasons[3]
    assert "not a JSON object" in reasons[4]
    assert dict(dlq[0].headers)[messages.DLQ_SOURCE_HEADER] == b"transactions/0@0"
    assert [json.loads(r.value)["transaction_id"] for r in by_topic(outcome, TOPICS.scores)] == ["T3"]
    assert outcome.next_offsets == {0: 6}
    assert sum(outcome.dead_letters.values()) == 5


def test_same_account_in_one_batch_is_scored_in_one_call_and_each_sees_the_previous():
    store = store_with(0)
    scorer = CountingScorer()
    batch = [rec(0, tx_bytes("T1")), rec(1, tx_bytes("U1", "B1"), key=b"B1"), rec(2, tx_bytes("T2")),
             rec(3, tx_bytes("T3"))]
    outcome = process_batch(batch, store, scorer, TOPICS, CHANGELOG)
    assert scorer.calls == [["T1", "U1", "T2", "T3"]]
    alerts = by_topic(outcome, TOPICS.alerts)
    assert [json.loads(a.value)["transaction_id"] for a in alerts] == ["T3"]
    alert = json.loads(alerts[0].value)
    assert [t["transaction_id"] for t in alert["account_recent"]] == ["T1", "T2"]
    assert alert["transaction"]["transaction_id"] == "T3" and alert["fraud_type"] is None
    assert alert["features"] == {"n": 3.0} and alert["llm_rationale"] is None
    assert store.partitions[0]["A1"].seq == 3 and store.partitions[0]["A1"].state == 3


def test_an_account_restored_from_the_changelog_is_rebuilt_on_first_use():
    store = store_with(0)
    scorer = CountingScorer()
    records = []
    for i in range(1, 6):
        outcome = process_batch([rec(i, tx_bytes(f"T{i}"))], store, scorer, TOPICS, CHANGELOG)
        records += [(r.key, r.value) for r in by_topic(outcome, CHANGELOG)]
    fresh = store_with()
    fresh.set_partition(0, rebuild(records, ring_size=20))
    outcome = process_batch([rec(6, tx_bytes("T6"))], fresh, scorer, TOPICS, CHANGELOG)
    assert fresh.partitions[0]["A1"].state == 6 and fresh.partitions[0]["A1"].seq == 6
    assert json.loads(by_topic(outcome, TOPICS.scores)[0].value)["decision"] == "decline"  # 6 % 3 == 0


def test_a_repeated_transaction_id_is_not_scored_twice():
    store = store_with(0)
    process_batch([rec(0, tx_bytes("T1"))], store, CountingScorer(), TOPICS, CHANGELOG)
    outcome = process_batch([rec(1, tx_bytes("T1")), rec(2, tx_bytes("T2")), rec(3, tx_bytes("T2"))], store,
                            CountingScorer(), TOPICS, CHANGELOG)
    assert [json.loads(r.value)["transaction_id"] for r in by_topic(outcome, TOPICS.scores)] == ["T2"]
    assert outcome.dead_letters["duplicate"] == 2


def test_changelog_records_rebuild_state_and_recent_history():
    store = AccountStore(ring_size=4)
    store.set_partition(2, {})
    records = []
    for i in range(1, 11):
        outcome = process_batch([rec(i, tx_bytes(f"T{i}"), partition=2)], store, CountingScorer(), TOPICS,
                                CHANGELOG)
        records += [(r.key, r.value) for r in by_topic(outcome, CHANGELOG)]
        assert all(r.partition == 2 for r in by_topic(outcome, CHANGELOG))
    # What compaction keeps (the last value per key) rebuilds the same as the full log.
    compacted = list({k: (k, v) for k, v in records}.values())
    scorer = CountingScorer()
    for log in (records, compacted):
        entry = rebuild(log, ring_size=4)["A1"]
        # Snapshots are written every ring_size/2 = 2 transactions: T10's record carries one.
        assert entry.seq == 10 and entry.state.snapshot == b"10" and entry.state.transactions == ()
        assert scorer.restore_state(entry.state.snapshot, entry.state.transactions) == 10
        assert [tid for tid, _ in entry.recent] == ["T7", "T8", "T9", "T10"]
    # Without the last record, the state is T8's snapshot plus T9 replayed.
    entry = rebuild(records[:-1], ring_size=4)["A1"]
    assert entry.seq == 9 and entry.state.snapshot == b"8" and [json.loads(t)["transaction_id"]
                                                                 for t in entry.state.transactions] == ["T9"]
    assert len(compacted) == 4
    seq, tid, state, raw = decode_value(records[-1][1])
    assert (seq, tid, state) == (10, "T10", b"10") and json.loads(raw)["transaction_id"] == "T10"
    assert decode_value(records[-2][1])[2] == b""


def test_a_snapshot_rides_on_the_accounts_last_record_of_a_batch_and_restores_exactly():
    """A burst of 25 transactions of one account in one batch: one snapshot, on the 25th record; the
    ring (20) still holds it, and a rebuild from the changelog gives the live state."""
    store = store_with(0)
    scorer = CountingScorer()
    outcome = process_batch([rec(i, tx_bytes(f"T{i}")) for i in range(1, 26)], store, scorer, TOPICS, CHANGELOG)
    changelog = [(r.key, r.value) for r in by_topic(outcome, CHANGELOG)]
    assert [decode_value(v)[2] for _, v in changelog] == [b""] * 24 + [b"25"]
    outcome = process_batch([rec(26, tx_bytes("T26")), rec(27, tx_bytes("T27"))], store, scorer, TOPICS, CHANGELOG)
    changelog += [(r.key, r.value) for r in by_topic(outcome, CHANGELOG)]
    assert all(decode_value(v)[2] == b"" for _, v in changelog[-2:])  # 2 since the snapshot: not due
    compacted = list({k: (k, v) for k, v in changelog}.values())
    entry = rebuild(compacted, ring_size=20)["A1"]
    assert (entry.seq, entry.snapshot_seq, entry.state.snapshot) == (27, 25, b"25")
    assert scorer.restore_state(entry.state.snapshot, entry.state.transactions) == 27 == store.partitions[0]["A1"].state


@pytest.mark.parametrize(("tid_chars", "why"), [(1_024_000, "larger than the limit"), (129, "transaction_id")])
def test_issue_2a_a_megabyte_transaction_id_is_a_dead_letter_not_a_struct_error(tid_chars, why):
    """The issue's 1,024,000 characters are refused for the message's size; 129 for the id's length."""
    store = store_with(0)
    huge = tx_bytes("x" * tid_chars)
    outcome = process_batch([rec(0, huge), rec(1, tx_bytes("T1"))], store, CountingScorer(), TOPICS, CHANGELOG)
    [(value, reason)] = [(r.value, dict(r.headers)[messages.DLQ_REASON_HEADER].decode())
                         for r in by_topic(outcome, TOPICS.dlq)]
    assert value == huge and why in reason and len(reason) <= 300
    assert [json.loads(r.value)["transaction_id"] for r in by_topic(outcome, TOPICS.scores)] == ["T1"]
    assert outcome.next_offsets == {0: 2}


@pytest.mark.parametrize("depth", [100_000, 8_000])
def test_issue_2b_deeply_nested_brackets_are_a_dead_letter(depth):
    """100,000 deep is refused for its size, 8,000 deep (16 kB, within the size) for its depth."""
    store = store_with(0)
    deep = b"[" * depth + b"]" * depth
    outcome = process_batch([rec(0, deep), rec(1, tx_bytes("T1"))], store, CountingScorer(), TOPICS, CHANGELOG)
    [(value, reason)] = [(r.value, dict(r.headers)[messages.DLQ_REASON_HEADER].decode())
                         for r in by_topic(outcome, TOPICS.dlq)]
    assert value == deep and ("deep" in reason or "bytes" in reason)
    assert [json.loads(r.value)["transaction_id"] for r in by_topic(outcome, TOPICS.scores)] == ["T1"]


def test_a_changelog_value_that_cannot_be_encoded_raises_value_error_and_leaves_the_entry_alone():
    """Defence in depth for 2a: the header's length field cannot hold a 70,000-byte id.  Before, struct.error
    escaped (not an error anyone caught) after the entry had already moved on."""
    with pytest.raises(ValueError, match="changelog header"):
        encode_value(1, "x" * 70_000, b"", b"{}")
    store = AccountStore(ring_size=4)
    entry = AccountEntry(recent=deque(maxlen=4))
    with pytest.raises(ValueError):
        store.record(entry, "A1", "x" * 70_000, [1], None, b"{}")
    assert (entry.seq, entry.state, list(entry.recent), entry.ids) == (0, None, [], set())
    key, value = store.record(entry, "A1", "T\u00e9", [1], b"1", b"{}")
    assert decode_value(value)[:3] == (1, "T\u00e9", b"1")
