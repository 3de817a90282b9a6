"""Session-wide fixtures: real services, started once.

``kafka_bootstrap``: an existing cluster from ``KAFKA_BOOTSTRAP`` if set;
otherwise a real Apache Kafka 4.x broker started through the same code as
``npusuite kafka up`` on a free port, stopped when the session ends.

``kafka_cluster``: a real 3-node KRaft cluster (``npusuite kafka up --brokers 3``'s
code), started once per session and only when a test asks for it (failover tests
kill and restart its nodes; each restores what it kills).  Never ``KAFKA_BOOTSTRAP``:
those tests crash brokers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from npusuite.platform.kafka.broker import LocalBroker, free_broker_port
from npusuite.platform.kafka.cluster import LocalCluster
from npusuite.platform.settings import KafkaSettings, PathSettings


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = KafkaSettings().bootstrap
    if existing:
        yield existing
        return
    port = free_broker_port()
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), port=port, cache_dir=PathSettings().cache_dir())
    status = broker.up(timeout_s=120)
    try:
        yield status.bootstrap
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("kafka-cluster"), brokers=3, port=free_broker_port(span=6),
                           cache_dir=PathSettings().cache_dir(), heap_mb=384)
    try:
        cluster.up(timeout_s=180)
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def topic_name() -> str:
    """A fresh topic name per test, so tests never read each other's records."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Restore the root logger after each test.

    A CLI command run in-process (``CliRunner``/``main([...])``) calls ``npusuite.platform.logs.configure``,
    which points the root logger at that test's captured stderr; the next test would then log into a
    closed stream ("I/O operation on closed file") and see a stray logging error on its own stderr.
    """
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
