"""The fraud-alerts consumer against the real Kafka broker: idempotent cases, dead letters, restarts."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import func, select

from npusuite.review.consumer import AlertConsumer, wait_until
from npusuite.review.models import Case

pytestmark = pytest.mark.kafka


def _send(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=60)
    producer.close()


def _count(db) -> int:
    with db.sessions() as s:
        return s.scalar(select(func.count(Case.id)))


def test_alerts_become_cases_once_and_bad_ones_are_dead_lettered(kafka_bootstrap, topic_name, sqlite_db, mk):
    alerts = [mk.alert(f"tx-k{i}", score=0.6 + i / 100) for i in range(5)]
    messages = [(a["transaction"]["account_id"].encode(), json.dumps(a).encode()) for a in alerts]
    messages.append((b"acct-1", json.dumps(alerts[0]).encode()))  # a redelivery
    messages.append((b"acct-x", b"{not json"))
    messages.append((b"acct-y", json.dumps({**alerts[1], "transaction_id": "tx-other"}).encode()))
    _send(kafka_bootstrap, topic_name, messages)

    consumer = AlertConsumer(kafka_bootstrap, sqlite_db.sessions, sqlite_db.cfg, topic=topic_name,
                             group_id=f"g-{topic_name}")
    consumer.start()
    try:
        assert wait_until(lambda: consumer.stats.created + consumer.stats.duplicates
                          + consumer.stats.dead_letters == len(messages), timeout_s=90), vars(consumer.stats)
    finally:
        consumer.stop()
    assert (consumer.stats.created, consumer.stats.duplicates, consumer.stats.dead_letters) == (5, 1, 2)
    assert _count(sqlite_db) == 5
    with sqlite_db.sessions() as s:
        assert {c.source for c in s.scalars(select(Case))} == {f"kafka:{topic_name}"}

    dlq = KafkaConsumer(f"{topic_name}-dlq", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                        consumer_timeout_ms=20000)
    dead = [r for r, _ in zip(dlq, range(2), strict=False)]
    dlq.close()
    by_value = {r.value: dict(r.headers) for r in dead}  # partitions: no order across them
    assert set(by_value) == {b"{not json", messages[-1][1]}  # the original bytes, untouched
    assert b"not valid JSON" in by_value[b"{not json"]["npusuite.dlq.reason"]
    assert b"transaction_id" in by_value[messages[-1][1]]["npusuite.dlq.reason"]
    assert by_value[b"{not json"]["npusuite.dlq.source"].startswith(f"{topic_name}/".encode())

    # A restarted consumer in the same group resumes after the committed offsets: nothing is applied twice.
    _send(kafka_bootstrap, topic_name, [(b"acct-1", json.dumps(mk.alert("tx-after-restart")).encode())])
    again = AlertConsumer(kafka_bootstrap, sqlite_db.sessions, sqlite_db.cfg, topic=topic_name,
                          group_id=f"g-{topic_name}")
    again.start()
    try:
        assert wait_until(lambda: again.stats.created == 1, timeout_s=90), vars(again.stats)
    finally:
        again.stop()
    assert (again.stats.duplicates, again.stats.dead_letters) == (0, 0)
    assert _count(sqlite_db) == 6
