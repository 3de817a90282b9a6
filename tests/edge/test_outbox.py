"""Outbox rules: idempotent ids, ordering, the full-disk policy (OK dropped oldest first, NG never), dead letters."""

from __future__ import annotations

import random

import httpx
import pytest
from prometheus_client import generate_latest

from npusuite.edge.outbox import Outbox, OutboxConfig, PutOutcome
from npusuite.edge.sync import HttpIngestSink, SyncConfig, Syncer, backoff_s


def payload(i: int, size: int = 100) -> dict:
    return {"id": f"r{i}", "blob": "x" * size}


@pytest.mark.parametrize("fsync", ["full", "normal", "off"])
def test_put_is_idempotent_and_survives_reopen(tmp_path, fsync):
    cfg = OutboxConfig(tmp_path / "o.db", fsync=fsync)
    box = Outbox(cfg)
    assert box.put("a", False, payload(1)) is PutOutcome.STORED
    assert box.put("a", False, payload(1)) is PutOutcome.DUPLICATE
    box.ack(["a"])
    assert box.put("a", False, payload(1)) is PutOutcome.DUPLICATE  # delivered ids are remembered
    box.put("b", True, payload(2))
    box.close()
    again = Outbox(cfg)
    assert [r.id for r in again.claim(10)] == ["b"]
    assert again.stats().delivered == 1 and again.known("a") and again.known("b") and not again.known("c")
    assert again.next_boot() == 1 and again.next_boot() == 2


def test_every_put_is_timed_for_the_slow_disk_alert(tmp_path):
    box = Outbox(OutboxConfig(tmp_path / "o.db"))
    for i in range(5):
        box.put(f"r{i}", i % 2 == 0, payload(i))
    box.put("r0", True, payload(0))  # a duplicate is timed too: it is a transaction on the disk
    count = box.registry.get_sample_value("npusuite_edge_outbox_write_seconds_count")
    total = box.registry.get_sample_value("npusuite_edge_outbox_write_seconds_sum")
    assert count == 6 and total > 0


def test_claim_sends_ng_first_then_oldest(tmp_path):
    box = Outbox(OutboxConfig(tmp_path / "o.db"))
    for i, ng in enumerate([False, True, False, True]):
        box.put(f"r{i}", ng, payload(i))
    assert [r.id for r in box.claim(10)] == ["r1", "r3", "r0", "r2"]


def test_full_disk_drops_oldest_ok_never_ng(tmp_path):
    box = Outbox(OutboxConfig(tmp_path / "o.db", max_bytes=1000))
    size = len('{"id":"r0","blob":""}') + 200
    for i in range(4):  # ~880 bytes: fits
        assert box.put(f"r{i}", i % 2 == 1, payload(i, 200)) is PutOutcome.STORED
    assert box.put("r4", False, payload(4, 200)) is PutOutcome.STORED  # r0 (oldest OK) made room
    ids = {r.id for r in box.claim(10)}
    assert "r0" not in ids and {"r1", "r3", "r4"} <= ids
    for i in range(5, 10):  # NG results always go in; OK ones make way
        assert box.put(f"r{i}", True, payload(i, 200)) is PutOutcome.STORED
    ids = {r.id for r in box.claim(20)}
    assert {"r1", "r3", "r5", "r6", "r7", "r8", "r9"} <= ids and not ids & {"r0", "r2", "r4"}
    assert box.put("r10", False, payload(10, 200)) is PutOutcome.DROPPED  # only NG left: the new OK is dropped
    s = box.stats()
    assert s.dropped_ok == 4 and s.ng_over_budget >= 1 and s.pending_ng == 7 and s.pending_bytes > 1000 - size
    metrics = generate_latest(box.registry).decode()
    assert 'npusuite_edge_outbox_dropped_total{kind="ok"} 4.0' in metrics
    assert 'npusuite_edge_outbox_pending_records{kind="ng"} 7.0' in metrics


def test_backoff_grows_and_is_capped():
    cfg = SyncConfig(backoff_initial_s=0.5, backoff_max_s=8)
    rng = random.Random(1)
    waits = [backoff_s(a, cfg, rng) for a in range(10)]
    assert 0.25 <= waits[0] <= 0.5 and all(4 <= w <= 8 for w in waits[5:])


def test_bad_records_are_dead_lettered_and_link_errors_retried(tmp_path, serve, ingest_double):
    upstream = ingest_double("tok")
    srv = serve(upstream.app)
    box = Outbox(OutboxConfig(tmp_path / "o.db"))
    box.put("good", True, {"id": "good", "image_png_b64": "", "defective": True})
    box.put("bad", False, {"no": "id"})  # the upstream answers 422: never going to work
    syncer = Syncer(box, HttpIngestSink(srv.url, "tok", send_ok=True), SyncConfig(backoff_initial_s=0.01))
    assert syncer.sync_once() == 1
    s = box.stats()
    assert s.pending == 0 and s.dead_letters == 1 and s.delivered == 1
    # wrong token: a retryable problem (an operator fixes the token), nothing is dead-lettered
    box.put("later", False, {"id": "later", "image_png_b64": "", "defective": False})
    wrong = Syncer(box, HttpIngestSink(srv.url, "wrong", send_ok=True), SyncConfig(backoff_initial_s=0.01))
    assert wrong.sync_once() == 0 and box.stats().pending == 1 and wrong.status.link_up is False
    # link down
    down = Syncer(box, HttpIngestSink("http://127.0.0.1:9", "tok", client=httpx.Client(timeout=2), send_ok=True))
    assert down.sync_once() == 0 and box.claim(10, now_s=1e12)[0].attempts == 2


def test_delivered_ids_are_pruned_after_retention(tmp_path):
    box = Outbox(OutboxConfig(tmp_path / "o.db"))
    box.put("old", False, payload(1))
    box.ack(["old"])
    assert box.prune_delivered(older_than_s=3600) == 0 and box.known("old")
    assert box.prune_delivered(older_than_s=-1) == 1 and not box.known("old")


@pytest.mark.kafka
def test_kafka_sink_delivers_every_record(tmp_path, kafka_bootstrap, topic_name):
    import json

    from kafka import KafkaConsumer

    from npusuite.edge.sync import KafkaSink

    box = Outbox(OutboxConfig(tmp_path / "o.db"))
    for i in range(20):
        box.put(f"k{i}", i % 3 == 0, {"id": f"k{i}", "n": i})
    syncer = Syncer(box, KafkaSink(kafka_bootstrap, topic_name))
    while box.stats().pending:
        assert syncer.sync_once() > 0
    syncer.sink.close()
    consumer = KafkaConsumer(topic_name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000, group_id=None)
    got = {}
    for m in consumer:  # stops after 10 s without a message, or once all 20 are in
        got[m.key.decode()] = json.loads(m.value)
        if len(got) == 20:
            break
    consumer.close()
    assert set(got) == {f"k{i}" for i in range(20)} and got["k3"] == {"id": "k3", "n": 3}
