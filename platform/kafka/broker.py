"""A real single-node Apache Kafka 4.x broker (KRaft, no ZooKeeper) on 127.0.0.1.

``LocalBroker(data_dir, port).up()``:

1. checks for ``java``, resolves the broker jars (see :mod:`.jars`);
2. if this data dir already has a live broker, returns it (``up`` is idempotent);
3. refuses a busy port with a one-line :class:`UserError`;
4. formats KRaft storage once (``kafka.tools.StorageTool format``);
5. starts ``kafka.Kafka`` as combined broker + controller in its own session,
   so it outlives the command that started it;
6. waits until a produce/consume round trip through the broker works.

State of a running broker (pid, ports) is kept in ``DATA/broker.json``; the
broker's own log is ``DATA/logs/server.log``.  ``down()`` sends SIGTERM (Kafka
shuts down cleanly on it) and SIGKILLs after a timeout.

A broker built with ``node_id``/``voters``/``cluster_id``/``replication`` is one
node of a multi-node cluster (see :mod:`.cluster`, which formats every node with
the same cluster id and starts them together: no node serves before a quorum of
controllers is up).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from npusuite.platform.errors import UserError
from npusuite.platform.kafka import jars

logger = logging.getLogger(__name__)

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dirs}
num.partitions={partitions}
offsets.topic.replication.factor={replication}
offsets.topic.num.partitions=8
transaction.state.log.replication.factor={replication}
transaction.state.log.min.isr={min_isr}
default.replication.factor={replication}
min.insync.replicas={min_isr}
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
"""


