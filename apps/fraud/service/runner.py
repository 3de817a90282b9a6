"""The Kafka shell around :func:`~npusuite.fraud.service.processor.process_batch`.

The hot path uses confluent-kafka (librdkafka): its consumer decodes and its
producer batches records in C, which leaves the scorer's one Python thread for
scoring.  ``bench/fraud_stream.py`` measures both clients' bare pipes beside the
scorer; see ``docs/fraud-service.md``.

One loop, one Kafka transaction per batch (never per message):

1. take every record already fetched (up to ``max_poll_records``, and up to
   what the scorer is expected to score in ``max_batch_ms``: a bound by time
   as well as size, from its measured cost per record), waiting up to
   ``poll_timeout_ms`` only when none is: the batch is whatever arrived
   while the previous one was scored and committed, so batches grow with the
   load and latency stays one cycle (``read_committed``; committed offsets are
   fetched with ``require_stable``, so a crashed owner's half-finished commit
   is waited for, never read around);
2. rebalances (cooperative-sticky) are handled inside that call by
   :class:`_Rebalance`: revoked or lost partitions' accounts are dropped,
   gained ones are rebuilt from the changelog before their first record is
   returned; partitions kept across a rebalance keep their state;
3. score the batch (:func:`process_batch`) while the previous batch's
   transaction commits in the background (:mod:`.committer`); wait for that
   commit; ``begin_transaction``; produce scores, alerts, dead letters and
   changelog records; start this batch's commit: ``send_offsets_to_transaction``
   with the consumer's group metadata (KIP-447: a fenced, stale member cannot
   commit) and ``commit_transaction``.

If a commit fails with an abortable error, the transaction is aborted, the
touched partitions' accounts (of that batch and of the one scored on top of
it) are reloaded from the changelog (the scorer updated them in place) and the
consumer is rewound to the earlier batch's first offsets, so both are scored
again; nothing becomes visible twice to ``read_committed`` readers.  If the
producer's transactional state is broken instead (another fatal error, or the
abort fails: a broker lost under load), the producer is replaced by a new one
with the same transactional id (:mod:`.producer`) and the batches are rolled
back the same way.  A commit that does not return within ``commit_stall_ms``
(librdkafka can block past its own timeout while the group coordinator is
down) is treated likewise, its producer abandoned to the blocked thread.  After
any replacement the old transaction may have committed (its answer lost), so
the consumer rewinds to the group's committed offsets, not to the batch's
first ones.  Being fenced by a newer instance with the same
transactional id stops the service with an error.  A rebalance callback that
takes partitions away first waits for the in-flight commit, so their next
owner starts after it.

Poison isolation: no record stops a partition or the process.  If scoring a
batch raises anything (not only the scorer: a changelog value that cannot be
written too), the in-flight commit is settled, the batch's partitions are
reloaded from the changelog (their accounts may be half-updated) and
:func:`~.isolation.isolate_poison` bisects the batch: each record that fails
alone is dead-lettered (kind ``scoring``, reason ``<type>: <message>``) in
the same Kafka transaction as the others' scores and the offsets.  A failure
of infrastructure (Kafka, OS/disk, memory, a busy or swapping engine, or a
scorer that fails a probe transaction too) is never dead-lettered: the batch
is rolled back and tried again after a pause (0.1 s doubling to 5 s).

The service sets CPython's thread switch interval to ``gil_switch_interval_ms``
(1 ms; CPython's default is 5 ms) while it runs: the commit thread needs the
GIL for a moment after each of its broker round trips, and while the scoring
thread runs Python it would otherwise get it only at the next 5 ms switch.

SIGTERM (``stop()``) lets the current batch commit, then closes the consumer,
which leaves the group so the others take its partitions at once.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from npusuite.fraud.service import messages
from npusuite.fraud.service.account_store import AccountStore, ChangelogReader
from npusuite.fraud.service.committer import CommitStalled, InFlightCommit, SentBatch
from npusuite.fraud.service.config import ServiceConfig
from npusuite.fraud.service.isolation import is_infrastructure, isolate_poison
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.processor import BatchOutcome, BatchScorer, InRecord, process_batch
from npusuite.fraud.service.producer import TransactionalProducer, producer_config
from npusuite.fraud.service.reporting import BatchReport, consumer_lag
from npusuite.fraud.service.topics import ensure_topics
from npusuite.platform.gc_policy import GcPolicy
from npusuite.platform.kafka.leaders import LeaderWatch

logger = logging.getLogger(__name__)
#: librdkafka's own log lines and client errors (connection losses, retries) go here.
client_logger = logging.getLogger("npusuite.fraud.service.kafka")


def _client_error(err: KafkaError) -> None:
    level = logging.ERROR if err.fatal() else logging.WARNING
    client_logger.log(level, "kafka client: %s", err.str())


class _Rebalance:
    """The consumer's rebalance callbacks (they run inside ``consume``/``poll``, on the main thread,
    between two Kafka transactions): the store follows the assignment."""

    def __init__(self, service: FraudService):
        self.service = service

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.service.gain([tp.partition for tp in partitions])

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.service.lose([tp.partition for tp in partitions], "revoked")

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.service.lose([tp.partition for tp in partitions], "lost")


class FraudService:
    def __init__(self, config: ServiceConfig, scorer: BatchScorer, metrics: ServiceMetrics | None = None,
                 gc_policy: GcPolicy | None = None):
        self.config = config
        self.scorer = scorer
        self.metrics = metrics or ServiceMetrics()
        self.store = AccountStore(config.recent_per_account)
        #: Full cyclic-GC passes over the account heap only when idle (see npusuite.platform.gc_policy).
        self.gc = gc_policy or GcPolicy()
        self._stop = False
        self._last_lag_s = 0.0
        self.report = BatchReport(self.metrics, config.slow_batch_ms)
        self._reader: ChangelogReader | None = None
        self._same_partitions = False
        #: partition -> offset after the last record this process committed (for the lag metric).
        self._committed_next: dict[int, int] = {}
        self._inflight = InFlightCommit()
        self._txn: TransactionalProducer | None = None
        #: partition -> offset to rewind to, for a transaction that aborted inside a rebalance callback.
        self._rollback_pending: dict[int, int] = {}
        #: Consecutive batches rolled back for a failure that is not a record's (for the retry pause).
        self._failures = 0
        #: /readyz's broker probe (its own admin client, off the scoring thread), cached for 5 s.
        self._health_admin = None
        self._broker_checked_s = float("-inf")
        self._broker_ok = False
        #: Seconds the main thread waited for in-flight commits in this loop cycle (the ``settle`` phase).
        self._settle_wait_s = 0.0
        #: Moving average of the score phase's seconds per record (None: no batch measured yet).
        self._score_s_per_record: float | None = None

    def stop(self) -> None:
        """Ask the loop to finish its current batch and exit (safe from a signal handler)."""
        self._stop = True

    # -- set-up -----------------------------------------------------------
    def _client_config(self, role: str) -> dict:
        # Leader changes (a broker lost, a partition moved) are logged at WARNING from the client's statistics,
        # which librdkafka hands over between polls: nothing is added per record.
        watch = LeaderWatch(client_logger, f"kafka {role}")
        # TCP_NODELAY as the Java client always sets it (librdkafka leaves Nagle on): a small request (a fetch,
        # a heartbeat, a transaction's coordinator calls) must not wait behind unacknowledged data.
        return {"bootstrap.servers": self.config.bootstrap, "client.id": self.config.transactional_id,
                "logger": client_logger, "error_cb": self._client_error, "socket.nagle.disable": True,
                **watch.client_config()}

    def _client_error(self, err: KafkaError) -> None:
        """librdkafka's error callback (and consume errors): logged, and counted by error name."""
        self.metrics.kafka_client_errors.labels(error=err.name()).inc()
        _client_error(err)

    def _producer(self) -> Producer:
        """A new transactional producer (:class:`TransactionalProducer` calls ``init_transactions``)."""
        c = self.config
        return Producer(producer_config(self._client_config("producer"), c.transactional_id,
                                        c.transaction_timeout_ms))

    def _transactional_producer(self, make) -> TransactionalProducer:
        """The producer's lifecycle (:mod:`.producer`), each replacement counted by reason."""
        replacements = self.metrics.producer_replacements
        return TransactionalProducer(make, self.config.transactional_id,
                                     on_renew=lambda reason: replacements.labels(reason=reason).inc())

    def _consumer(self) -> Consumer:
        c = self.config
        consumer = Consumer({
            **self._client_config("consumer"), "group.id": c.group_id, "enable.auto.commit": False,
            "isolation.level": "read_committed", "auto.offset.reset": "earliest",
            "session.timeout.ms": c.session_timeout_ms, "heartbeat.interval.ms": c.heartbeat_interval_ms,
            "max.poll.interval.ms": 300_000, "fetch.wait.max.ms": c.poll_timeout_ms,
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
            # Cooperative: a rebalance moves only the partitions that change owner; the others keep scoring.
            "partition.assignment.strategy": "cooperative-sticky"})
        callbacks = _Rebalance(self)
        consumer.subscribe([c.topics.transactions], on_assign=callbacks.on_assign, on_revoke=callbacks.on_revoke,
                           on_lost=callbacks.on_lost)
        return consumer

    # -- assignment (called from the rebalance callbacks) -------------------
    def gain(self, partitions: list[int]) -> None:
        """Rebuild gained partitions' accounts from the changelog before their first record is scored."""
        gained = sorted(p for p in partitions if not self.store.owns(p))
        if gained:
            started = time.monotonic()
            for p, accounts in self._reader.restore(gained).items():
                self.store.set_partition(p, accounts)
            self.metrics.restore_seconds.observe(time.monotonic() - started)
        self.metrics.set_partitions(len(self.store.partitions))
        logger.info("assigned partitions %s: own partitions %s (restored %s)", sorted(partitions),
                    sorted(self.store.partitions), gained)

    def lose(self, partitions: list[int], why: str) -> None:
        """Let the in-flight transaction finish before the partitions go (their new owner then starts after
        it); if it aborted, its other partitions are rolled back after the callback."""
        if self._inflight.pending is not None:
            aborted = self._settle()
            self._rollback_pending = _earliest(self._rollback_pending, aborted)
        for p in partitions:
            self._rollback_pending.pop(p, None)
            self.store.drop_partition(p)
            self._committed_next.pop(p, None)
            self.metrics.forget_partition(p)
        self.metrics.set_partitions(len(self.store.partitions))
        logger.info("%s partitions %s: own partitions %s", why, sorted(partitions), sorted(self.store.partitions))

    # -- health (called from the metrics server's thread) -------------------
    def readiness(self) -> dict[str, bool]:
        """``/readyz``: the broker answers a metadata request (cached 5 s), the fast model is loaded, and
        this scorer owns at least one partition."""
        now = time.monotonic()
        if now - self._broker_checked_s >= 5.0:
            self._broker_checked_s = now
            try:
                if self._health_admin is None:
                    from confluent_kafka.admin import AdminClient

                    self._health_admin = AdminClient({
                        "bootstrap.servers": self.config.bootstrap, "logger": client_logger,
                        "client.id": f"{self.config.transactional_id}-health"})
                self._health_admin.list_topics(self.config.topics.transactions, timeout=2.0)
                self._broker_ok = True
            except Exception as exc:  # unreachable, auth, timeout: not ready
                logger.debug("readiness: broker metadata failed: %s", exc)
                self._broker_ok = False
        engine = getattr(self.scorer, "fast", None)  # the live scorer's engine; other scorers are in-process
        return {"broker": self._broker_ok, "model": bool(getattr(engine, "ready", True)),
                "partitions": bool(self.store.partitions)}

    def _update_lag(self, consumer: Consumer) -> None:
        now = time.monotonic()
        if now - self._last_lag_s < 1.0:
            return
        self._last_lag_s = now
        lag = consumer_lag(consumer, self.config.topics.transactions, self.store.partitions, self._committed_next)
        self.metrics.set_lag(lag)
        self.report.progress(lag)

    # -- the loop ---------------------------------------------------------
    def run(self) -> None:
        """Consume until :meth:`stop`.  Raises FencedError (.producer) if another instance took our transactional id."""
        c = self.config
        _, self._same_partitions = ensure_topics(c)
        self._reader = ChangelogReader(c.bootstrap, c.changelog_topic, c.recent_per_account,
                                       open_tx_timeout_s=c.transaction_timeout_ms / 1000 * 3 + 30)
        self._txn = self._transactional_producer(self._producer)
        consumer = self._consumer()
        self.gc.install()
        switch_interval = sys.getswitchinterval()
        if c.gil_switch_interval_ms > 0:
            sys.setswitchinterval(c.gil_switch_interval_ms / 1000)
        logger.info("fraud scorer %s consuming %s in group %s", c.transactional_id, c.topics.transactions,
                    c.group_id)
        try:
            while not self._stop:
                self._settle_wait_s = 0.0
                records = self._next_batch(consumer)
                records = self._apply_pending_rollback(consumer, records)
                if records and self._inflight.pending is not None and len(records) < c.overlap_min_records:
                    # Not behind: little scoring to overlap, and waiting for the commit first lets the batch
                    # grow (one transaction per cycle instead of many small ones).
                    records = self._settle_then_take_more(consumer, records)
                refresh = getattr(self.scorer, "refresh", None)
                if refresh is not None:
                    refresh()
                if records:
                    self._score_and_send(consumer, records)
                else:  # nothing to overlap the in-flight commit with: finish it now
                    self._rollback(consumer, self._settle(), "the Kafka transaction aborted")
                    self.gc.idle()
                self._update_lag(consumer)
        finally:
            logger.info("fraud scorer %s stopping", c.transactional_id)
            try:
                if self._inflight.pending is not None:
                    self._settle()  # let the batch in flight commit (or abort) before leaving the group
            finally:
                consumer.close()
                self._txn.close()
                self._reader.close()
                sys.setswitchinterval(switch_interval)

    def batch_limit(self) -> int:
        """The most records to take into one batch: ``max_poll_records``, and at most what the scorer is
        expected to score in ``max_batch_ms`` (never fewer than ``overlap_min_records``)."""
        c = self.config
        per_record = self._score_s_per_record
        if not c.max_batch_ms or not per_record:
            return c.max_poll_records
        by_time = int(c.max_batch_ms / 1000 / per_record)
        return max(min(c.overlap_min_records, c.max_poll_records), min(c.max_poll_records, by_time))

    def _observe_score_time(self, n: int, seconds: float) -> None:
        """Fold one batch's score phase into the per-record average (batches of 50 or more: in smaller ones
        the per-batch costs, a model pass, dominate)."""
        if n < 50:
            return
        x = seconds / n
        avg = self._score_s_per_record
        self._score_s_per_record = x if avg is None else 0.8 * avg + 0.2 * x

    def _next_batch(self, consumer: Consumer) -> list[InRecord]:
        """Everything fetched so far (at most :meth:`batch_limit`); blocks up to poll_timeout_ms only if nothing is."""
        c = self.config
        limit = self.batch_limit()
        messages = consumer.consume(limit, 0)
        if not messages:
            first = consumer.poll(c.poll_timeout_ms / 1000)
            if first is None:
                return []
            messages = [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]
        return self._records(messages)

    def _settle_then_take_more(self, consumer: Consumer, records: list[InRecord]) -> list[InRecord]:
        aborted = self._settle()
        if aborted:
            self._rollback(consumer, aborted, "the Kafka transaction aborted")
            records = [r for r in records if r.partition not in aborted]
        room = self.batch_limit() - len(records)
        return records + self._records(consumer.consume(room, 0)) if room > 0 else records

    def _records(self, messages: list) -> list[InRecord]:
        owns = self.store.owns
        records = []
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self._client_error(err)
                continue
            p = m.partition()
            if owns(p):
                records.append(InRecord(p, m.offset(), m.key(), m.value(), m.timestamp()[1]))
        return records

    def _score_and_send(self, consumer: Consumer, records: list[InRecord]) -> None:
        """Score the batch (while the previous transaction commits), then produce it in a new transaction
        and start its commit."""
        c = self.config
        first: dict[int, int] = {}
        for r in records:
            first.setdefault(r.partition, r.offset)
        clock = time.perf_counter
        settled_before = self._settle_wait_s  # waited for the previous commit before scoring (small batches)
        t0 = clock()
        try:
            outcome = process_batch(records, self.store, self.scorer, c.topics, c.changelog_topic,
                                    same_partitions=self._same_partitions)
        except Exception as exc:  # the touched accounts may be half-updated
            outcome = self._isolate(consumer, records, first, exc)
            if outcome is None:
                return
        t1 = clock()
        self._observe_score_time(len(records), t1 - t0)
        aborted = self._settle()
        if aborted:  # this batch was scored on top of the aborted one's state: redo both
            self._rollback(consumer, _earliest(aborted, first), "the previous Kafka transaction aborted")
            return
        producer = self._txn.producer
        try:
            producer.begin_transaction()
            self._produce(producer, outcome.records)
        except KafkaException as exc:
            self._abort(exc, len(records))
            self._rollback(consumer, first, "producing failed")
            return
        t2 = clock()
        offsets = [TopicPartition(c.topics.transactions, p, off) for p, off in outcome.next_offsets.items()]
        phases = {"score": t1 - t0, "settle": self._settle_wait_s,
                  "produce": t2 - t1 - (self._settle_wait_s - settled_before)}
        self._inflight.start(producer, offsets, consumer.consumer_group_metadata(),
                             SentBatch(len(records), outcome, first, phases))

    def _isolate(self, consumer: Consumer, records: list[InRecord], first: dict[int, int],
                 exc: Exception) -> BatchOutcome | None:
        """The batch failed in scoring: its outcome with the records that fail alone dead-lettered, or None
        when it was rolled back to be tried again (an infrastructure failure, or the previous transaction
        aborted).  Either way nothing of the failed attempt survives: the partitions are reloaded."""
        c = self.config
        aborted = self._settle()  # the changelog must hold everything before this batch
        if aborted or is_infrastructure(exc):
            self._retry_later(consumer, _earliest(aborted, first), f"scoring failed: {messages.error_reason(exc)}")
            return None
        logger.warning("a batch of %d records failed in scoring (%s): reloading partitions %s and isolating the "
                       "records that fail alone", len(records), messages.error_reason(exc), sorted(first))
        self._restore(sorted(first))
        try:
            outcome = isolate_poison(records, self.store, self.scorer, c.topics, c.changelog_topic,
                                     same_partitions=self._same_partitions)
        except Exception as again:
            self._retry_later(consumer, first, f"isolating a failed batch failed: {messages.error_reason(again)}")
            return None
        return outcome

    def _retry_later(self, consumer: Consumer, first: dict[int, int], why: str) -> None:
        """Roll back and pause before the batch is scored again: 0.1 s, doubling to 5 s while it keeps
        failing (an engine or broker that is down is not asked again in a tight loop)."""
        self._rollback(consumer, first, why)
        self._failures += 1
        time.sleep(min(5.0, 0.1 * 2 ** (self._failures - 1)))

    def _settle(self) -> dict[int, int]:
        """Wait for the in-flight transaction.  Committed: account for it, return {}.  Aborted: return its
        first offsets (the caller rolls them back).  Fenced: raise FencedError."""
        if self._inflight.pending is None:
            return {}
        started = time.perf_counter()
        batch, error = self._inflight.wait(self.config.commit_stall_ms / 1000)
        self._settle_wait_s += time.perf_counter() - started
        if error is None:
            self._committed(batch)
            return {}
        self._abort(error, batch.records)
        return batch.first

    def _committed(self, batch: SentBatch) -> None:
        self.report.committed(batch.records, batch.phases, batch.outcome)
        self._committed_next.update(batch.outcome.next_offsets)
        self._failures = 0
        self.gc.after_batch()

    def _abort(self, exc: KafkaException | CommitStalled, n: int) -> None:
        """Abort (or, if the producer is broken or stalled, replace it); raises FencedError if another owner
        is live."""
        self.metrics.aborts.inc()
        logger.warning("aborting the Kafka transaction of %d records; they will be scored again: %s", n, exc)
        if isinstance(exc, CommitStalled):
            self._txn.abandon(str(exc))
        else:
            self._txn.abort(exc)

    def _rollback(self, consumer: Consumer, first: dict[int, int], why: str) -> None:
        """Reload these partitions' committed state (the scorer updated it in place) and rewind them."""
        if not first:
            return
        owned = [p for p in sorted(first) if self.store.owns(p)]
        if self._txn.take_fate_unknown() and owned:
            # A replaced producer's transaction was settled by the new one's init_transactions and may have
            # committed: the group's committed offsets say where scoring resumes.
            first = {**first, **self._committed_offsets(consumer, owned)}
        logger.warning("%s: restoring partitions %s from the changelog and scoring again from offsets %s",
                       why, owned, {p: first[p] for p in owned})
        for p in first:
            self.store.drop_partition(p)
        self._restore(owned)
        for p in owned:
            consumer.seek(TopicPartition(self.config.topics.transactions, p, first[p]))

    def _committed_offsets(self, consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        """The group's committed offsets of these partitions (those with none are left out), asked until the
        group coordinator answers: guessing could score a committed batch twice.  Stopping gives up ({}: the
        service commits nothing more)."""
        topic = self.config.topics.transactions
        for attempt in itertools.count():
            if self._stop:
                return {}
            try:
                committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
                return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
            except KafkaException as exc:
                logger.warning("reading the committed offsets of partitions %s failed (%s); asking again",
                               partitions, exc)
                time.sleep(min(5.0, 0.2 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _restore(self, partitions: list[int]) -> None:
        """Replace these partitions' accounts with their committed state from the changelog."""
        for p, accounts in self._reader.restore(partitions).items():
            self.store.set_partition(p, accounts)

    def _apply_pending_rollback(self, consumer: Consumer, records: list[InRecord]) -> list[InRecord]:
        """A transaction that aborted while a rebalance callback waited for it is rolled back here, after
        the callback (seeking inside one is not safe); records fetched past it are dropped."""
        pending, self._rollback_pending = self._rollback_pending, {}
        if not pending:
            return records
        self._rollback(consumer, pending, "the Kafka transaction aborted during a rebalance")
        return [r for r in records if r.partition not in pending]

    @staticmethod
    def _produce(producer: Producer, records) -> None:
        produce = producer.produce
        for o in records:
            partition = -1 if o.partition is None else o.partition  # -1: the key partitioner chooses
            while True:
                try:
                    if o.headers:
                        produce(o.topic, o.value, o.key, partition, headers=o.headers)
                    else:
                        produce(o.topic, o.value, o.key, partition)
                    break
                except BufferError:  # the local queue is full: let the client send some
                    producer.poll(0.05)
        producer.poll(0)


def _earliest(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    """Per partition, the earlier of two batches' first offsets."""
    out = dict(b)
    for p, off in a.items():
        out[p] = min(off, out.get(p, off))
    return out
