"""Benchmark: the live fraud scorer against the bare kafka-python pipe, on the real broker.

For each fixed producer rate (default 1k, 5k, 20k tx/s, 60 s each; ``--quick``:
1k and 5k for 10 s) and for each pipeline:

* ``bare``: a kafka-python consume -> produce loop doing no work (no parsing, no
  transactions): the limit this machine and client library allow;
* ``scorer``: ``npusuite fraud run`` (exactly-once Kafka transactions, state
  changelog, features, fast model, alerts);

a producer process sends generated transactions (keyed by account_id) at the
rate, and a ``read_committed`` consumer measures, per transaction, the time
from the producer's send to the output being committed and readable.  It
reports the sustained output rate during the producing window, p50/p99
end-to-end latency, and whether the pipeline kept up (every output in within
5 s of the last send).  A backlog run (``--backlog`` messages produced before
the pipeline starts) gives each pipeline's maximum throughput; the ratio of
the two is the scorer's efficiency against the limit.

Writes ``bench/out/fraud_stream.json`` and ``bench/out/fraud_stream.png``.
Usage: ``python bench/fraud_stream.py [--quick] [--bootstrap HOST:PORT]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

logger = logging.getLogger("bench.fraud_stream")
OUT = Path(__file__).resolve().parent / "out"
P99_GOAL_MS = 80.0


# -- data -------------------------------------------------------------------------------
def base_transactions(accounts: int, days: int, seed: int) -> list[dict]:
    from npusuite.fraud.generator import GeneratorConfig, generate

    return generate(GeneratorConfig(accounts=accounts, days=days, seed=seed), progress=False)[0]


def messages(base: list[dict], n: int, tag: str, days: int) -> list[tuple[bytes, bytes]]:
    """n messages cycling through ``base``; cycle k shifts time by k*days so each account's stream stays ordered."""
    stamps = [datetime.fromisoformat(t["timestamp"].replace("Z", "+00:00")).timestamp() for t in base]
    out = []
    for i in range(n):
        k, j = divmod(i, len(base))
        tx = dict(base[j], transaction_id=f"{tag}-{i}")
        tx["timestamp"] = datetime.fromtimestamp(stamps[j] + k * days * 86400, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append((tx["account_id"].encode(), json.dumps(tx, separators=(",", ":")).encode()))
    return out


# -- processes ----------------------------------------------------------------------------
def producer_main(bootstrap: str, topic: str, msgs: list, rate: float | None, send_ts_path: str) -> None:
    """Send ``msgs`` at ``rate`` per second (None: as fast as possible); save each send time."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, batch_size=512 * 1024, acks=1)
    sent = np.zeros(len(msgs))
    t0 = time.time()
    for i, (key, value) in enumerate(msgs):
        if rate:
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0.002:
                time.sleep(delay)
        sent[i] = time.time()
        producer.send(topic, key=key, value=value, timestamp_ms=int(sent[i] * 1000))
    producer.flush()
    producer.close()
    np.save(send_ts_path, sent)


BARE_PIPE = """
import sys
from kafka import KafkaConsumer, KafkaProducer
bootstrap, src, dst, group = sys.argv[1:5]
consumer = KafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=True, max_poll_records=2000, fetch_max_wait_ms=100)
producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, batch_size=256 * 1024)
while True:
    for batch in consumer.poll(timeout_ms=100).values():
        for r in batch:
            producer.send(dst, key=r.key, value=r.value)
    producer.flush()
