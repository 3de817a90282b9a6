"""A real local multi-node Apache Kafka 4.x cluster (KRaft) on 127.0.0.1.

``LocalCluster(data_dir, brokers=3, port=P).up()`` runs ``brokers`` combined
broker+controller nodes, each a :class:`~.broker.LocalBroker` with its own data
dir (``DATA/node-<id>``), its own ports (node ``i`` of 1..N: client ``P+2(i-1)``,
controller one above) and its own session (so each can be SIGKILLed alone).

Rules:

* Quorum: a static ``controller.quorum.voters`` naming every node.  Kafka 4.x
  also offers dynamic quorums (``controller.quorum.bootstrap.servers`` and
  ``format --initial-controllers``, KIP-853), which matter for adding or removing
  controllers at run time; a local cluster of fixed size does not need that, and
  the static form keeps one code path with the single-node broker.
* Every node is formatted with the same cluster id, kept in ``DATA/cluster.json``
  with the node count and base port, so ``status``/``down``/a second ``up`` find
  every node without being told the size again.
* ``up`` spawns every node that is not running before waiting for any (a node
  cannot serve before a majority of controllers is up), then waits until a
  produce/consume round trip works and every node is registered, so a topic with
  replication factor N can be created at once.  Idempotent like the broker's.
* Replication: the internal topics (consumer offsets, transaction state) and
  auto-created topics get ``min(3, N)`` replicas and ``min.insync.replicas`` 2
  from three replicas up (see :func:`~.broker.min_insync_replicas`); the suite's
  own topics are sized by :mod:`.topics`.
* ``down`` stops every node (SIGTERM, SIGKILL after a timeout); it never raises
  for a node that is already gone.  ``kill_node``/``start_node`` crash and
  restart one node (failover tests and ``bench/kafka_failover.py``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from npusuite.platform.errors import UserError
from npusuite.platform.kafka import jars
from npusuite.platform.kafka.broker import (
    BrokerStatus,
    LocalBroker,
    _quiet_kafka_client,
    new_cluster_id,
    wait_until_serving,
)

logger = logging.getLogger(__name__)

STATE_FILE = "cluster.json"


def is_cluster(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a multi-node cluster (rather than a single broker)."""
    return (Path(data_dir).expanduser() / STATE_FILE).is_file()