@dataclass
class BrokerStatus:
    running: bool
    bootstrap: str
    pid: int | None
    data_dir: str
    version: str
    log_file: str

    def describe(self) -> str:
        if not self.running:
            return f"kafka: not running (data {self.data_dir})"
        return (f"kafka {self.version}: running at {self.bootstrap} (pid {self.pid}); "
                f"data {self.data_dir}; log {self.log_file}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_broker_port(low: int = 20000, high: int = 32000, span: int = 2) -> int:
    """A port P with P..P+span-1 all free (a broker and its controller: 2; a cluster of N nodes: 2N),
    below Linux's ephemeral range.

    Ports from :func:`free_port` are ephemeral ones, which the kernel may hand to any
    outgoing connection before the broker binds them; this range avoids that race.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high - span)
        if all(port_is_free(port + i) for i in range(span)):
            return port
    raise UserError(f"no {span} consecutive free ports found between {low} and {high}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


class LocalBroker:
    """One broker per data directory.  Safe to call ``up`` and ``down`` repeatedly."""

    def __init__(self, data_dir: Path, port: int = 9092, cache_dir: Path | None = None,
                 heap_mb: int = 512, partitions: int = 4, node_id: int = 1, voters: str | None = None,
                 cluster_id: str | None = None, replication: int = 1):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.cache_dir = cache_dir or self.data_dir / "cache"
        self.heap_mb = heap_mb
        self.partitions = partitions
        self.node_id = node_id
        #: ``controller.quorum.voters``; None: this node alone (a single-node cluster).
        self.voters = voters
        #: Every node of a cluster is formatted with the same id; None: a fresh one.
        self.cluster_id = cluster_id
        #: Replication factor of the internal topics (offsets, transaction state) and auto-created ones.
        self.replication = replication

    # -- state file -------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.data_dir / "broker.json"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def _state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def status(self) -> BrokerStatus:
        state = self._state()
        running = bool(state) and _alive(state["pid"])
        port = state["port"] if state else self.port
        return BrokerStatus(running, f"127.0.0.1:{port}", state["pid"] if running else None,
                            str(self.data_dir), jars.kafka_version(), str(self.log_file))

    # -- lifecycle --------------------------------------------------------
    def up(self, timeout_s: float = 90.0) -> BrokerStatus:
        """Start the broker (or find it running) and wait until it serves clients.

        Raises UserError: java/mvn missing, port busy, or the broker fails to start.
        """
        current = self.status()
        if current.running:
            wait_until_serving(current.bootstrap, timeout_s)
            return current
        proc = self.start()
        bootstrap = f"127.0.0.1:{self.port}"
        try:
            wait_until_serving(bootstrap, timeout_s, proc=proc)
        except UserError:
            self.down()
            raise UserError(f"the Kafka broker did not start; see {self.log_file}") from None
        logger.info("kafka %s serving at %s (pid %d)", jars.kafka_version(), bootstrap, proc.pid)
        return self.status()

    def start(self) -> subprocess.Popen:
        """Format (once) and spawn the broker without waiting for it to serve (a cluster node cannot
        serve before a quorum of its peers runs).  Raises UserError on a busy port or missing tools."""
        java = jars.require_tool("java", "to run the Kafka broker")
        controller_port = self.port + 1
        for p in (self.port, controller_port):
            if not port_is_free(p):
                raise UserError(f"port {p} on 127.0.0.1 is already in use; pick another with --port")
        libs = jars.resolve(self.cache_dir)
        props = self._write_properties(controller_port)
        self._format_once(java, libs, props)
        proc = self._spawn(java, libs, props)
        self.state_file.write_text(json.dumps({"pid": proc.pid, "port": self.port,
                                               "controller_port": controller_port, "node_id": self.node_id}))
        return proc

    def terminate(self) -> None:
        """Send SIGTERM without waiting (``down`` waits)."""
        state = self._state()
        if state and _alive(state["pid"]):
            os.kill(state["pid"], signal.SIGTERM)

    def kill(self) -> bool:
        """SIGKILL the broker (a crash, for failover tests); returns False when none was running."""
        state = self._state()
        if not state or not _alive(state["pid"]):
            return False
        os.kill(state["pid"], signal.SIGKILL)
        while _alive(state["pid"]):
            time.sleep(0.05)
        self.state_file.unlink(missing_ok=True)
        return True

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker; returns False when none was running."""
        state = self._state()
        if not state or not _alive(state["pid"]):
            self.state_file.unlink(missing_ok=True)
            return False
        pid = state["pid"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            logger.warning("kafka pid %d ignored SIGTERM for %.0fs; killing it", pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return True

    # -- helpers ----------------------------------------------------------
    def _write_properties(self, controller_port: int) -> Path:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(SERVER_PROPERTIES.format(
            port=self.port, controller_port=controller_port, node_id=self.node_id,
            voters=self.voters or f"{self.node_id}@127.0.0.1:{controller_port}",
            replication=self.replication, min_isr=min_insync_replicas(self.replication),
            log_dirs=self.data_dir / "kraft", partitions=self.partitions))
        return props

    def _format_once(self, java: str, libs: Path, props: Path) -> None:
        if (self.data_dir / "kraft" / "meta.properties").exists():
            return
        cmd = [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
               "-t", self.cluster_id or new_cluster_id(), "-c", str(props), "--ignore-formatted"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"formatting KRaft storage failed: {proc.stdout.strip() or proc.stderr.strip()}")

    def _spawn(self, java: str, libs: Path, props: Path) -> subprocess.Popen:
        cmd = [java, f"-Xmx{self.heap_mb}m", f"-Xms{min(self.heap_mb, 256)}m", "-XX:+UseG1GC",
               f"-Dkafka.logs.dir={self.log_file.parent}",
               f"-Dlog4j2.configurationFile={jars.resource('log4j2.yaml')}",
               "-cp", f"{libs}/*", "kafka.Kafka", str(props)]
        out = open(self.log_file.parent / "stdout.log", "ab")
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.data_dir)


def min_insync_replicas(replication: int) -> int:
    """2 when there are at least 3 replicas (a write survives one broker loss and stays on two), else 1."""
    return 2 if replication >= 3 else 1


def new_cluster_id() -> str:
    """A base64url-encoded 16-byte UUID without padding, as KRaft wants it.

    Never one that starts with "-" (1 in 64 would): StorageTool's argument parser reads it as an
    option and fails "--cluster-id: expected one argument".  Kafka's own ``Uuid.randomUuid()``
    redraws those too."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def round_trip(bootstrap: str, timeout_s: float = 10.0) -> None:
    """Produce one record to ``__npusuite_health`` and read it back; raises on failure."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    token = uuid.uuid4().hex.encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             request_timeout_ms=int(timeout_s * 1000), max_block_ms=int(timeout_s * 1000))
    try:
        meta = producer.send("__npusuite_health", token).get(timeout=timeout_s)
    finally:
        producer.close(timeout=2)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000))
    try:
        tp = TopicPartition(meta.topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        for msg in consumer:
            if msg.value == token:
                return
        raise TimeoutError("round trip record not read back")
    finally:
        consumer.close()


def _tcp_open(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_kafka_client():
    """kafka-python logs every refused connection at ERROR; expected while a broker boots."""
    log = logging.getLogger("kafka")
    old = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(old)


def wait_until_serving(bootstrap: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    """Poll with a produce/consume round trip until it works or time runs out.

    Raises UserError when the broker process exits or the deadline passes.
    """
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    with _quiet_kafka_client():
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise UserError(f"the Kafka broker exited with status {proc.returncode}")
            if not _tcp_open(bootstrap):
                time.sleep(0.25)
                continue
            try:
                round_trip(bootstrap, timeout_s=min(10.0, max(1.0, deadline - time.monotonic())))
                return
            except Exception as exc:  # broker still starting
                last = exc
                time.sleep(0.5)
    raise UserError(f"Kafka at {bootstrap} did not answer a round trip within {timeout_s:.0f}s ({last})")


def broker_version(bootstrap: str) -> tuple[int, ...]:
    """The broker version as kafka-python infers it from the broker's ApiVersions answer."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        node = admin.describe_cluster()["brokers"][0]["broker_id"]
        return tuple(admin.get_broker_version_data(node).broker_version)
    finally:
        admin.close()


__all__ = ["BrokerStatus", "LocalBroker", "broker_version", "free_broker_port", "free_port", "min_insync_replicas",
           "new_cluster_id", "port_is_free", "round_trip", "wait_until_serving"]
