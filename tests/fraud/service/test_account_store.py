"""The changelog reader waits out a leaderless partition (a broker died) instead of letting the scorer die,
and gives up in one typed error when no leader comes back.  Fakes stand in for the two kafka-python consumers."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

from npusuite.fraud.service.account_store import AccountStore, ChangelogReader, PendingState, rebuild


class FlakyEnds:
    """A consumer whose end_offsets times out ``failures`` times (no leader), then answers ``offset`` for every
    partition; an empty partition otherwise (position 0)."""

    def __init__(self, failures: int, offset: int = 7) -> None:
        self.failures, self.offset, self.calls, self.assigned = failures, offset, 0, []

    def assign(self, tps) -> None:
        self.assigned.append(list(tps))

    def seek_to_beginning(self, *tps) -> None:
        pass

    def position(self, tp) -> int:
        return 0

    def end_offsets(self, tps):
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaTimeoutError("Failed to get offsets by timestamps in 30000 ms")
        return {tp: self.offset for tp in tps}


    def close(self, autocommit=True) -> None:
        self.closed = True


def _reader(committed, uncommitted, leader_timeout_s: float, later=()) -> ChangelogReader:
    """A reader whose first clients are these fakes (no broker); each reopening takes the next pair of ``later``
    (or the same pair again)."""
    pairs = iter([(committed, uncommitted), *later])
    current: dict[str, object] = {}

    def client(isolation: str):
        if isolation == "read_committed":
            current["pair"] = next(pairs, current.get("pair"))
        return current["pair"][0 if isolation == "read_committed" else 1]

    return ChangelogReader("127.0.0.1:1", "state", 20, leader_timeout_s=leader_timeout_s, client=client)


def test_a_timed_out_read_is_started_again_until_a_leader_answers(monkeypatch):
    monkeypatch.setattr("npusuite.fraud.service.account_store.time.sleep", lambda s: None)
    committed, uncommitted = FlakyEnds(failures=2, offset=0), FlakyEnds(failures=0, offset=0)
    restored = _reader(committed, uncommitted, 180.0).restore([0, 3])
    assert restored == {0: {}, 3: {}}  # empty changelog partitions: nothing to rebuild, and no exception
    assert committed.calls == 3 and committed.assigned[-1] == []


def test_a_client_that_stays_timed_out_after_the_broker_is_back_is_replaced(monkeypatch):
    """Session 12's broker-loss run: the reader's kafka-python client timed out five times in a row (30 s each)
    after the killed broker was back, while a new client answered at once.  Each retry opens new clients."""
    monkeypatch.setattr("npusuite.fraud.service.account_store.time.sleep", lambda s: None)
    stale, stale_ends = FlakyEnds(failures=10**9), FlakyEnds(failures=0)
    fresh, fresh_ends = FlakyEnds(failures=0, offset=0), FlakyEnds(failures=0, offset=0)
    reader = _reader(stale, stale_ends, 180.0, later=[(fresh, fresh_ends)])
    assert reader.restore([2]) == {2: {}}
    assert stale.calls == 1 and getattr(stale, "closed", False) and getattr(stale_ends, "closed", False)
    assert fresh.calls == 1


def test_no_leader_for_longer_than_the_bound_is_one_typed_error(monkeypatch):
    monkeypatch.setattr("npusuite.fraud.service.account_store.time.sleep", lambda s: None)
    reader = _reader(FlakyEnds(failures=10**9), FlakyEnds(failures=0), leader_timeout_s=0.0)
    with pytest.raises(TimeoutError, match=r"changelog \[1\]: no partition leader answered"):
        reader.restore([1])


@pytest.mark.parametrize("features", ["kernel", "python"])
def test_a_state_rebuilt_from_the_changelog_keeps_its_feature_rows(fraud_data, features):
    """Records as the processor writes them (a snapshot every R/2 transactions, at a batch's last record of the
    account), rebuilt and restored: the account's history is the last 8 rows of the uninterrupted stream."""
    import json

    from npusuite.fraud.features import HISTORY_ROWS
    from npusuite.fraud.service.scoring import LiveScorer

    lines = [line for line in fraud_data.transactions.read_bytes().splitlines() if line.strip()]
    account = json.loads(lines[0])["account_id"]
    raw = [line for line in lines if json.loads(line)["account_id"] == account][:37]
    assert len(raw) >= 20
    scorer, store = LiveScorer(None, features=features), AccountStore(ring_size=10)
    store.set_partition(0, {})
    entry, state, records = store.entry(0, account), None, []
    for start in range(0, len(raw), 3):  # batches of three transactions of this account
        batch = raw[start:start + 3]
        for i, line in enumerate(batch):
            state = scorer.restore_state(scorer.encode_state(state) if state is not None else None, [line])
            due = store.snapshot_due(entry) and i == len(batch) - 1
            records.append(store.record(entry, account, json.loads(line)["transaction_id"], state,
                                        scorer.encode_state(state) if due else None, line))
    pending = rebuild(records, store.ring_size)[account].state
    assert isinstance(pending, PendingState) and pending.snapshot and pending.transactions
    restored = scorer.restore_state(pending.snapshot, pending.transactions)
    assert len(restored.recent_rows()) == HISTORY_ROWS
    assert restored.history == state.history
    assert scorer.encode_state(restored) == scorer.encode_state(state)