@dataclass
class ClusterStatus:
    nodes: list[BrokerStatus]
    data_dir: str

    @property
    def running(self) -> bool:
        return all(n.running for n in self.nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def describe(self) -> str:
        up = sum(n.running for n in self.nodes)
        head = (f"kafka {jars.kafka_version()} cluster: {up}/{len(self.nodes)} nodes running; "
                f"bootstrap {self.bootstrap}; data {self.data_dir}")
        lines = [head]
        for i, n in enumerate(self.nodes, start=1):
            state = f"running (pid {n.pid})" if n.running else "down"
            lines.append(f"  node {i}: {n.bootstrap} {state}; log {n.log_file}")
        return "\n".join(lines)


class LocalCluster:
    def __init__(self, data_dir: Path, brokers: int = 3, port: int = 9092, cache_dir: Path | None = None,
                 heap_mb: int = 384, partitions: int = 4):
        if brokers < 1:
            raise UserError(f"--brokers must be at least 1, not {brokers}")
        self.data_dir = Path(data_dir).expanduser().resolve()
        saved = self._saved()
        if saved and saved["brokers"] != brokers:
            raise UserError(f"{self.data_dir} holds a {saved['brokers']}-node cluster; it cannot be started with "
                            f"--brokers {brokers} (use another --data)")
        self.brokers = brokers
        self.port = saved["port"] if saved else port
        self.cluster_id = saved["cluster_id"] if saved else new_cluster_id()
        self.cache_dir = cache_dir or self.data_dir / "cache"
        replication = min(3, brokers)
        voters = ",".join(f"{i}@127.0.0.1:{self._client_port(i) + 1}" for i in range(1, brokers + 1))
        self.nodes = [LocalBroker(self.data_dir / f"node-{i}", port=self._client_port(i), cache_dir=self.cache_dir,
                                  heap_mb=heap_mb, partitions=partitions, node_id=i, voters=voters,
                                  cluster_id=self.cluster_id, replication=replication)
                      for i in range(1, brokers + 1)]

    @classmethod
    def open(cls, data_dir: Path, cache_dir: Path | None = None) -> LocalCluster:
        """The cluster recorded in ``data_dir`` (for status/down, which are not told its size)."""
        saved = json.loads((Path(data_dir).expanduser() / STATE_FILE).read_text())
        return cls(data_dir, brokers=saved["brokers"], port=saved["port"], cache_dir=cache_dir)

    def _client_port(self, node_id: int) -> int:
        return self.port + 2 * (node_id - 1)

    def _saved(self) -> dict | None:
        try:
            return json.loads((self.data_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node(self, node_id: int) -> LocalBroker:
        return self.nodes[node_id - 1]

    def status(self) -> ClusterStatus:
        return ClusterStatus([n.status() for n in self.nodes], str(self.data_dir))

    # -- lifecycle --------------------------------------------------------
    def up(self, timeout_s: float = 120.0) -> ClusterStatus:
        """Start every node that is not running, then wait until the cluster serves with every node registered.

        Raises UserError (busy port, missing java/mvn, or the cluster did not form in time); nodes this call
        started are stopped again on failure."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / STATE_FILE).write_text(json.dumps({"brokers": self.brokers, "port": self.port,
                                                            "cluster_id": self.cluster_id}))
        started = []
        try:
            for n in self.nodes:
                if not n.status().running:
                    n.start()
                    started.append(n)
            wait_until_serving(self.bootstrap, timeout_s)
            self.wait_registered(range(1, self.brokers + 1), timeout_s)
        except UserError as exc:
            for n in started:
                n.down()
            raise UserError(f"the {self.brokers}-node Kafka cluster did not start ({exc}); see the node logs under "
                            f"{self.data_dir}") from None
        logger.info("kafka %s cluster of %d nodes serving at %s", jars.kafka_version(), self.brokers, self.bootstrap)
        return self.status()

    def down(self) -> bool:
        """Stop every node; returns False when none was running.

        Every node gets SIGTERM at once: stopped one by one, the last nodes' controlled shutdown waits for a
        controller quorum that is already gone, and they sit out the whole SIGTERM timeout."""
        for n in self.nodes:
            n.terminate()
        return any([n.down(timeout_s=20) for n in self.nodes])

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (a crashed broker)."""
        if not self.node(node_id).kill():
            raise UserError(f"node {node_id} was not running")
        logger.warning("killed kafka node %d (SIGKILL)", node_id)

    def start_node(self, node_id: int, timeout_s: float = 120.0) -> None:
        """Restart one node and wait until it serves metadata naming itself a live broker (asking the node itself:
        the others may still list the crashed incarnation until its session times out)."""
        node = self.node(node_id)
        node.start()
        deadline = time.monotonic() + timeout_s
        while node_id not in live_broker_ids(f"127.0.0.1:{node.port}"):
            if time.monotonic() > deadline:
                raise UserError(f"node {node_id} did not come back within {timeout_s:.0f}s; see {node.log_file}")
            time.sleep(0.5)
        logger.info("kafka node %d is back", node_id)

    def wait_registered(self, node_ids, timeout_s: float) -> None:
        """Wait until the controllers list every one of ``node_ids`` as a live (unfenced) broker."""
        want = set(node_ids)
        deadline = time.monotonic() + timeout_s
        seen: set[int] = set()
        while time.monotonic() < deadline:
            seen = live_broker_ids(self.bootstrap)
            if want <= seen:
                return
            time.sleep(0.5)
        raise UserError(f"nodes {sorted(want - seen)} did not register within {timeout_s:.0f}s")


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    """The node that leads ``topic``'s ``partition`` now (-1: none)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        parts = admin.describe_topics([topic])[0]["partitions"]
        return next(p["leader_id"] for p in parts if p["partition_index"] == partition)
    finally:
        admin.close()


def transaction_coordinator(bootstrap: str, transactional_id: str, state_partitions: int = 8) -> int:
    """The node coordinating ``transactional_id``'s transactions: the leader of its ``__transaction_state``
    partition, ``abs(javaHashCode(id)) % partitions`` as Kafka computes it (our brokers use 8 partitions).
    Java hashes UTF-16 code units; for the ids the suite uses (``[A-Za-z0-9._-]``) those are the characters."""
    h = 0
    for ch in transactional_id:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return leader_of(bootstrap, "__transaction_state", (h & 0x7FFFFFFF) % state_partitions)


def live_broker_ids(bootstrap: str) -> set[int]:
    """The ids of the brokers the cluster reports as live (empty when it cannot be asked)."""
    from kafka import KafkaAdminClient

    with _quiet_kafka_client():
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        except Exception:  # no node answers yet
            return set()
        try:
            return {b["broker_id"] for b in admin.describe_cluster()["brokers"]}
        except Exception:
            return set()
        finally:
            admin.close()


__all__ = ["ClusterStatus", "LocalCluster", "is_cluster", "leader_of", "live_broker_ids", "transaction_coordinator"]
