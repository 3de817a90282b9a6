"""A real 3-node KRaft cluster: every node serves, the suite's topics are replicated to fit the cluster,
writes survive a broker loss, and the CLI covers every node."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from npusuite.platform.kafka.broker import free_broker_port
from npusuite.platform.kafka.cluster import LocalCluster, live_broker_ids
from npusuite.platform.kafka.topics import TopicSpec, bootstrap_create_missing, replication_for
from npusuite.platform.settings import PathSettings

pytestmark = pytest.mark.kafka


def _describe(bootstrap: str, topic: str) -> tuple[list[dict], dict[str, str]]:
    """(partitions, topic configs) as the cluster reports them."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        parts = admin.describe_topics([topic])[0]["partitions"]
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        return parts, {k: v["value"] for k, v in res["topic"][topic].items()}
    finally:
        admin.close()


def test_replication_follows_the_broker_count():
    assert replication_for(1) == (1, 1)
    assert replication_for(2) == (2, 1)
    assert replication_for(3) == (3, 2)
    assert replication_for(5) == (3, 2)


def test_single_broker_topics_have_one_replica(kafka_bootstrap, topic_name):
    assert bootstrap_create_missing(kafka_bootstrap, {topic_name: TopicSpec(2)}) == [topic_name]
    parts, configs = _describe(kafka_bootstrap, topic_name)
    assert len(parts) == 2 and all(len(p["replica_nodes"]) == 1 for p in parts)
    assert configs["min.insync.replicas"] == "1"
    # An existing topic is left alone.
    assert bootstrap_create_missing(kafka_bootstrap, {topic_name: TopicSpec(8)}) == []


# slow-marked to keep the default run short (`make test-all` runs it): ~32 s with
# its three-broker cluster
@pytest.mark.slow
def test_cluster_topics_have_three_replicas_and_survive_a_broker_loss(kafka_cluster, topic_name):
    c = kafka_cluster
    assert live_broker_ids(c.bootstrap) == {1, 2, 3}
    assert bootstrap_create_missing(c.bootstrap, {topic_name: TopicSpec(3, {"cleanup.policy": "compact"})})
    parts, configs = _describe(c.bootstrap, topic_name)
    assert all(sorted(p["replica_nodes"]) == [1, 2, 3] for p in parts)
    assert configs["min.insync.replicas"] == "2" and configs["cleanup.policy"] == "compact"

    # Kill the leader of partition 0; acks=all writes go on through the new leader and nothing is lost.
    victim = next(p["leader_id"] for p in parts if p["partition_index"] == 0)
    producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all", retries=20, linger_ms=5)
    try:
        for i in range(100):
            producer.send(topic_name, key=f"k{i}".encode(), value=b"before", partition=0)
        producer.flush()
        c.kill_node(victim)
        for i in range(100):
            producer.send(topic_name, key=f"k{i}".encode(), value=b"after", partition=0)
        producer.flush(timeout=60)
    finally:
        producer.close()
        c.start_node(victim)
    consumer = KafkaConsumer(bootstrap_servers=c.bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    try:
        tp = TopicPartition(topic_name, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        values = []
        for m in consumer:  # every 'before' precedes the 'after's in this partition: stop at 100 'after's
            values.append(m.value)
            if values.count(b"after") >= 100:
                break
    finally:
        consumer.close()
    assert values.count(b"before") == 100 and values.count(b"after") >= 100
    new_parts, _ = _describe(c.bootstrap, topic_name)
    assert next(p["leader_id"] for p in new_parts if p["partition_index"] == 0) != victim or len(values) >= 200


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", "kafka", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_up_status_down_cover_every_node(tmp_path):
    port = free_broker_port(span=6)
    data = str(tmp_path / "k3")
    try:
        up = _cli("up", "--brokers", "3", "--port", str(port), "--data", data)
        assert up.returncode == 0, up.stderr
        assert "3/3 nodes running" in up.stdout
        st = _cli("status", "--data", data)
        assert st.returncode == 0 and all(f"127.0.0.1:{port + 2 * i} running" in st.stdout for i in range(3))
        wrong = _cli("up", "--brokers", "2", "--data", data)
        assert wrong.returncode == 2 and "3-node cluster" in wrong.stderr
        assert "stopped" in _cli("down", "--data", data).stdout
        st = _cli("status", "--data", data)
        assert st.returncode == 1 and "0/3 nodes running" in st.stdout
    finally:
        LocalCluster.open(tmp_path / "k3", cache_dir=PathSettings().cache_dir()).down()
