"""The live scorer on a 3-node cluster while a broker dies: exactly-once holds, the scorer keeps running,
logs the leader changes, and the stall a downstream reader sees is measured.

20k transactions (and malformed ones) are produced at a steady rate into a topic with 3 replicas and
min.insync.replicas=2; when a quarter of them are scored, the broker that coordinates the scorer's Kafka
transactions (the worst one to lose: it also leads some partitions) is SIGKILLed, and restarted 10 s later.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from npusuite.platform.kafka.arrivals import ArrivalClock, paced_produce
from npusuite.platform.kafka.cluster import transaction_coordinator
from tests.fraud.service.conftest import StreamHarness
from tests.fraud.service.test_stream import assert_exactly_once, committed_scores, mixed_stream, wait_until

pytestmark = pytest.mark.kafka

N_TRANSACTIONS = 20_000
RATE_PER_S = 1_500
KILL_AT_SCORES = 5_000
DOWN_S = 10.0
BENCH_JSON = Path(__file__).resolve().parents[3] / "bench" / "out" / "kafka_failover_test.json"


@pytest.fixture
def cluster_harness(kafka_cluster, fast_model_repo, tmp_path):
    h = StreamHarness(kafka_cluster.bootstrap, tmp_path, fast_model_repo)
    yield h
    h.stop_all()


# slow: it depends on Kafka's failover timing (9 s session timeout, 10 s transaction timeout); it failed once in
# four runs this session (the fence case the producer now survives) and runs with `make test-all`.
@pytest.mark.slow
def test_broker_loss_under_load_keeps_exactly_once(kafka_cluster, cluster_harness, stream_transactions):
    h, cluster = cluster_harness, kafka_cluster
    transactions = stream_transactions[:N_TRANSACTIONS]
    stream, bad = mixed_stream(transactions, n_bad=60, seed=15)
    h.create_topics(partitions=4)
    scorer = h.start("s0")
    wait_until(lambda: "consuming tx-" in scorer.log.read_text(), "the scorer to start consuming", logs=h.logs)
    victim = transaction_coordinator(cluster.bootstrap, f"{h.group}-s0")
    clock = ArrivalClock(cluster.bootstrap, h.topics.scores, partitions=4)
    events: dict[str, float] = {}
    failures: list[BaseException] = []

    def kill_then_restart() -> None:
        try:
            clock.wait_for(KILL_AT_SCORES, timeout_s=300)
            events["kill"] = time.monotonic()
            cluster.kill_node(victim)
            time.sleep(DOWN_S)
            events["restart"] = time.monotonic()
            cluster.start_node(victim)
            events["back"] = time.monotonic()
        except BaseException as exc:  # surfaced by the test thread below
            failures.append(exc)

    chaos = threading.Thread(target=kill_then_restart, name="chaos")
    chaos.start()
    try:
        paced_produce(h.bootstrap, h.topics.transactions, stream, RATE_PER_S)
        assert clock.wait_for(len(transactions), timeout_s=300), f"only {clock.count} scores\n{h.logs()}"
        chaos.join(180)
    finally:
        clock.close()
        chaos.join(180)
        if cluster.status().running is False:  # never leave the session's cluster short of a node
            cluster.up()
    assert not failures, failures
    assert "kill" in events and "back" in events

    assert scorer.proc.poll() is None, f"the scorer exited during the broker loss:\n{h.logs()}"
    scores = committed_scores(h, len(transactions))
    assert_exactly_once(h, transactions, bad, scores)
    log = scorer.log.read_text()
    assert "partition leader changed" in log, f"no leader change logged:\n{h.logs()}"
    # issue 15: a broken transactional state (INVALID_TXN_STATE after records timed out) replaces the producer
    assert "fatal Kafka error" not in log and "npusuite: error" not in log, h.logs()
    assert scorer.terminate() == 0, h.logs()

    gap, gap_at = clock.longest_gap()
    figures = {"transactions": len(transactions), "rate_per_s": RATE_PER_S, "killed_node": victim,
               "killed_role": "transaction coordinator of the scorer", "down_s": DOWN_S,
               "longest_stall_s": round(gap, 3), "stall_began_after_kill_s": round(gap_at - events["kill"], 3),
               "restart_to_back_s": round(events["back"] - events["restart"], 3),
               "leader_changes_logged": log.count("partition leader changed"),
               "producers_replaced": log.count("transactional state is broken")}
    print(f"\nbroker loss under load: {json.dumps(figures)}")
    BENCH_JSON.parent.mkdir(parents=True, exist_ok=True)
    BENCH_JSON.write_text(json.dumps(figures, indent=2) + "\n")
