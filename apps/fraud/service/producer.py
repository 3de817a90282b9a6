"""The scorer's transactional producer and its lifecycle: started, aborted, and replaced when broken.

A failed Kafka transaction is one of three kinds (librdkafka's transactional API;
confluent-kafka's ``KafkaError.fatal()`` / ``txn_requires_abort()``):

* **abortable**: ``abort_transaction`` and go on with the same producer;
* **fenced**: librdkafka normalises the broker's ``PRODUCER_FENCED`` and
  ``INVALID_PRODUCER_EPOCH`` to the fatal ``_FENCED``.  It means one of two
  things: another producer with the same ``transactional.id`` called
  ``init_transactions`` (a live twin), or the transaction coordinator itself
  aborted our transaction at ``transaction.timeout.ms`` and bumped the epoch
  while a broker was down (seen in the broker-loss test: the abort after the
  coordinator moved failed with ``_FENCED``, no other scorer running).  The two
  cannot be told apart from the error, so a fence is treated as broken (below)
  at most :data:`FENCE_REPLACEMENTS` times in :data:`FENCE_WINDOW_S`; a live twin
  fences us again at once, exhausts that, and the process stops
  (:class:`FencedError`).  Exactly-once does not rest on this rule: offsets are
  committed with the consumer's group metadata (KIP-447), so a zombie's commit
  is refused whatever its producer epoch;
* **broken**: any other fatal error, or an abort that fails.  The producer's
  transactional state is unusable, but nobody else owns the id.  Seen when a
  broker dies under load: records to a partition whose dead leader is not yet
  replaced (the broker session timeout, 9 s) time out at ``message.timeout.ms``
  (capped at ``transaction.timeout.ms``), librdkafka then needs an epoch bump,
  and the abort fails with a fatal ``INVALID_TXN_STATE``.  An abort racing the
  transaction's first produce can end the same way.

A broken producer is replaced, as a restarted scorer would do it: the old one
is purged and closed, a new one with the same ``transactional.id`` calls
``init_transactions``, which bumps the epoch (records still in flight from the
old one are refused by the partition leaders) and aborts the old one's open
transaction on the broker.  Nothing of that transaction becomes visible; the
runner rolls the batch back as for any abort and scores it again.

A **stalled** producer (a commit that never returned, :mod:`.committer`) is
replaced the same way but not closed: a thread may still be blocked inside it,
and destroying a librdkafka handle under a running call is not safe.  That
thread holds the last reference; the handle goes when its call returns.  Its
transaction may have been committed just before the stall (``EndTxn`` sent,
the answer lost), so after a stall or any replacement the runner rewinds to
the group's committed offsets, not to the batch's first ones
(:attr:`TransactionalProducer.fate_unknown`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer

logger = logging.getLogger("npusuite.fraud.service.runner")

#: Codes that mean another producer took this transactional id (librdkafka reports both broker codes as _FENCED).
FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
#: ``init_transactions`` tries before a retriable failure (the coordinator still moving) is given up on.
INIT_ATTEMPTS = 5
INIT_TIMEOUT_S = 60
#: Fences taken as a coordinator's own epoch bump (module rules) within FENCE_WINDOW_S before stopping.
FENCE_REPLACEMENTS = 3
FENCE_WINDOW_S = 300.0


class FencedError(RuntimeError):
    """Another process took this scorer's transactional id, or the producer cannot be started."""


def txn_error(exc: BaseException) -> KafkaError | None:
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return err if isinstance(err, KafkaError) else None


def is_fenced(exc: BaseException) -> bool:
    err = txn_error(exc)
    return err is not None and err.code() in FENCED_CODES


def is_broken(exc: BaseException) -> bool:
    """A fatal error that is not a fence: the producer must be replaced, not aborted."""
    err = txn_error(exc)
    return err is not None and err.fatal() and err.code() not in FENCED_CODES


def producer_config(client_config: dict, transactional_id: str, transaction_timeout_ms: int) -> dict:
    return {
        **client_config, "transactional.id": transactional_id,
        "transaction.timeout.ms": transaction_timeout_ms, "enable.idempotence": True, "acks": "all",
        "linger.ms": 1, "batch.size": 1024 * 1024, "message.max.bytes": 8 * 1024 * 1024,
        # Right after a commit the broker is still writing the markers of the last transaction and
        # answers the next one's first request with CONCURRENT_TRANSACTIONS; at the default 100 ms
        # retry backoff that wait was most of each batch's latency (measured: 95 ms -> 3.7 ms p50).
        "retry.backoff.ms": 2, "retry.backoff.max.ms": 20,
        # TCP_NODELAY: a transaction's small requests (AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
        # EndTxn) share the one broker connection with the produce requests; with Nagle on, a small request
        # behind unacknowledged data waits for the peer's (delayed) ACK.  librdkafka's default leaves Nagle on.
        "socket.nagle.disable": True,
        # Java's and kafka-python's key partitioner, so keyed records land where other clients put them.
        "partitioner": "murmur2_random"}


