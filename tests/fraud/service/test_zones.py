"""Dual-active zones through Kafka's MirrorMaker 2: zone A is lost, zone B takes its accounts over.

Two real clusters (one broker each, standing for zones A and B), ``npusuite kafka mirror --both-ways``
between them, a scorer per zone scoring the accounts whose home it is (``home_zone``).  While zone A is
receiving transactions, its broker and scorer are SIGKILLed; zone B starts ``npusuite fraud run
--takeover-zone A`` and the rest of A's transactions are routed to B (``A.<transactions>`` there).
Checked: every transaction of A mirrored before the loss, or re-routed after it, has a committed score in
B's view (B's scores plus the mirrored ``A.<scores>``, de-duplicated by transaction_id); the takeover's
account state equals an offline replay of those transactions, and the 24 h counts in its alerts equal the
offline ones.  Printed: RPO (records and seconds not mirrored at the loss) and RTO.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from npusuite.fraud.features import StreamFeaturizer
from npusuite.fraud.schema import parse_transaction
from npusuite.fraud.service.account_store import rebuild
from npusuite.fraud.service.scoring import LiveScorer
from npusuite.platform.kafka.arrivals import ArrivalClock, paced_produce
from npusuite.platform.kafka.broker import LocalBroker, free_broker_port
from npusuite.platform.kafka.zones import home_zone
from npusuite.platform.settings import PathSettings
from tests.fraud.service.conftest import StreamHarness
from tests.fraud.service.test_stream import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ZONES = ("A", "B")
BENCH_JSON = Path(__file__).resolve().parents[3] / "bench" / "out" / "kafka_zones_test.json"


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_zone_b_takes_over_zone_a_with_its_state(tmp_path, fast_model_repo, stream_transactions):
    cache = PathSettings().cache_dir()
    brokers = {z: LocalBroker(tmp_path / f"kafka-{z}", port=free_broker_port(), cache_dir=cache, heap_mb=384)
               for z in ZONES}
    harness: dict[str, StreamHarness] = {}
    mirror = None
    clocks: list[ArrivalClock] = []
    try:
        boot = {z: b.up(timeout_s=120).bootstrap for z, b in brokers.items()}
        for z in ZONES:
            (tmp_path / z).mkdir()
            harness[z] = StreamHarness(boot[z], tmp_path / z, fast_model_repo, suffix="z")
            harness[z].create_topics(partitions=4)
        ha, hb = harness["A"], harness["B"]
        t = ha.topics
        mirror = subprocess.Popen(
            [sys.executable, "-m", "npusuite.platform", "kafka", "mirror", "--source", f"A={boot['A']}", "--target",
             f"B={boot['B']}", "--both-ways", "--data", str(tmp_path / "mm2"),
             "--topics", f"{t.transactions}|{t.scores}|{ha.group}-account-state"],
            stdout=(tmp_path / "mm2.out").open("wb"), stderr=subprocess.STDOUT)
        for z in ZONES:
            harness[z].start(f"{z}0")
        for z in ZONES:
            s = harness[z].scorers[0]
            wait_until(lambda s=s: "consuming tx-" in s.log.read_text(), f"zone {z}'s scorer", logs=harness[z].logs)

        transactions = stream_transactions[:8000]
        routed = {z: [tx for tx in transactions if home_zone(tx["account_id"], ZONES) == z] for z in ZONES}
        assert all(len(v) > 2000 for v in routed.values())

        def msgs(txs):
            return [(tx["account_id"].encode(), json.dumps(tx).encode()) for tx in txs]

        # Phase 1: both zones score their own accounts; MirrorMaker copies them across.
        a_first, a_rest = routed["A"][:len(routed["A"]) * 2 // 3], routed["A"][len(routed["A"]) * 2 // 3:]
        paced_produce(boot["A"], t.transactions, msgs(a_first), rate=2000)
        paced_produce(boot["B"], t.transactions, msgs(routed["B"]), rate=2000)
        b_scores = ArrivalClock(boot["B"], t.scores, 4, decode=lambda v: json.loads(v)["transaction_id"])
        clocks.append(b_scores)
        wait_until(lambda: sum(end_offsets(boot["B"], t.transactions).values()) == len(routed["B"]), "B's input")
        wait_until(lambda: sum(end_offsets(boot["B"], f"A.{t.transactions}").values()) >= len(a_first),
                   "MirrorMaker to copy A's transactions to B", timeout_s=240,
                   logs=lambda: (tmp_path / "mm2" / "logs" / "server.log").read_text()[-3000:])

        # Phase 2: zone A is lost (broker, then scorer, SIGKILLed) while it receives the rest of its transactions.
        half = a_rest[:len(a_rest) // 2]
        loss: dict[str, float] = {}

        def lose_zone_a(progress) -> bool:  # once half of the rest is acknowledged by zone A
            if progress.acked < len(half):
                return False
            loss["t"] = time.monotonic()
            brokers["A"].kill()
            return True

        produced = paced_produce(boot["A"], t.transactions, msgs(a_rest), rate=1000, tick=lose_zone_a)
        assert "t" in loss
        t_loss = loss["t"]
        produced_a = len(a_first) + produced.acked
        ha.scorers[0].proc.send_signal(signal.SIGKILL)
        ha.scorers[0].proc.wait(30)
        t_takeover = time.monotonic()  # here an operator (or an alert rule) has declared zone A lost
        takeover = hb.start("takeover-A", "fraud-fast", "--takeover-zone", "A")

        # RPO: what zone B holds of zone A's input once A is gone (MirrorMaker cannot copy more): the records
        # not copied, and the time between the newest copied record (MirrorMaker keeps record timestamps)
        # and the newest one zone A had.
        time.sleep(3)
        mirrored = hb.read_committed(f"A.{t.transactions}")
        by_id = {json.loads(r.value)["transaction_id"]: r for r in mirrored}
        assert set(by_id) <= {tx["transaction_id"] for tx in a_first + a_rest[:produced.sent]}
        rpo_records = max(0, produced_a - len(by_id))  # acknowledged by zone A, never copied to zone B
        # RPO seconds: how far back the loss reaches, from the newest acknowledged record to the oldest lost one.
        lost_ms = [ts for value, ts in produced.acked_ms.items() if json.loads(value)["transaction_id"] not in by_id]
        rpo_s = (produced.newest_acked_ms - min(lost_ms)) / 1000 if lost_ms else 0.0

        # The gateway now routes A's accounts to zone B: the rest of their transactions go to A.<transactions> there.
        rerouted = a_rest[produced.sent:]
        assert len(rerouted) > 100
        paced_produce(boot["B"], f"A.{t.transactions}", msgs(rerouted), rate=1000)
        rerouted_ids = {tx["transaction_id"] for tx in rerouted}

        # Every mirrored or re-routed A transaction is scored in B's view: its own scores and A's mirrored ones.
        a_ids = set(by_id) | rerouted_ids
        wait_until(lambda: a_ids <= set(b_scores.values) | set(mirrored_scores(hb, t.scores)),
                   "every mirrored transaction of zone A to be scored in zone B", timeout_s=240, logs=hb.logs)
        # RTO: from the loss until zone A's accounts are scored again (their first re-routed transaction).
        first_takeover = min(at for at, tid in zip(b_scores.times, b_scores.values, strict=True)
                             if tid in rerouted_ids)
        rto_s = first_takeover - t_loss
        takeover_to_score_s = first_takeover - t_takeover
        assert takeover.proc.poll() is None, hb.logs()
        assert f"takeover: A.{t.transactions}[" in takeover.log.read_text(), hb.logs()

        # De-duplicated by transaction_id, every mirrored A transaction has exactly one score.
        ours = Counter(tid for tid in b_scores.values if tid in a_ids)
        theirs = Counter(mirrored_scores(hb, t.scores))
        assert not [tid for tid, n in ours.items() if n > 1], "the takeover scored a transaction twice"
        duplicates = sum(1 for tid in ours if tid in theirs)
        assert set(ours) | set(theirs) >= a_ids

        # The takeover's state of A's accounts is an offline replay of A's mirrored and re-routed transactions.
        replayed = [tx for tx in transactions if tx["transaction_id"] in a_ids]
        offline = StreamFeaturizer()
        features = {}
        for tx in replayed:
            features[tx["transaction_id"]] = offline.advance(parse_transaction(tx))
        changelog = hb.read_committed(f"A.{ha.group}-account-state")
        live = {}
        for p in {r.partition for r in changelog}:
            recs = [(r.key, r.value) for r in changelog if r.partition == p]
            for account, entry in rebuild(recs, ring_size=20).items():
                live[account] = LiveScorer(None).restore_state(entry.state.snapshot, entry.state.transactions)
        assert set(live) == set(offline.states)
        assert [a for a, s in offline.states.items() if live[a].to_bytes() != s.to_bytes()] == []
        alerts = [json.loads(r.value) for r in hb.read_committed(t.alerts)]
        takeover_alerts = [a for a in alerts if a["transaction_id"] in a_ids and a["transaction_id"] not in theirs]
        checked = [a for a in takeover_alerts if "cnt_24h" in a["features"]]
        for a in checked:
            assert a["features"]["cnt_24h"] == pytest.approx(features[a["transaction_id"]]["cnt_24h"], abs=1e-6)

        # The 24 h counts carried on: re-routed transactions whose account had transactions in the 24 h before
        # them that zone A scored (their state came through the mirrored changelog).
        last_before: dict[str, float] = {}
        for tx in replayed:
            if tx["transaction_id"] not in rerouted_ids:
                last_before[tx["account_id"]] = parse_transaction(tx).timestamp.timestamp()
        carried = sum(1 for tx in rerouted if tx["account_id"] in last_before
                      and parse_transaction(tx).timestamp.timestamp() - last_before[tx["account_id"]] <= 86400)
        assert carried > 0
        figures = {"zone_a_transactions_acked": produced_a, "sent_unacked": produced.sent - produced.acked,
                   "mirrored_at_loss": len(by_id), "rpo_records": rpo_records, "rpo_s": round(rpo_s, 3),
                   "rto_s": round(rto_s, 3), "takeover_start_to_first_score_s": round(takeover_to_score_s, 3),
                   "rerouted": len(rerouted), "takeover_scores": sum(ours.values()),
                   "duplicates_deduplicated": duplicates, "alerts_cnt_24h_checked": len(checked),
                   "rerouted_with_pre_loss_24h_history": carried}
        print(f"\nzone takeover: {json.dumps(figures)}")
        BENCH_JSON.parent.mkdir(parents=True, exist_ok=True)
        BENCH_JSON.write_text(json.dumps(figures, indent=2) + "\n")
        assert takeover.terminate() == 0, hb.logs()
    finally:
        for c in clocks:
            c.close()
        for h in harness.values():
            h.stop_all()
        if mirror is not None and mirror.poll() is None:
            mirror.send_signal(signal.SIGTERM)
            try:
                mirror.wait(60)
            except subprocess.TimeoutExpired:
                mirror.kill()
        for b in brokers.values():
            b.down()


def mirrored_scores(h: StreamHarness, scores_topic: str) -> list[str]:
    """transaction_ids of zone A's scores as mirrored into zone B (``A.<scores>``)."""
    return [json.loads(r.value)["transaction_id"] for r in h.read_committed(f"A.{scores_topic}")]
