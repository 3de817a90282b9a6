"""Benchmark: the live fraud scorer on a 3-node Kafka cluster while a broker dies.

The scenario of ``tests/fraud/service/test_failover.py`` with more transactions:
a real 3-node KRaft cluster (``npusuite kafka up --brokers 3``'s code; topics
with 3 replicas, min.insync.replicas=2), one ``npusuite fraud run`` process, a
producer at a fixed rate (idempotent, acks=all) and a read_committed reader of
the scores that stamps each on receipt (:class:`ArrivalClock`).  When a third of
the transactions are scored, the broker coordinating the scorer's Kafka
transactions is SIGKILLed; it is restarted ``--down-s`` later.

Reported (the baseline is the same run's scores/s before the kill):

* ``longest_stall_s``: the longest gap between two committed scores;
* ``recovery_s``: from the kill until the score rate is back to 90 % of the
  baseline for a whole second;
* ``exactly_once``: every transaction has exactly one committed score;
* scores/s over time with the kill and the restart marked (PNG).

The broker session timeout (Kafka's default, 9 s) is most of the stall: a
killed broker leads its partitions, and coordinates its transactions, until the
controller fences it.

Writes ``bench/out/kafka_failover.json``, ``bench/out/kafka_failover.png`` and the scorer's log
``bench/out/kafka_failover-scorer.log``.
Usage: ``python bench/kafka_failover.py [--transactions 60000] [--rate 2000] [--down-s 10]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from fraud_stream import train_model

from npusuite.fraud.generator import GeneratorConfig, generate
from npusuite.platform.kafka.arrivals import ArrivalClock, paced_produce
from npusuite.platform.kafka.broker import free_broker_port
from npusuite.platform.kafka.cluster import LocalCluster, transaction_coordinator
from npusuite.platform.kafka.topics import TopicSpec, bootstrap_create_missing
from npusuite.platform.settings import PathSettings

logger = logging.getLogger("bench.kafka_failover")
OUT = Path(__file__).resolve().parent / "out"
PARTITIONS = 4


def recovery_s(series: list[tuple[float, float]], kill_s: float, baseline: float) -> float | None:
    """Seconds from the kill until two consecutive 0.5 s buckets reach 90 % of the baseline rate."""
    after = [(t, r) for t, r in series if t >= kill_s]
    for (t, r), (_, r2) in zip(after, after[1:], strict=False):
        if r >= 0.9 * baseline and r2 >= 0.9 * baseline and t > kill_s + 0.5:
            return t - kill_s
    return None


def run(args: argparse.Namespace, work: Path) -> dict:
    model_root = work / "models"
    logger.info("training the fast model")
    train_model(model_root)
    transactions = generate(GeneratorConfig(accounts=args.accounts, days=30, seed=5), progress=False)[0]
    transactions = transactions[:args.transactions]
    msgs = [(tx["account_id"].encode(), json.dumps(tx).encode()) for tx in transactions]
    cluster = LocalCluster(work / "kafka", brokers=3, port=free_broker_port(span=6),
                           cache_dir=PathSettings().cache_dir(), heap_mb=384)
    scorer = None
    try:
        cluster.up(timeout_s=180)
        topics = {"transactions": "tx", "scores": "scores", "alerts": "alerts", "dlq": "dlq"}
        bootstrap_create_missing(cluster.bootstrap, {"tx": TopicSpec(PARTITIONS)})
        log = work / "scorer.log"
        scorer = subprocess.Popen(
            [sys.executable, "-m", "npusuite.fraud.service", "--bootstrap", cluster.bootstrap, "--group", "bench",
             "--model", "fraud-fast", "--model-root", str(model_root), "--instance-id", "s0",
             *[x for k, v in topics.items() for x in (f"--{k}-topic", v)]],
            stdout=log.open("ab"), stderr=subprocess.STDOUT)
        while "consuming tx" not in log.read_text():
            if scorer.poll() is not None:
                raise RuntimeError(f"the scorer exited: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        victim = transaction_coordinator(cluster.bootstrap, "bench-s0")
        clock = ArrivalClock(cluster.bootstrap, "scores", PARTITIONS, decode=lambda v: json.loads(v)["transaction_id"])
        events: dict[str, float] = {}

        def chaos() -> None:
            clock.wait_for(len(msgs) // 3, timeout_s=600)
            events["kill"] = time.monotonic()
            cluster.kill_node(victim)
            time.sleep(args.down_s)
            events["restart"] = time.monotonic()
            cluster.start_node(victim)
            events["back"] = time.monotonic()

        thread = threading.Thread(target=chaos, daemon=True)
        thread.start()
        started = time.monotonic()
        paced_produce(cluster.bootstrap, "tx", msgs, args.rate)
        deadline = time.monotonic() + 600
        while clock.count < len(msgs) and scorer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        thread.join(300)
        time.sleep(3)  # any extra (duplicate) score would arrive now
        clock.close()
        counts = Counter(clock.values)
        series = clock.rate_series(started)
        kill_s = events["kill"] - started
        before = [r for t, r in series if 2.0 <= t < kill_s - 0.5]
        baseline = sum(before) / len(before) if before else float("nan")
        gap, gap_at = clock.longest_gap()
        log_text = log.read_text()
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"), "transactions": len(msgs), "rate_per_s": args.rate,
            "killed_node": victim, "killed_role": "transaction coordinator of the scorer", "down_s": args.down_s,
            "baseline_scores_per_s": round(baseline, 1),
            "longest_stall_s": round(gap, 3), "stall_began_after_kill_s": round(gap_at - events["kill"], 3),
            "recovery_s": recovery_s(series, kill_s, baseline),
            "restart_to_back_s": round(events["back"] - events["restart"], 3),
            "exactly_once": len(counts) == len(msgs) and max(counts.values()) == 1,
            "scores_committed": sum(counts.values()), "scorer_alive": scorer.poll() is None,
            "leader_changes_logged": log_text.count("partition leader changed"),
            "kill_s": round(kill_s, 3), "restart_s": round(events["restart"] - started, 3),
            "series": [(round(t, 2), r) for t, r in series],
        }
    finally:
        if scorer is not None and scorer.poll() is None:
            scorer.terminate()
            scorer.wait(60)
        cluster.down()
        if (work / "scorer.log").exists():  # kept: the scorer's own account of the failover
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "kafka_failover-scorer.log").write_bytes((work / "scorer.log").read_bytes())


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    t, r = zip(*result["series"], strict=True)
    ax.plot(t, r, lw=1.2, label="committed scores/s (read_committed reader)")
    ax.axvline(result["kill_s"], color="red", ls="--", label=f"SIGKILL broker {result['killed_node']}")
    ax.axvline(result["restart_s"], color="green", ls="--", label="broker restarted")
    ax.axhline(result["baseline_scores_per_s"], color="grey", ls=":", label="baseline (before the kill)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("scores/s")
    ax.set_title(f"Broker loss under load: longest stall {result['longest_stall_s']:.1f} s, "
                 f"exactly-once {result['exactly_once']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--transactions", type=int, default=60_000)
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=2000.0, help="producer rate, tx/s")
    ap.add_argument("--down-s", type=float, default=10.0, help="seconds the killed broker stays down")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kafka-failover-") as tmp:
        result = run(args, Path(tmp))
    (args.out / "kafka_failover.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "kafka_failover.png")
    summary = {k: v for k, v in result.items() if k != "series"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
