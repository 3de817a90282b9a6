"""The Kafka transaction in flight: committed in a background thread while the next batch is scored.

``send_offsets_to_transaction`` and ``commit_transaction`` are round trips to
the group and transaction coordinators (a few ms each, more under load); the
scorer's one Python thread would idle through them.  :class:`InFlightCommit`
runs them in a thread of its own (confluent-kafka releases the GIL while it
waits) and the runner scores the next batch meanwhile.

Rules (the runner keeps them):

* at most one transaction is in flight, and the producer is used by one
  thread at a time: the runner :meth:`~InFlightCommit.wait` s for the
  in-flight commit before it begins the next transaction;
* the next batch is scored on top of the in-flight batch's account state; if
  that commit then fails, both batches are rolled back together (the runner
  restores their partitions from the changelog and rewinds to the earlier
  batch's first offsets, or to the group's committed offsets where a replaced
  producer left the transaction's fate open), so nothing is applied twice and
  nothing is lost.

A commit that never returns is bounded too: librdkafka's
``send_offsets_to_transaction`` can block past its own timeout while the
group coordinator is down (librdkafka issues #5456 and #5511, open; seen in the
broker-loss test).  :meth:`InFlightCommit.wait` gives up after ``limit_s`` and
returns :class:`CommitStalled`; the runner then abandons that producer (its
thread may stay blocked inside it) and starts a new one, whose
``init_transactions`` settles the stalled transaction on the broker one way
or the other.  Commits run in a daemon worker thread (a call that never
returns cannot hold the process at exit); a stalled worker is left behind,
told to exit once its call returns, and the next commit starts a new one.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, Producer, TopicPartition

from npusuite.fraud.service.processor import BatchOutcome


class CommitStalled(Exception):
    """The commit did not return within the runner's limit: the transaction's fate is unknown."""


@dataclass
class SentBatch:
    """A batch whose records are produced and whose transaction is committing."""

    records: int
    outcome: BatchOutcome
    #: partition -> offset of the batch's first record (where to rewind to if the commit fails).
    first: dict[int, int]
    #: seconds per phase measured on the main thread (score, produce); the commit adds its own.
    phases: dict[str, float] = field(default_factory=dict)


def _commit(producer: Producer, offsets: list[TopicPartition], group_metadata) -> dict[str, float]:
    started = time.perf_counter()
    producer.send_offsets_to_transaction(offsets, group_metadata, 30)
    sent = time.perf_counter()
    producer.commit_transaction(60)
    return {"offsets": sent - started, "commit": time.perf_counter() - sent}


def _run(future: Future, call, *args) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(call(*args))
    except BaseException as exc:  # handed to the waiting thread
        future.set_exception(exc)


def _serve(jobs: queue.SimpleQueue, commit) -> None:
    """The commit worker: runs each job until it gets None."""
    while (job := jobs.get()) is not None:
        _run(job[0], commit, *job[1])


class InFlightCommit:
    def __init__(self, commit=_commit) -> None:
        self._commit = commit
        self._pending: tuple[Future, SentBatch] | None = None
        #: the live worker's job queue (None: start one at the next commit)
        self._jobs: queue.SimpleQueue | None = None

    def _worker(self) -> queue.SimpleQueue:
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(self._jobs, self._commit), name="fraud-commit",
                             daemon=True).start()
        return self._jobs

    @property
    def pending(self) -> SentBatch | None:
        return self._pending[1] if self._pending else None

    def done(self) -> bool:
        return self._pending is not None and self._pending[0].done()

    def start(self, producer: Producer, offsets: list[TopicPartition], group_metadata, batch: SentBatch) -> None:
        if self._pending is not None:
            raise RuntimeError("a Kafka transaction is already in flight")
        future: Future = Future()
        self._worker().put((future, (producer, offsets, group_metadata)))
        self._pending = (future, batch)

    def wait(self, limit_s: float | None = None) -> tuple[SentBatch, KafkaException | CommitStalled | None]:
        """The in-flight batch (its phases completed) and the commit's error (None: committed;
        :class:`CommitStalled`: no answer within ``limit_s``, the thread is left behind)."""
        if self._pending is None:
            raise RuntimeError("no Kafka transaction in flight")
        future, batch = self._pending
        self._pending = None
        try:
            batch.phases.update(future.result(limit_s))
        except FutureTimeout:
            self._jobs.put(None)  # the stalled worker exits once its call returns; the next commit gets a new one
            self._jobs = None
            return batch, CommitStalled(f"the Kafka transaction's commit did not return within {limit_s:g} s")
        except KafkaException as exc:
            return batch, exc
        return batch, None
