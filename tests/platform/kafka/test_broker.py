"""Against a real Apache Kafka 4.x broker (the session fixture)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from kafka import KafkaConsumer, KafkaProducer

from npusuite.platform.kafka.broker import LocalBroker, broker_version, free_broker_port
from npusuite.platform.settings import PathSettings

pytestmark = pytest.mark.kafka


def _consume(bootstrap: str, topic: str, group: str, want: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    got: list[bytes] = []
    try:
        for msg in consumer:
            got.append(msg.value)
            if len(got) == want:
                break
        consumer.commit()
    finally:
        consumer.close()
    return got


def test_broker_reports_kafka_4(kafka_bootstrap):
    assert broker_version(kafka_bootstrap) >= (4, 0)


def test_group_resumes_after_committed_offset(kafka_bootstrap, topic_name):
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(5):
        producer.send(topic_name, key=b"acct-1", value=f"first-{i}".encode())
    producer.flush()
    assert _consume(kafka_bootstrap, topic_name, "g1", 5) == [f"first-{i}".encode() for i in range(5)]

    for i in range(3):
        producer.send(topic_name, key=b"acct-1", value=f"second-{i}".encode())
    producer.flush()
    producer.close()
    # A restarted consumer in the same group starts after the committed offset.
    assert _consume(kafka_bootstrap, topic_name, "g1", 3) == [f"second-{i}".encode() for i in range(3)]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", "kafka", *args],
                          capture_output=True, text=True, timeout=300)


# slow-marked to keep the default run short (`make test-all` runs it): ~13 s
@pytest.mark.slow
def test_up_status_down_twice(tmp_path):
    port = free_broker_port()
    data = str(tmp_path / "k")
    try:
        for _ in range(2):
            up = _cli("up", "--port", str(port), "--data", data)
            assert up.returncode == 0, up.stderr
            assert f"running at 127.0.0.1:{port}" in up.stdout
            assert _cli("status", "--data", data).returncode == 0
        assert "stopped" in _cli("down", "--data", data).stdout
        assert "was not running" in _cli("down", "--data", data).stdout
        assert _cli("status", "--data", data).returncode == 1
        # ... and once more after a clean stop: storage is reused, not re-formatted.
        assert _cli("up", "--port", str(port), "--data", data).returncode == 0
    finally:
        LocalBroker(tmp_path / "k", port=port, cache_dir=PathSettings().cache_dir()).down()


def test_busy_port_fails_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _cli("up", "--port", str(port), "--data", str(tmp_path / "k"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0], proc.stderr
