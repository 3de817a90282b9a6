"""Create the scorer's topics when they are missing.

``transactions`` gets ``partitions`` partitions when the scorer creates it;
the changelog always gets exactly as many partitions as ``transactions`` has
(partition ``p`` of one holds the accounts of partition ``p`` of the other)
and ``cleanup.policy=compact``.  An existing changelog with a different
partition count is refused: its state would be read by the wrong owner.
Replication (3 replicas and ``min.insync.replicas=2`` on a cluster of three
or more brokers, 1 on a single broker) is decided by
:mod:`npusuite.platform.kafka.topics`, which creates every topic of the suite.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient, KafkaConsumer

from npusuite.fraud.service.config import ServiceConfig
from npusuite.platform.errors import UserError
from npusuite.platform.kafka.topics import TopicSpec, create_missing

logger = logging.getLogger(__name__)


def partition_count(bootstrap: str, topic: str, timeout_s: float = 30.0) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            parts = consumer.partitions_for_topic(topic)
            if parts or time.monotonic() > deadline:
                return len(parts) if parts else None
            time.sleep(0.2)
    finally:
        consumer.close()


def ensure_topics(config: ServiceConfig) -> tuple[int, bool]:
    """Returns the partition count of ``transactions`` and whether the score, alert and DLQ topics
    have the same count (then a record can go to its input's partition number, which is where the
    key partitioner would put it anyway, without hashing it again).  Raises UserError on a
    mismatched changelog."""
    topics = config.topics
    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap)
    try:
        create_missing(admin, {topics.transactions: TopicSpec(config.partitions)})
        n = partition_count(config.bootstrap, topics.transactions)
        if n is None:
            raise UserError(f"topic {topics.transactions!r} has no partitions visible at {config.bootstrap}")
        changelog = config.changelog_topic
        create_missing(admin, {
            **{name: TopicSpec(n) for name in (topics.scores, topics.alerts, topics.dlq)},
            changelog: TopicSpec(n, {"cleanup.policy": "compact", "segment.ms": "600000",
                                     "min.compaction.lag.ms": "0"})})
        m = partition_count(config.bootstrap, changelog)
        if m != n:
            raise UserError(f"changelog topic {changelog!r} has {m} partitions but {topics.transactions!r} has {n}; "
                            f"they must match (use another --group, or recreate the changelog)")
        aligned = all(partition_count(config.bootstrap, t) == n for t in (topics.scores, topics.alerts, topics.dlq))
        return n, aligned
    finally:
        admin.close()
