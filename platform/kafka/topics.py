"""The one place the suite creates Kafka topics: replication sized to the cluster.

:func:`create_missing` creates the named topics that do not exist yet, each with
its partition count and configs, and with a replication factor and
``min.insync.replicas`` chosen from the number of live brokers by
:func:`replication_for`:

* 3 or more brokers: 3 replicas, ``min.insync.replicas=2``: an ``acks=all``
  write (every transactional write is one) is on two brokers before it is
  acknowledged, and the topic stays writable with one broker lost;
* 2 brokers: 2 replicas, ``min.insync.replicas=1``;
* a single broker: 1 replica, ``min.insync.replicas=1``.

Rules: existing topics are never altered (their replication is what it is; a
topic created while a broker of three is down gets two replicas, which is
logged); a topic created concurrently by another process counts as existing.
``min.insync.replicas`` given in a topic's own configs wins.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError
from npusuite.platform.kafka.broker import min_insync_replicas

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers`` live brokers."""
    rf = max(1, min(3, brokers))
    return rf, min_insync_replicas(rf)


def live_brokers(admin: KafkaAdminClient) -> int:
    return len(admin.describe_cluster()["brokers"])


def bootstrap_live_brokers(bootstrap: str) -> int:
    """:func:`live_brokers` with an admin client of its own."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return live_brokers(admin)
    finally:
        admin.close()


def create_missing(admin: KafkaAdminClient, specs: Mapping[str, TopicSpec]) -> list[str]:
    """Create the topics of ``specs`` that do not exist; returns the names this call created."""
    existing = set(admin.list_topics())
    missing = {name: spec for name, spec in specs.items() if name not in existing}
    if not missing:
        return []
    brokers = live_brokers(admin)
    rf, min_isr = replication_for(brokers)
    created = []
    for name, spec in missing.items():
        configs = {"min.insync.replicas": str(min_isr), **spec.configs}
        try:
            admin.create_topics({name: {"num_partitions": spec.partitions, "replication_factor": rf,
                                        "configs": configs}}, wait_for_metadata=True)
            created.append(name)
        except TopicAlreadyExistsError:
            continue
    if created:
        logger.info("created topics %s with %d partition(s), replication factor %d, min.insync.replicas %s "
                    "(%d live broker(s))", ", ".join(created), max(s.partitions for s in missing.values()), rf,
                    min_isr, brokers)
    return created


def bootstrap_create_missing(bootstrap: str, specs: Mapping[str, TopicSpec]) -> list[str]:
    """:func:`create_missing` with an admin client of its own."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return create_missing(admin, specs)
    finally:
        admin.close()


__all__ = ["TopicSpec", "bootstrap_create_missing", "bootstrap_live_brokers", "create_missing", "live_brokers",
           "replication_for"]
