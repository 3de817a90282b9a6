"""The Kafka shell's own bookkeeping, without a broker (the broker tests are in test_stream.py)."""

from __future__ import annotations

import logging

import pytest

from npusuite.fraud.service.config import ServiceConfig
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.reporting import consumer_lag
from npusuite.fraud.service.runner import FraudService


def service(**config) -> FraudService:
    return FraudService(ServiceConfig(bootstrap="127.0.0.1:1", **config), scorer=None, metrics=ServiceMetrics())


def sample(svc: FraudService, name: str, **labels) -> float:
    return svc.metrics.registry.get_sample_value(name, labels) or 0.0


def test_batch_phases_are_measured_and_a_slow_batch_is_logged_with_them(caplog):
    svc = service(slow_batch_ms=50)
    with caplog.at_level(logging.WARNING, logger="npusuite.fraud.service.runner"):
        svc.report.observe_phases(10, {"score": 0.010, "produce": 0.001, "offsets": 0.003, "commit": 0.002})
        assert not caplog.records
        svc.report.observe_phases(300, {"score": 0.020, "produce": 0.001, "offsets": 0.090, "commit": 0.004})
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "300 records in 115 ms" in message and "offsets 90 ms" in message
    assert sample(svc, "npusuite_fraud_batch_phase_seconds_count", phase="offsets") == 2
    assert sample(svc, "npusuite_fraud_kafka_commit_seconds_count") == 2


def test_losing_partitions_drops_their_accounts_and_lag():
    svc = service()
    for p in (0, 1):
        svc.store.set_partition(p, {})
    svc.metrics.set_lag({0: 5, 1: 7})
    svc._committed_next.update({0: 10, 1: 20})
    svc.lose([1], "revoked")
    assert sorted(svc.store.partitions) == [0] and svc._committed_next == {0: 10}
    assert sample(svc, "npusuite_fraud_consumer_lag_records", partition="1") == 0.0
    assert sample(svc, "npusuite_fraud_consumer_lag_records", partition="0") == 5


class StubConsumer:
    """Answers the lag metric's questions; partition 2's broker does not answer in time."""

    def position(self, tps):
        from confluent_kafka import TopicPartition

        known = {0: 90, 1: -1001, 2: 10, 3: -1001, 4: -1001, 5: -1001}
        return [TopicPartition(tp.topic, tp.partition, known[tp.partition]) for tp in tps]

    def committed(self, tps, timeout=None):
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        if any(tp.partition == 4 for tp in tps):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets: Local: Timed out"))
        return [TopicPartition(tp.topic, tp.partition, {3: -1001, 5: 30}[tp.partition]) for tp in tps]

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        from confluent_kafka import KafkaError, KafkaException

        if tp.partition == 2:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get watermarks: Local: Timed out"))
        return {0: (0, 100), 1: (0, 40), 3: (7, 7), 4: (0, 9), 5: (0, 50)}[tp.partition]


def test_lag_skips_what_it_cannot_know_and_never_raises():
    svc = service()
    for p in range(6):
        svc.store.set_partition(p, {})
    svc._committed_next[1] = 25  # nothing consumed since this process's last commit on partition 1
    # 3: empty, nothing committed; 4: the committed offset does not come in time; 5: another member's commit
    assert consumer_lag(StubConsumer(), "transactions", svc.store.partitions, svc._committed_next) == {
        0: 10, 1: 15, 3: 0, 5: 20}


def test_metrics_listen_on_loopback_unless_told_otherwise():
    """Issue 11b: ``--metrics-port`` listened on 0.0.0.0.  127.0.0.2 is a loopback address too, but not the
    one bound by default, so a connection there is refused; with a host given, it answers there."""
    import httpx

    from npusuite.platform.kafka.broker import free_port

    default, chosen = free_port(), free_port()
    ServiceMetrics().serve(default)
    ServiceMetrics().serve(chosen, "127.0.0.2")
    assert httpx.get(f"http://127.0.0.1:{default}/metrics", timeout=10).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.2:{default}/metrics", timeout=10)
    assert httpx.get(f"http://127.0.0.2:{chosen}/metrics", timeout=10).status_code == 200
    assert ServiceConfig(bootstrap="127.0.0.1:1").metrics_host == "127.0.0.1"


