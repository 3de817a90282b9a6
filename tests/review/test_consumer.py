"""The fraud-alerts consumer against the real Kafka broker: idempotent cases, dead letters, restarts."""

from __future__ import annotations

import json

import httpx
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
    dead = [r for _, r in zip(range(2), dlq, strict=False)]  # range first: no third blocking read
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


def _dead_letters(bootstrap: str, topic: str, n: int) -> dict[bytes, dict[str, bytes]]:
    dlq = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=20000)
    dead = [r for _, r in zip(range(n), dlq, strict=False)]  # range first: no extra blocking read
    dlq.close()
    return {r.value: dict(r.headers) for r in dead}


def test_poison_records_never_stall_the_partition(kafka_bootstrap, topic_name, db, mk):
    """Issue 12 defects 3 and 7: a record whose handling raises anything goes to the dead-letter topic with
    the exception as its reason and the alerts after it still become cases; a reason too long for its row
    is kept (cut, with a visible marker), not lost."""
    deep = b"[" * 100_000 + b"]" * 100_000
    overflow = mk.alert("tx-p-overflow")
    overflow["transaction"]["timestamp"] = "0001-01-01T00:00:00+01:00"
    nul = {**mk.alert("tx-p-nul"), "model": "fraud-mlp\u0000@3"}  # PostgreSQL refuses NUL in text: a DataError
    long_reason = "amount: " + "1" + "0" * 308 + " is far above the account's usual amounts " + "x" * 100
    declined = mk.alert("tx-p-long", decision="decline", reasons=[long_reason])
    valid = mk.alert("tx-p-valid")
    messages = [(b"acct-1", deep), (b"acct-1", json.dumps(overflow).encode()), (b"acct-1", json.dumps(nul).encode()),
                (b"acct-1", json.dumps(declined).encode()), (b"acct-1", json.dumps(valid).encode())]
    _send(kafka_bootstrap, topic_name, messages)
    consumer = AlertConsumer(kafka_bootstrap, db.sessions, db.cfg, topic=topic_name, group_id=f"g-{topic_name}",
                             retry_pause_s=0.2)
    server, live = mk.start_live(db, consumer)
    with server:
        assert wait_until(lambda: consumer.stats.created + consumer.stats.dead_letters == len(messages),
                          timeout_s=90), vars(consumer.stats)
        health = httpx.get(f"{live.url}/healthz", timeout=30)
        assert health.status_code == 200 and health.json()["consumer"]["alive"] is True
        assert wait_until(lambda: httpx.get(f"{live.url}/readyz", timeout=30).status_code == 200, timeout_s=30)
        assert httpx.get(f"{live.url}/readyz", timeout=30).json()["consumer"]["state"] == "consuming"
    on_pg = db.url.startswith("postgresql")
    assert (consumer.stats.created, consumer.stats.dead_letters) == ((2, 3) if on_pg else (3, 2))
    assert consumer.stats.db_errors == 0  # a record's own fault is never retried as if the database were down
    with db.sessions() as s:
        made = {c.external_id: c for c in s.scalars(select(Case))}
        assert "tx-p-valid" in made and "tx-p-long" in made
        kept = made["tx-p-long"]
        assert kept.reasons[0].reason.endswith("\u2026") and len(kept.reasons[0].reason) == 256
        assert kept.payload["reasons"] == [long_reason]
    dead = _dead_letters(kafka_bootstrap, f"{topic_name}-dlq", 3 if on_pg else 2)
    assert b"nested" in dead[deep]["npusuite.dlq.reason"]
    assert b"timestamp" in dead[messages[1][1]]["npusuite.dlq.reason"] \
        or b"out of range" in dead[messages[1][1]]["npusuite.dlq.reason"]
    if on_pg:
        reason = dead[messages[2][1]]["npusuite.dlq.reason"]
        assert reason.startswith(b"DataError: ") and b"NUL" in reason and b"\n" not in reason and len(reason) <= 500
    sources = {h["npusuite.dlq.source"].split(b"@")[0] for h in dead.values()}
    assert len(sources) == 1 and sources.pop().startswith(f"{topic_name}/".encode())  # one key: one partition


def test_a_database_outage_is_retried_not_dead_lettered(kafka_bootstrap, topic_name, tmp_path, mk):
    """Infrastructure failures put the batch back and wait; the alert becomes a case once the database is back."""
    folder = tmp_path / "dbdir"
    folder.mkdir()
    made = mk.fresh_sqlite(folder)
    _send(kafka_bootstrap, topic_name, [(b"acct-1", json.dumps(mk.alert("tx-outage")).encode())])
    consumer = AlertConsumer(kafka_bootstrap, made.sessions, made.cfg, topic=topic_name, group_id=f"g-{topic_name}",
                             retry_pause_s=0.2)
    server, live = mk.start_live(made, consumer)  # users are created now, while the database is there
    moved = tmp_path / "moved"
    folder.rename(moved)  # the database file is gone from its path: every new connection fails
    made.engine.dispose()
    with server:
        assert wait_until(lambda: consumer.stats.db_errors >= 2, timeout_s=90), vars(consumer.stats)
        assert consumer.stats.state == "retrying" and consumer.alive
        assert (consumer.stats.created, consumer.stats.dead_letters) == (0, 0)
        assert httpx.get(f"{live.url}/healthz", timeout=30).status_code == 200  # alive, and says so
        ready = httpx.get(f"{live.url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["database"] == "unavailable"
        moved.rename(folder)
        assert wait_until(lambda: consumer.stats.created == 1, timeout_s=90), vars(consumer.stats)
        assert wait_until(lambda: httpx.get(f"{live.url}/readyz", timeout=30).status_code == 200, timeout_s=30)
    assert consumer.stats.dead_letters == 0
    with made.sessions() as s:
        assert [c.external_id for c in s.scalars(select(Case))] == ["tx-outage"]
