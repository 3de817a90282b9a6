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
  batch's first offsets), so nothing is applied twice and nothing is lost.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from confluent_kafka import KafkaException, Producer, TopicPartition

from npusuite.fraud.service.processor import BatchOutcome


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


class InFlightCommit:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraud-commit")
        self._pending: tuple[Future, SentBatch] | None = None

    @property
    def pending(self) -> SentBatch | None:
        return self._pending[1] if self._pending else None

    def done(self) -> bool:
        return self._pending is not None and self._pending[0].done()

    def start(self, producer: Producer, offsets: list[TopicPartition], group_metadata, batch: SentBatch) -> None:
        if self._pending is not None:
            raise RuntimeError("a Kafka transaction is already in flight")
        self._pending = (self._pool.submit(_commit, producer, offsets, group_metadata), batch)

    def wait(self) -> tuple[SentBatch, KafkaException | None]:
        """The in-flight batch (its phases completed) and the commit's error (None: committed)."""
        if self._pending is None:
            raise RuntimeError("no Kafka transaction in flight")
        future, batch = self._pending
        self._pending = None
        try:
            batch.phases.update(future.result())
        except KafkaException as exc:
            return batch, exc
        return batch, None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
