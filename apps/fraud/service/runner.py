"""The Kafka shell around :func:`~npusuite.fraud.service.processor.process_batch`.

One loop, one Kafka transaction per poll batch (never per message):

1. ``poll`` (``read_committed``; committed offsets are fetched with
   ``require_stable``, so a crashed owner's half-finished commit is waited for);
2. if the assignment changed: drop lost partitions' state, rebuild gained
   ones from the changelog (see :mod:`.account_store`);
3. ``begin_transaction``; process the batch; send scores, alerts, dead
   letters and changelog records; ``send_offsets_to_transaction`` with the
   consumer's group metadata (KIP-447: a fenced, stale member cannot commit);
   ``commit_transaction``;
4. account entries were updated in place during 3; they are now committed.

If anything in 3 fails, the transaction is aborted, the touched partitions'
account state is reloaded from the changelog (the scorer may have updated
it in place) and the consumer rewound to the batch's first offsets, so the
batch is retried; nothing becomes visible twice to ``read_committed`` readers.  A
fatal producer error (fenced by a newer instance with the same
transactional id) stops the service with an error.

SIGTERM (``stop()``) lets the current batch commit, then closes the consumer,
which leaves the group so the others take its partitions at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from npusuite.fraud.service.account_store import AccountStore, ChangelogReader
from npusuite.fraud.service.config import ServiceConfig
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.processor import BatchScorer, InRecord, process_batch
from npusuite.fraud.service.topics import ensure_topics

logger = logging.getLogger(__name__)


class _AssignmentTracker(ConsumerRebalanceListener):
    """Runs on the consumer's IO loop: only records what changed; the main loop acts on it."""

    def __init__(self) -> None:
        self.assigned: set[int] | None = None
        self.changed = False

    def on_partitions_revoked(self, revoked):
        self.changed = True

    def on_partitions_assigned(self, assigned):
        self.assigned = {tp.partition for tp in assigned}
        self.changed = True