def _kafka_exc(code: int, *, fatal: bool = False, abortable: bool = False):
    from confluent_kafka import KafkaError, KafkaException

    return KafkaException(KafkaError(code, "injected", fatal=fatal, txn_requires_abort=abortable))


class StubProducer:
    """Records the transactional calls; ``abort_error`` is raised by abort_transaction."""

    def __init__(self, abort_error=None):
        self.abort_error, self.calls = abort_error, []

    def init_transactions(self, timeout):
        self.calls.append("init")

    def abort_transaction(self, timeout):
        self.calls.append("abort")
        if self.abort_error is not None:
            raise self.abort_error

    def purge(self, *args):
        self.calls.append("purge")

    def close(self):
        self.calls.append("close")


def test_a_broken_producer_is_replaced_and_a_fenced_one_stops_the_scorer(caplog):
    """Issue 15: on a broker loss the abort failed with a fatal INVALID_TXN_STATE and the scorer exited.  A
    broken transactional state (a fatal error that is not a fence, or an abort that fails) now replaces the
    producer (same transactional id, init_transactions).  A fence (librdkafka's _FENCED) counts as broken too
    (the coordinator's own epoch bump after a broker loss looks the same), until fences keep coming."""
    from confluent_kafka import KafkaError

    from npusuite.fraud.service.producer import FencedError, TransactionalProducer, is_broken, is_fenced

    invalid_state = _kafka_exc(KafkaError.INVALID_TXN_STATE, fatal=True)
    fenced = _kafka_exc(KafkaError._FENCED, fatal=True)
    abortable = _kafka_exc(KafkaError._TIMED_OUT, abortable=True)
    assert is_broken(invalid_state) and not is_fenced(invalid_state)
    assert is_fenced(fenced) and not is_broken(fenced)
    assert not is_broken(abortable) and not is_fenced(abortable)
    assert is_fenced(_kafka_exc(KafkaError.PRODUCER_FENCED, fatal=True))

    made: list[StubProducer] = []

    def make(abort_error=None):
        made.append(StubProducer(abort_error))
        return made[-1]

    # abortable: aborted on the same producer
    txn = TransactionalProducer(make, "g-s0")
    txn.abort(abortable)
    assert len(made) == 1 and made[0].calls == ["init", "abort"]

    # the abort fails with a fatal INVALID_TXN_STATE (the broker-loss case): a new producer, initialised
    txn = TransactionalProducer(lambda: make(invalid_state), "g-s0")
    with caplog.at_level(logging.WARNING, logger="npusuite.fraud.service.runner"):
        txn.abort(abortable)
    old, new = made[-2:]
    assert old.calls == ["init", "abort", "purge", "close"] and new.calls == ["init"]
    assert txn.producer is new and txn.replaced == 1
    assert any("transactional state is broken" in r.getMessage() for r in caplog.records)

    # a fatal, non-fence error from the commit: replaced without trying to abort
    txn = TransactionalProducer(make, "g-s0")
    txn.abort(invalid_state)
    assert made[-2].calls == ["init", "purge", "close"] and made[-1].calls == ["init"]

    # fenced (by the commit or by the abort): replaced, as a coordinator's own epoch bump after a broker
    # loss looks the same; a fence that keeps coming (a live twin) stops the scorer, without a new producer
    from npusuite.fraud.service.producer import FENCE_REPLACEMENTS, FENCE_WINDOW_S

    now, reasons = [0.0], []
    txn = TransactionalProducer(make, "g-s0", clock=lambda: now[0], on_renew=reasons.append)
    for _ in range(FENCE_REPLACEMENTS):
        txn.abort(fenced)
    assert txn.replaced == FENCE_REPLACEMENTS and reasons == ["fenced"] * FENCE_REPLACEMENTS
    assert txn.take_fate_unknown() and not txn.take_fate_unknown()  # read once by the rollback that follows
    n = len(made)
    with pytest.raises(FencedError):
        txn.abort(fenced)
    assert len(made) == n
    now[0] += FENCE_WINDOW_S + 1  # old fences leave the window
    txn.abort(fenced)
    assert txn.replaced == FENCE_REPLACEMENTS + 1
    txn = TransactionalProducer(lambda: make(fenced), "g-s0", clock=lambda: now[0])
    txn.abort(abortable)  # the abort itself is fenced: replaced too
    assert txn.replaced == 1 and made[-2].calls == ["init", "abort", "purge", "close"]


