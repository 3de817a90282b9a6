"""When committed records arrive, as a downstream reader sees them; and a paced producer to feed a pipeline.

Instruments for failover runs (``tests/fraud/service/test_failover.py``,
``bench/kafka_failover.py``): what a ``read_committed`` reader of a topic sees
while a broker dies is the honest measure of the stall, because it includes
leader election, the writer's retries and transaction recovery, and the
reader's own reconnection.

* :class:`ArrivalClock` reads every partition of a topic from the beginning on a
  background thread (confluent-kafka, ``isolation.level=read_committed``) and
  stamps each record with ``time.monotonic()`` on receipt.  It never stops on a
  broker error (librdkafka reconnects and follows the new leaders).
  :meth:`ArrivalClock.longest_gap` is the longest time between two consecutive
  arrivals; :meth:`ArrivalClock.rate_series` the records per second over time.
* :func:`paced_produce` sends messages at a fixed rate with an idempotent
  ``acks=all`` producer, so a broker loss neither loses nor duplicates an input
  record (the retries are de-duplicated by the broker); it can stop at a chosen
  point (a zone lost mid-stream) and says what was acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

logger = logging.getLogger(__name__)


class ArrivalClock:
    def __init__(self, bootstrap: str, topic: str, partitions: int, decode: Callable[[bytes], object] | None = None):
        self.topic = topic
        self.times: list[float] = []
        #: ``decode(value)`` of each record, in arrival order (None: values not kept).
        self.values: list[object] = []
        self._decode = decode
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"arrivals-{uuid.uuid4().hex[:8]}",
                                   "enable.auto.commit": False, "isolation.level": "read_committed",
                                   "logger": logger,
                                   "error_cb": lambda err: logger.info("arrival clock: %s", err.str())})
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._thread = threading.Thread(target=self._run, name=f"arrivals-{topic}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(1000, 0.1):
                if msg.error() is not None:
                    continue
                self.times.append(time.monotonic())
                if self._decode is not None:
                    self.values.append(self._decode(msg.value()))

    @property
    def count(self) -> int:
        return len(self.times)

    def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count >= n

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def longest_gap(self, after: float | None = None) -> tuple[float, float]:
        """(longest time in seconds between two consecutive arrivals, monotonic time the gap began);
        only arrivals at or after ``after`` count."""
        times = [t for t in self.times if after is None or t >= after]
        best, at = 0.0, times[0] if times else 0.0
        for a, b in zip(times, times[1:], strict=False):
            if b - a > best:
                best, at = b - a, a
        return best, at

    def rate_series(self, start: float, bucket_s: float = 0.5) -> list[tuple[float, float]]:
        """(seconds since ``start``, records per second) per bucket, from ``start`` to the last arrival."""
        if not self.times:
            return []
        n = int((self.times[-1] - start) / bucket_s) + 1
        counts = [0] * max(n, 1)
        for t in self.times:
            if t >= start:
                counts[int((t - start) / bucket_s)] += 1
        return [(i * bucket_s, c / bucket_s) for i, c in enumerate(counts)]


@dataclass
class Produced:
    """What :func:`paced_produce` sent, and what the cluster acknowledged (acks=all)."""

    sent: int = 0
    acked: int = 0
    #: Record timestamp (ms, CreateTime) of the newest acknowledged record.
    newest_acked_ms: int = 0
    #: value -> record timestamp (ms) of every acknowledged record (to date the ones a failover lost).
    acked_ms: dict[bytes, int] = field(default_factory=dict)


def paced_produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]], rate: float,
                  tick: Callable[[Produced], bool | None] | None = None, flush_s: float = 120.0) -> Produced:
    """Send ``messages`` (key, value) at ``rate`` per second (idempotent, acks=all, Java's key partitioner).

    ``tick(progress)`` (a :class:`Produced`, updated as it goes) is called about every 100 ms (e.g. to kill a
    broker at a chosen point); when it returns True no more messages are sent, and what was sent gets 2 s to be
    acknowledged (the cluster may be gone).
    Otherwise every message must be acknowledged within ``flush_s`` (RuntimeError)."""
    out = Produced()

    def delivered(err, msg) -> None:
        if err is None:
            out.acked += 1
            ts = msg.timestamp()[1]
            out.newest_acked_ms = max(out.newest_acked_ms, ts)
            out.acked_ms[msg.value()] = ts

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "partitioner": "murmur2_random", "logger": logger,
                         "error_cb": lambda err: logger.info("paced producer: %s", err.str())})
    start = time.monotonic()
    next_tick = start
    stopped = False
    for i, (key, value) in enumerate(messages):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        out.sent += 1
        producer.poll(0)
        if tick is not None and time.monotonic() >= next_tick:
            if tick(out):
                stopped = True
                break
            next_tick = time.monotonic() + 0.1
    remaining = producer.flush(2.0 if stopped else flush_s)
    if remaining and not stopped:
        raise RuntimeError(f"{remaining} messages not delivered to {topic} within {flush_s:.0f} s")
    return out


__all__ = ["ArrivalClock", "Produced", "paced_produce"]