class FraudService:
    def __init__(self, config: ServiceConfig, scorer: BatchScorer, metrics: ServiceMetrics | None = None,
                 on_batch: Callable[[int], None] | None = None):
        self.config = config
        self.scorer = scorer
        self.metrics = metrics or ServiceMetrics()
        #: Test and benchmark hook, called with the number of records after each committed batch.
        self.on_batch = on_batch
        self.store = AccountStore(config.recent_per_account)
        self._stop = False
        self._generation = -1
        self._tracker = _AssignmentTracker()
        self._last_lag_s = 0.0
        self._progress = {"since_s": time.monotonic(), "scored": 0, "dead": 0, "batches": 0}
        self._reader: ChangelogReader | None = None
        self._same_partitions = False
        self.committed_batches = 0

    def stop(self) -> None:
        """Ask the loop to finish its current batch and exit (safe from a signal handler)."""
        self._stop = True

    # -- set-up -----------------------------------------------------------
    def _producer(self) -> KafkaProducer:
        producer = KafkaProducer(
            bootstrap_servers=self.config.bootstrap, transactional_id=self.config.transactional_id,
            transaction_timeout_ms=self.config.transaction_timeout_ms, enable_idempotence=True, acks="all",
            linger_ms=2, batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
        producer.init_transactions()  # fences and resolves our crashed predecessor's transaction
        return producer

    def _consumer(self) -> KafkaConsumer:
        c = self.config
        consumer = KafkaConsumer(
            bootstrap_servers=c.bootstrap, group_id=c.group_id, enable_auto_commit=False,
            isolation_level="read_committed", auto_offset_reset="earliest", max_poll_records=c.max_poll_records,
            session_timeout_ms=c.session_timeout_ms, heartbeat_interval_ms=c.heartbeat_interval_ms,
            max_poll_interval_ms=300_000, fetch_max_wait_ms=c.poll_timeout_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024, client_id=c.transactional_id)
        # Join the group only once this client's metadata knows the topic's partitions: a member that
        # joins first is assigned nothing, and kafka-python does not rejoin when the topic appears.
        deadline = time.monotonic() + 60
        while not consumer.partitions_for_topic(c.topics.transactions) and time.monotonic() < deadline:
            time.sleep(0.2)
        consumer.subscribe([c.topics.transactions], listener=self._tracker)
        return consumer

    # -- assignment -------------------------------------------------------
    def _sync_assignment(self, consumer: KafkaConsumer, reader: ChangelogReader) -> None:
        self._tracker.changed = False
        if self._tracker.assigned is None:
            return
        assigned = self._tracker.assigned
        generation = consumer.group_metadata().generation_id
        consecutive = generation == self._generation + 1
        self._generation = generation
        for p in list(self.store.partitions):
            if p not in assigned or not consecutive:
                self.store.drop_partition(p)
                self.metrics.forget_partition(p)
        gained = sorted(p for p in assigned if not self.store.owns(p))
        if gained:
            started = time.monotonic()
            for p, accounts in reader.restore(gained).items():
                self.store.set_partition(p, accounts)
            self.metrics.restore_seconds.observe(time.monotonic() - started)
        logger.info("generation %d: own partitions %s (restored %s)", generation, sorted(assigned), gained)

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._last_lag_s < 1.0:
            return
        self._last_lag_s = now
        lag = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None:
                lag[tp.partition] = max(0, high - consumer.position(tp, timeout_ms=1000))
        self.metrics.set_lag(lag)
        prog = self._progress
        if now - prog["since_s"] >= 10.0 and prog["batches"]:
            logger.info("scored %d transactions in %d batches over %.0f s (%.0f tx/s), %d dead letters; lag %s",
                        prog["scored"], prog["batches"], now - prog["since_s"],
                        prog["scored"] / (now - prog["since_s"]), prog["dead"], lag,
                        extra={"scored": prog["scored"], "lag": lag})
            self._progress = {"since_s": now, "scored": 0, "dead": 0, "batches": 0}

    # -- the loop ---------------------------------------------------------
    def run(self) -> None:
        """Consume until :meth:`stop`.  Raises ProducerFencedError if another instance took our transactional id."""
        c = self.config
        _, self._same_partitions = ensure_topics(c)
        producer = self._producer()
        reader = self._reader = ChangelogReader(c.bootstrap, c.changelog_topic, c.recent_per_account,
                                                open_tx_timeout_s=c.transaction_timeout_ms / 1000 * 3 + 30)
        consumer = self._consumer()
        logger.info("fraud scorer %s consuming %s in group %s", c.transactional_id, c.topics.transactions,
                    c.group_id)
        try:
            while not self._stop:
                polled = consumer.poll(timeout_ms=c.poll_timeout_ms)
                if self._tracker.changed:
                    self._sync_assignment(consumer, reader)
                refresh = getattr(self.scorer, "refresh", None)
                if refresh is not None:
                    refresh()
                if polled:
                    self._commit_batch(consumer, producer, polled)
                elif not consumer.assignment():
                    # kafka-python's poll returns at once without partitions; don't spin a core idle.
                    time.sleep(c.poll_timeout_ms / 1000)
                self._update_lag(consumer)
        finally:
            logger.info("fraud scorer %s stopping", c.transactional_id)
            consumer.close()
            producer.close(timeout=10)
            reader.close()

    def _commit_batch(self, consumer: KafkaConsumer, producer: KafkaProducer, polled: dict) -> None:
        c = self.config
        records = [InRecord(tp.partition, r.offset, r.key, r.value, r.timestamp)
                   for tp, batch in polled.items() if self.store.owns(tp.partition) for r in batch]
        if not records:
            return
        first = {}
        for r in records:
            first.setdefault(r.partition, r.offset)
        producer.begin_transaction()
        try:
            outcome = process_batch(records, self.store, self.scorer, c.topics, c.changelog_topic,
                                    same_partitions=self._same_partitions)
            send = producer.send
            for o in outcome.records:
                send(o.topic, value=o.value, key=o.key, partition=o.partition, headers=o.headers)
            offsets = {TopicPartition(c.topics.transactions, p): OffsetAndMetadata(off, "", -1)
                       for p, off in outcome.next_offsets.items()}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            started = time.monotonic()
            producer.commit_transaction()
            self.metrics.commit_seconds.observe(time.monotonic() - started)
        except ProducerFencedError:
            logger.error("fenced: another scorer runs with transactional id %s; stopping", c.transactional_id)
            raise
        except (KafkaError, RuntimeError, ValueError) as exc:
            self.metrics.aborts.inc()
            logger.warning("aborting the batch of %d records and retrying it: %s", len(records), exc)
            producer.abort_transaction()
            # The scorer may have updated state objects in place: reload the committed truth.
            touched = sorted(first)
            for p in touched:
                self.store.drop_partition(p)
            owned = {tp.partition for tp in consumer.assignment()}
            for p, accounts in self._reader.restore([p for p in touched if p in owned]).items():
                self.store.set_partition(p, accounts)
            for p, off in first.items():
                tp = TopicPartition(c.topics.transactions, p)
                if p in owned:
                    consumer.seek(tp, off)
            return
        self.metrics.observe_committed(outcome)
        self._progress["scored"] += sum(outcome.decisions.values())
        self._progress["dead"] += sum(outcome.dead_letters.values())
        self._progress["batches"] += 1
        self.committed_batches += 1
        if self.on_batch is not None:
            self.on_batch(len(records))