class RewindConsumer:
    """Records seeks; the group coordinator fails the first committed-offsets request, then answers."""

    def __init__(self, committed: dict[int, int]):
        self.offsets, self.asked, self.seeks = committed, 0, {}

    def committed(self, tps, timeout=None):
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        self.asked += 1
        if self.asked == 1:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "coordinator not available"))
        return [TopicPartition(tp.topic, tp.partition, self.offsets.get(tp.partition, -1001)) for tp in tps]

    def seek(self, tp):
        self.seeks[tp.partition] = tp.offset


class StubReader:
    def __init__(self):
        self.restored: list[list[int]] = []

    def restore(self, partitions):
        self.restored.append(list(partitions))
        return {p: {} for p in partitions}


def test_a_stalled_commit_abandons_its_producer_and_resumes_from_the_committed_offsets(caplog):
    """The broker-loss test hung: librdkafka's send_offsets_to_transaction blocked past its timeout with the
    group coordinator down (librdkafka #5456/#5511), and the scorer waited for it for ever.  The wait is now
    bounded: the stalled producer is left to its thread (never closed under it), a new one settles the
    transaction, and, as the transaction may have committed, scoring resumes from the group's committed
    offsets (partition 0: it did commit) or, where the group has none, from the batch's first offsets."""
    import threading

    from npusuite.fraud.service.committer import InFlightCommit, SentBatch
    from npusuite.fraud.service.processor import BatchOutcome
    made: list[StubProducer] = []

    def make():
        made.append(StubProducer())
        return made[-1]

    release = threading.Event()
    svc = service(transaction_timeout_ms=1000, commit_stall_ms=1200)
    svc._txn, svc._reader = svc._transactional_producer(make), StubReader()
    svc._inflight = InFlightCommit(commit=lambda producer, offsets, meta: release.wait(30) and {})
    for p in (0, 1, 2):
        svc.store.set_partition(p, {})
    svc._inflight.start(made[0], [], None, SentBatch(40, BatchOutcome(), {0: 100, 1: 50}))
    with caplog.at_level(logging.WARNING, logger="npusuite.fraud.service.runner"):
        aborted = svc._settle()
        assert aborted == {0: 100, 1: 50}
        assert made[0].calls == ["init"] and made[1].calls == ["init"] and svc._txn.producer is made[1]
        consumer = RewindConsumer({0: 140})
        svc._rollback(consumer, aborted, "the Kafka transaction aborted")
    release.set()
    assert consumer.seeks == {0: 140, 1: 50} and consumer.asked == 2 and svc._reader.restored == [[0, 1]]
    assert any("producer is stalled" in r.getMessage() for r in caplog.records)
    assert sample(svc, "npusuite_fraud_kafka_aborts_total") == 1
    assert sample(svc, "npusuite_fraud_kafka_producer_replacements_total", reason="stalled") == 1
    # an ordinary abort later (same producer, fate known) rewinds to the batch's first offsets, asking nobody
    consumer = RewindConsumer({0: 999})
    svc._rollback(consumer, {2: 7}, "producing failed")
    assert consumer.seeks == {2: 7} and consumer.asked == 0


def test_the_commit_stall_limit_must_exceed_the_transaction_timeout():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="commit_stall_ms must exceed transaction_timeout_ms"):
        ServiceConfig(bootstrap="127.0.0.1:1", transaction_timeout_ms=10_000, commit_stall_ms=9_000)
