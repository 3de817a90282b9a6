"""The commit thread: its result, its error, and a commit that never returns (librdkafka #5456/#5511)."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, KafkaException

from npusuite.fraud.service.committer import CommitStalled, InFlightCommit, SentBatch
from npusuite.fraud.service.processor import BatchOutcome


def batch() -> SentBatch:
    return SentBatch(records=3, outcome=BatchOutcome(), first={0: 10})


def test_the_commit_phases_and_errors_reach_the_waiting_thread():
    inflight = InFlightCommit(commit=lambda producer, offsets, meta: {"offsets": 0.001, "commit": 0.002})
    inflight.start(object(), [], None, batch())
    sent, error = inflight.wait(10)
    assert error is None and sent.phases == {"offsets": 0.001, "commit": 0.002} and inflight.pending is None

    def fails(producer, offsets, meta):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "injected", txn_requires_abort=True))

    inflight = InFlightCommit(commit=fails)
    inflight.start(object(), [], None, batch())
    sent, error = inflight.wait(10)
    assert isinstance(error, KafkaException) and sent.first == {0: 10}


def test_a_commit_that_never_returns_is_given_up_on_and_its_thread_cannot_hold_the_process():
    release, entered, calls = threading.Event(), threading.Event(), []

    def blocks_first(producer, offsets, meta):
        calls.append(threading.current_thread())
        if len(calls) == 1:
            entered.set()
            release.wait(30)
        return {}

    inflight = InFlightCommit(commit=blocks_first)
    inflight.start(object(), [], None, batch())
    assert entered.wait(10)
    sent, error = inflight.wait(0.2)
    assert isinstance(error, CommitStalled) and "did not return within 0.2 s" in str(error)
    assert sent.first == {0: 10} and inflight.pending is None
    stalled = calls[0]
    assert stalled.daemon and stalled.is_alive()
    # the next transaction goes to a new worker while the stalled one is still blocked
    inflight.start(object(), [], None, batch())
    assert inflight.wait(10)[1] is None and calls[1] is not stalled
    release.set()  # the stalled worker's call returns: it exits instead of taking more work
    stalled.join(10)
    assert not stalled.is_alive()