class TransactionalProducer:
    """Holds the current producer (``.producer``); ``make`` builds a new, not yet initialised one."""

    def __init__(self, make: Callable[[], Producer], transactional_id: str,
                 clock: Callable[[], float] = time.monotonic, on_renew: Callable[[str], None] | None = None):
        self._make = make
        self.transactional_id = transactional_id
        self.replaced = 0
        self._clock = clock
        #: told the reason (``broken``, ``fenced``, ``stalled``) each time a new producer replaces the old one
        self._on_renew = on_renew
        self._fences: deque[float] = deque()
        #: True after a replacement: the old transaction was settled by ``init_transactions``, not by an abort
        #: of ours, and may have committed.  The runner reads it and clears it (:meth:`take_fate_unknown`).
        self.fate_unknown = False
        self.producer = self._start()

    def _start(self) -> Producer:
        producer = self._make()
        for attempt in range(1, INIT_ATTEMPTS + 1):
            try:
                producer.init_transactions(INIT_TIMEOUT_S)  # fences and resolves a predecessor's transaction
                return producer
            except KafkaException as exc:
                err = txn_error(exc)
                self.stop_if_fenced(exc)
                if err is None or not err.retriable() or attempt == INIT_ATTEMPTS:
                    raise
                logger.warning("init_transactions for %s failed (%s); trying again", self.transactional_id,
                               err.str())
        raise AssertionError("unreachable")

    def stop_if_fenced(self, exc: BaseException) -> None:
        if is_fenced(exc):
            logger.error("fatal Kafka error (fenced: another scorer runs with transactional id %s): %s; stopping",
                         self.transactional_id, exc)
            raise FencedError(str(exc)) from exc

    def _fenced(self, exc: BaseException) -> None:
        """Count a fence (module rules); raises FencedError once FENCE_REPLACEMENTS are used in the window."""
        now = self._clock()
        while self._fences and now - self._fences[0] > FENCE_WINDOW_S:
            self._fences.popleft()
        if len(self._fences) >= FENCE_REPLACEMENTS:
            self.stop_if_fenced(exc)
        self._fences.append(now)

    def abort(self, exc: BaseException) -> None:
        """End the failed transaction: abort it, or replace a broken (or fenced) producer.

        Raises FencedError when fences keep coming (a live twin with the same transactional id)."""
        if is_fenced(exc):
            self._fenced(exc)
            self.replace(f"fenced: {exc}", "fenced")
            return
        if is_broken(exc):
            self.replace(f"fatal error: {exc}")
            return
        try:
            self.producer.abort_transaction(60)
        except KafkaException as abort_exc:
            fenced = is_fenced(abort_exc)
            if fenced:
                self._fenced(abort_exc)
            self.replace(f"the abort failed: {abort_exc}", "fenced" if fenced else "broken")

    def abandon(self, why: str) -> None:
        """Start a new producer beside a stalled one, which is not touched again (a thread is inside it)."""
        logger.warning("the Kafka producer is stalled (%s): leaving it to its blocked thread and starting a new "
                       "producer with transactional id %s (init_transactions fences the old one and settles its "
                       "transaction)", why, self.transactional_id)
        self._renew("stalled")  # the blocked commit thread holds the old handle; it is destroyed once that call returns

    def take_fate_unknown(self) -> bool:
        """Whether a replacement happened since the last call (and clear it)."""
        unknown, self.fate_unknown = self.fate_unknown, False
        return unknown

    def replace(self, why: str, reason: str = "broken") -> None:
        logger.warning("the Kafka producer's transactional state is broken (%s): closing it and starting a new "
                       "producer with transactional id %s (init_transactions fences the old one and aborts its "
                       "open transaction)", why, self.transactional_id)
        _discard(self.producer)
        self._renew(reason)

    def _renew(self, reason: str) -> None:
        self.fate_unknown = True
        if self._on_renew is not None:
            self._on_renew(reason)
        self.producer = self._start()
        self.replaced += 1
        logger.warning("new Kafka producer for %s ready: the rolled-back batches are scored again",
                       self.transactional_id)

    def close(self) -> None:
        try:
            self.producer.flush(10)
        except KafkaException as exc:  # a producer in a fatal state: nothing of it is committed
            logger.warning("flushing the Kafka producer failed: %s", exc)


def _discard(producer: Producer) -> None:
    """Drop what the old producer still holds (none of it is committed) and close it."""
    for step in (lambda: producer.purge(True, True, False), producer.close):
        try:
            step()
        except Exception as exc:  # a broken producer may refuse anything; it is dropped anyway
            logger.info("closing the broken Kafka producer: %s", exc)
