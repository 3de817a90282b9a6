"""The changelog reader waits out a leaderless partition (a broker died) instead of letting the scorer die,
and gives up in one typed error when no leader comes back.  Fakes stand in for the two kafka-python consumers."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

from npusuite.fraud.service.account_store import ChangelogReader


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


def _reader(committed, uncommitted, leader_timeout_s: float) -> ChangelogReader:
    reader = ChangelogReader.__new__(ChangelogReader)  # no broker: the consumers are the fakes
    reader.topic, reader.ring_size, reader.open_tx_timeout_s = "state", 20, 60.0
    reader.leader_timeout_s = leader_timeout_s
    reader._committed, reader._uncommitted = committed, uncommitted
    return reader


def test_a_timed_out_read_is_started_again_until_a_leader_answers(monkeypatch):
    monkeypatch.setattr("npusuite.fraud.service.account_store.time.sleep", lambda s: None)
    committed, uncommitted = FlakyEnds(failures=2, offset=0), FlakyEnds(failures=0, offset=0)
    restored = _reader(committed, uncommitted, 180.0).restore([0, 3])
    assert restored == {0: {}, 3: {}}  # empty changelog partitions: nothing to rebuild, and no exception
    assert committed.calls == 3 and committed.assigned[-1] == []


def test_no_leader_for_longer_than_the_bound_is_one_typed_error(monkeypatch):
    monkeypatch.setattr("npusuite.fraud.service.account_store.time.sleep", lambda s: None)
    reader = _reader(FlakyEnds(failures=10**9), FlakyEnds(failures=0), leader_timeout_s=0.0)
    with pytest.raises(TimeoutError, match=r"changelog \[1\]: no partition leader answered"):
        reader.restore([1])
