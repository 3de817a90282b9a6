"""What the live scorer tells its operators besides the metrics' counters: consumer lag, a progress
line every 10 s and slow batches.

Rules: reporting never stops scoring.  :func:`consumer_lag` leaves out a partition whose broker does
not answer in time (e.g. mid-rebalance) rather than raise; log lines are rate-limited (one progress
line per 10 s, one slow-batch line per 10 s with the count of those it stands for).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.processor import BatchOutcome

#: Records as the runner's: these lines are about the scorer's loop.
logger = logging.getLogger("npusuite.fraud.service.runner")

_LOG_EVERY_S = 10.0


def consumer_lag(consumer: Consumer, topic: str, partitions, committed_next: dict[int, int]) -> dict[int, int]:
    """Records behind the end, per partition whose position is known (``committed_next``: partition ->
    offset after the last record this process committed, for a partition with no position yet)."""
    lag = {}
    for tp in consumer.position([TopicPartition(topic, p) for p in partitions]):
        position = tp.offset if tp.offset >= 0 else committed_next.get(tp.partition)
        try:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:  # nothing fetched from this partition yet: ask the broker
                low, high = consumer.get_watermark_offsets(tp, timeout=0.5)
        except KafkaException as exc:
            logger.debug("no watermarks for partition %d: %s", tp.partition, exc)
            continue
        if position is None:  # nothing consumed here yet: start from the group's committed offset
            position = _committed_offset(consumer, tp, low)
        if position is not None and high >= 0:
            lag[tp.partition] = max(0, high - position)
    return lag


def _committed_offset(consumer: Consumer, tp: TopicPartition, low: int) -> int | None:
    try:
        committed = consumer.committed([tp], timeout=0.5)[0].offset
    except KafkaException as exc:
        logger.debug("no committed offset for partition %d: %s", tp.partition, exc)
        return None
    return committed if committed >= 0 else low


class BatchReport:
    """Per committed batch: phase histograms, the progress counts and the slow-batch line."""

    def __init__(self, metrics: ServiceMetrics, slow_batch_ms: float):
        self.metrics = metrics
        self.slow_batch_ms = slow_batch_ms
        self._progress = {"since_s": time.monotonic(), "scored": 0, "dead": 0, "batches": 0}
        self._slow = {"count": 0, "logged_s": 0.0}

    def committed(self, n: int, phases: dict[str, float], outcome: BatchOutcome) -> None:
        self.observe_phases(n, phases)
        self.metrics.observe_committed(outcome)
        prog = self._progress
        prog["scored"] += sum(outcome.decisions.values())
        prog["dead"] += sum(outcome.dead_letters.values())
        prog["batches"] += 1

    def observe_phases(self, n: int, phases: dict[str, float]) -> None:
        for phase, seconds in phases.items():
            self.metrics.batch_phase_seconds.labels(phase).observe(seconds)
        self.metrics.commit_seconds.observe(phases.get("commit", 0.0))
        total = sum(phases.values())
        now = time.monotonic()
        if total * 1000 >= self.slow_batch_ms:
            self._slow["count"] += 1
            if now - self._slow["logged_s"] >= _LOG_EVERY_S:  # catching up, every batch is big
                logger.warning("slow batch: %d records in %.0f ms (%s); %d slow batches since the last such line",
                               n, total * 1000, ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in phases.items()),
                               self._slow["count"], extra={"records": n, "phases_ms": {
                                   k: round(v * 1000, 1) for k, v in phases.items()}})
                self._slow = {"count": 0, "logged_s": now}

    def progress(self, lag: dict[int, int]) -> None:
        """Log the progress line if 10 s have passed since the last one (and a batch committed)."""
        now = time.monotonic()
        prog = self._progress
        if now - prog["since_s"] >= _LOG_EVERY_S and prog["batches"]:
            logger.info("scored %d transactions in %d batches over %.0f s (%.0f tx/s), %d dead letters; lag %s",
                        prog["scored"], prog["batches"], now - prog["since_s"],
                        prog["scored"] / (now - prog["since_s"]), prog["dead"], lag,
                        extra={"scored": prog["scored"], "lag": lag})
            self._progress = {"since_s": now, "scored": 0, "dead": 0, "batches": 0}