"""


def start_pipeline(kind: str, bootstrap: str, topics: dict, model_root: Path, log: Path) -> subprocess.Popen:
    if kind == "bare":
        cmd = [sys.executable, "-c", BARE_PIPE, bootstrap, topics["in"], topics["out"], f"bare-{uuid.uuid4().hex[:6]}"]
    else:
        cmd = [sys.executable, "-m", "npusuite.fraud.service", "--bootstrap", bootstrap, "--group", topics["group"],
               "--model", "fraud-fast", "--model-root", str(model_root), "--instance-id", "bench",
               "--transactions-topic", topics["in"], "--scores-topic", topics["out"],
               "--alerts-topic", topics["out"] + "-alerts", "--dlq-topic", topics["out"] + "-dlq"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()


class Measurer:
    """read_committed consumer of the output topic: receive time per message index (from the transaction_id)."""

    def __init__(self, bootstrap: str, topic: str, n: int):
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, isolation_level="read_committed",
                                      group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=20,
                                      max_partition_fetch_bytes=8 * 1024 * 1024)
        self.recv = np.full(n, np.nan)
        self.count = 0

    def poll(self, until_s: float, want: int) -> None:
        while self.count < want and time.time() < until_s:
            for batch in self.consumer.poll(timeout_ms=50).values():
                now = time.time()
                for r in batch:
                    i = int(json.loads(r.value)["transaction_id"].rsplit("-", 1)[1])
                    if np.isnan(self.recv[i]):
                        self.count += 1
                    self.recv[i] = now

    def close(self) -> None:
        self.consumer.close()


def run_one(kind: str, bootstrap: str, msgs: list, rate: float | None, model_root: Path, workdir: Path,
            partitions: int, drain_s: float, logdir: Path) -> dict:
    """One pipeline at one rate (None: backlog first, then start the pipeline)."""
    s = uuid.uuid4().hex[:8]
    topics = {"in": f"bench-in-{s}", "out": f"bench-out-{s}", "group": f"bench-{s}"}
    create_topic(bootstrap, topics["in"], partitions)
    create_topic(bootstrap, topics["out"], partitions)
    warm = len(msgs) if rate is None else min(500, len(msgs) // 10)
    measurer = Measurer(bootstrap, topics["out"], len(msgs))
    send_ts = workdir / f"send-{s}.npy"
    ctx = mp.get_context("spawn")
    log = logdir / f"{kind}-{'backlog' if rate is None else int(rate)}.log"
    proc = None
    try:
        if rate is None:  # backlog: everything waits in the topic, then the pipeline starts
            p = ctx.Process(target=producer_main, args=(bootstrap, topics["in"], msgs, None, str(send_ts)))
            p.start()
            p.join()
            proc = start_pipeline(kind, bootstrap, topics, model_root, log)
            measurer.poll(time.time() + 600, len(msgs))
            recv = measurer.recv[~np.isnan(measurer.recv)]
            span = float(recv.max() - recv.min()) if len(recv) > 1 else float("nan")
            return {"pipeline": kind, "messages": len(msgs), "received": int(len(recv)),
                    "throughput_per_s": len(recv) / span if span > 0 else None}
        # fixed rate: warm the pipeline up with the first messages, then time the rest
        proc = start_pipeline(kind, bootstrap, topics, model_root, log)
        p = ctx.Process(target=producer_main, args=(bootstrap, topics["in"], msgs[:warm], None,
                                                    str(workdir / f"warm-{s}.npy")))
        p.start()
        p.join()
        measurer.poll(time.time() + 180, warm)
        if measurer.count < warm:
            raise RuntimeError(f"{kind} did not process its warm-up messages; see {log}")
        p = ctx.Process(target=producer_main, args=(bootstrap, topics["in"], msgs[warm:], rate, str(send_ts)))
        p.start()
        while p.is_alive():
            measurer.poll(time.time() + 0.5, len(msgs))
        p.join()
        measurer.poll(time.time() + drain_s, len(msgs))
        sent = np.load(send_ts)
        recv = measurer.recv[warm:]
        ok = ~np.isnan(recv)
        lat_ms = (recv[ok] - sent[ok]) * 1000.0
        t0, t1 = sent[0], sent[-1]
        in_window = int(np.sum((recv[ok] >= t0) & (recv[ok] <= t1)))
        result = {
            "pipeline": kind, "rate_target_per_s": rate, "sent": len(sent),
            "send_rate_per_s": len(sent) / (t1 - t0) if t1 > t0 else None,
            "received": int(ok.sum()), "kept_up": bool(ok.all()),
            "throughput_per_s": in_window / (t1 - t0) if t1 > t0 else None,
            "p50_ms": float(np.percentile(lat_ms, 50)) if len(lat_ms) else None,
            "p99_ms": float(np.percentile(lat_ms, 99)) if len(lat_ms) else None,
            "max_ms": float(lat_ms.max()) if len(lat_ms) else None,
        }
        result["sustained"] = bool(result["kept_up"] and result["p99_ms"] is not None
                                   and result["p99_ms"] < P99_GOAL_MS
                                   and result["send_rate_per_s"] >= 0.95 * rate)
        return result
    finally:
        measurer.close()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def train_model(root: Path) -> None:
    """``fraud generate`` + ``fraud train --no-llm`` into ``root`` (the fast tier is what runs per transaction)."""
    work = root.parent
    for args in (["fraud", "generate", "--out", str(work / "data"), "--accounts", "400", "--days", "20", "--seed", "3",
                  "--fraud-rate", "0.02"],
                 ["fraud", "train", "--data", str(work / "data" / "transactions.jsonl"), "--labels",
                  str(work / "data" / "labels.jsonl"), "--out", str(work / "model"), "--model-root", str(root),
                  "--no-llm", "--epochs", "3"]):
        subprocess.run([sys.executable, "-m", "npusuite.platform", *args], check=True, capture_output=True)


def plot(results: list[dict], backlog: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for kind, marker in (("bare", "o"), ("scorer", "s")):
        rows = [r for r in results if r["pipeline"] == kind]
        rates = [r["rate_target_per_s"] for r in rows]
        a1.plot(rates, [r["p50_ms"] for r in rows], marker=marker, linestyle="--", label=f"{kind} p50")
        a1.plot(rates, [r["p99_ms"] for r in rows], marker=marker, label=f"{kind} p99")
        a2.plot(rates, [r["throughput_per_s"] for r in rows], marker=marker, color="C0" if kind == "bare" else "C1",
                label=f"{kind} sustained")
    a1.axhline(P99_GOAL_MS, color="red", linewidth=0.8, label="80 ms goal")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("producer rate (tx/s)")
    a1.set_ylabel("end-to-end latency (ms)")
    a1.legend(fontsize=7)
    rates = sorted({r["rate_target_per_s"] for r in results})
    a2.plot(rates, rates, color="grey", linewidth=0.8, label="offered")
    for b in backlog:
        a2.axhline(b["throughput_per_s"] or 0, linestyle=":", color="C0" if b["pipeline"] == "bare" else "C1",
                   label=f"{b['pipeline']} max (backlog)")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("producer rate (tx/s)")
    a2.set_ylabel("output rate (tx/s)")
    a2.legend(fontsize=7)
    fig.suptitle("npusuite fraud run vs bare kafka-python pipe (real broker, this machine)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k and 5k tx/s for 10 s each, smaller backlog")
    ap.add_argument("--rates", default=None, help="comma-separated tx/s (default 1000,5000,20000)")
    ap.add_argument("--duration-s", type=float, default=None, help="seconds per rate (default 60; quick 10)")
    ap.add_argument("--backlog", type=int, default=None, help="messages for the max-throughput run (default 100000)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--accounts", type=int, default=5000, help="accounts in the generated stream")
    ap.add_argument("--bootstrap", default=None, help="existing broker (default: KAFKA_BOOTSTRAP, else start one)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    rates = [float(r) for r in (args.rates or ("1000,5000" if args.quick else "1000,5000,20000")).split(",")]
    duration = args.duration_s or (10.0 if args.quick else 60.0)
    backlog_n = args.backlog or (20_000 if args.quick else 100_000)
    args.out.mkdir(parents=True, exist_ok=True)
    logdir = args.out / "fraud_stream_logs"
    logdir.mkdir(exist_ok=True)
    for old in logdir.glob("*.log"):
        old.unlink()

    from npusuite.platform.kafka.broker import LocalBroker, free_port
    from npusuite.platform.settings import KafkaSettings, PathSettings

    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp:
        workdir = Path(tmp)
        broker = None
        bootstrap = args.bootstrap or KafkaSettings().bootstrap
        if not bootstrap:
            broker = LocalBroker(workdir / "kafka", port=free_port(), cache_dir=PathSettings().cache_dir())
            bootstrap = broker.up(timeout_s=120).bootstrap
        try:
            logger.info("broker %s; training the fast model", bootstrap)
            model_root = workdir / "models"
            train_model(model_root)
            days = 10
            base = base_transactions(args.accounts, days, seed=1)
            logger.info("base stream: %d transactions of %d accounts", len(base), args.accounts)
            backlog = []
            for kind in ("bare", "scorer"):
                msgs = messages(base, backlog_n, f"bk{kind}", days)
                backlog.append(run_one(kind, bootstrap, msgs, None, model_root, workdir, args.partitions, 10, logdir))
                logger.info("backlog %s: %s", kind, backlog[-1])
            results = []
            for rate in rates:
                n = int(rate * duration) + min(500, int(rate * duration) // 10)
                for kind in ("bare", "scorer"):
                    msgs = messages(base, n, f"r{int(rate)}{kind}", days)
                    results.append(run_one(kind, bootstrap, msgs, rate, model_root, workdir, args.partitions, 5.0,
                                          logdir))
                    logger.info("rate %d %s: %s", rate, kind, results[-1])
        finally:
            if broker is not None:
                broker.down()
    bare_max = next(b["throughput_per_s"] for b in backlog if b["pipeline"] == "bare")
    scorer_max = next(b["throughput_per_s"] for b in backlog if b["pipeline"] == "scorer")
    sustained = [r["rate_target_per_s"] for r in results if r["pipeline"] == "scorer" and r["sustained"]]
    summary = {
        "highest_rate_sustained_p99_under_80ms_per_s": max(sustained) if sustained else None,
        "max_throughput_scorer_per_s": scorer_max, "max_throughput_bare_pipe_per_s": bare_max,
        "throughput_ratio_scorer_vs_bare": scorer_max / bare_max if scorer_max and bare_max else None,
        "goals": {"rate_per_s": 5000, "ratio": 0.5, "p99_ms": P99_GOAL_MS},
    }
    report = {"quick": args.quick, "duration_s_per_rate": duration, "partitions": args.partitions,
              "accounts": args.accounts, "cpus": os.cpu_count(), "machine_load_1m_at_end": os.getloadavg()[0],
              "summary": summary, "backlog": backlog, "rates": results}
    (args.out / "fraud_stream.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, backlog, args.out / "fraud_stream.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
