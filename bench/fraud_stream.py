"""Benchmark: the live fraud scorer against bare consume -> produce pipes, on the real broker.

Pipelines (``--pipelines``; default the first three, ``scorer-x2`` on request):

* ``bare``: a kafka-python consume -> produce loop doing no work (no parsing, no
  transactions): the baseline the issue defines, the limit of the old client;
* ``bare-confluent``: the same no-work loop on confluent-kafka (librdkafka), the
  client the scorer now uses: the like-for-like limit of this machine and client;
* ``bare-txn``: the no-work loop on confluent-kafka inside Kafka transactions
  (consume -> begin -> produce -> send_offsets_to_transaction -> commit, one
  transaction per poll batch, read_committed): the fair latency baseline for an
  exactly-once pipeline, which pays the commit round trips and markers too;
* ``scorer``: ``python -m npusuite.fraud.service`` (confluent-kafka, exactly-once
  Kafka transactions, state changelog, features, fast model, alerts);
* ``scorer-python``: the scorer with ``--features python`` (the reference feature
  code instead of the compiled kernel): the kernel's effect, same run;
* ``scorer-x2``: two such processes in one consumer group (active-active, two
  partitions each): how far scale-out goes on this machine;
* ``scorer-shadow``: the scorer with ``--shadow challenger`` (issue 13 part 5:
  a second version scores every transaction on the champion's feature rows
  and its scores go to a shadow topic in the same Kafka transaction).  Run it
  beside ``scorer``: the summary's ``per_transaction_time_ratio_shadow_vs_scorer``
  is scorer / scorer-shadow backlog throughput, the challenger's overhead per
  transaction (goal <= 1.20), per round and as the ratio of the medians.

The instruments, a producer process and a measuring consumer, are on
confluent-kafka too.  The machine has 2 cores and the instruments share them with
the pipeline they measure, so they must be cheap and low-jitter: librdkafka does
the protocol work in C threads, and the measurer takes the index from the value
bytes instead of parsing the JSON.

For each fixed producer rate (default 1k, 2k, 5k, 10k, 20k tx/s, 60 s each;
``--quick``: 1k and 5k for 10 s) and for each pipeline, the producer sends
generated transactions (keyed by account_id, murmur2 partitioning like the Java
client, ``linger.ms`` 2) at the rate, and a ``read_committed`` consumer assigned
to every partition of the output topic measures, per transaction, the time from
the producer's send to the output being committed and readable.  It reports the
output rate during the producing window, p50/p99 end-to-end latency, whether the
pipeline kept up (every output in within 5 s of the last send) and whether the
rate was sustained (kept up, p99 < 80 ms, producer reached >= 95 % of the rate).
A backlog run (``--backlog`` messages produced before the pipeline starts) gives
each pipeline's maximum throughput; scorer / bare is the scorer's efficiency
against each limit.  Before the backlog runs, every pipeline works through an
untimed ``--warmup`` backlog: a fresh broker's JVM compiles each code path on
first use (the transactional ones only the scorer takes), and the first
pipeline to need a path paid for it (measured: the scorer's first backlog on a
fresh broker ran at 15.8k tx/s, its third at 19.9k).  Then the pipelines take
turns for ``--backlog-rounds`` rounds, and each one's maximum is its median.

``--hog`` runs a CPU-bound neighbour process (``while True: pass``) beside every
pipeline run, from before the pipeline starts until it stops: one of the two
cores busy with another job.  For every scorer run the scorer serves its
metrics and the bench reads its per-batch phase histogram (score, settle:
waiting for the previous batch's commit, produce, offsets, commit) just before
stopping it; the report gives each phase's count, mean and bucket quantiles.

Writes ``bench/out/fraud_stream.json`` and ``bench/out/fraud_stream.png``.
Usage: ``python bench/fraud_stream.py [--quick] [--bootstrap HOST:PORT] [--pipelines bare,scorer]``;
the shadow overhead: ``--quick --pipelines scorer,scorer-shadow --backlog-rounds 3 --out bench/out/shadow``.
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
PIPELINES = ("bare", "bare-confluent", "bare-txn", "scorer", "scorer-python", "scorer-x2", "scorer-shadow")
DEFAULT_PIPELINES = ("bare", "bare-confluent", "bare-txn", "scorer")
STYLE = {"bare": ("o", "C0"), "bare-confluent": ("^", "C2"), "bare-txn": ("x", "C5"), "scorer": ("s", "C1"),
         "scorer-x2": ("D", "C3"), "scorer-shadow": ("v", "C4"), "scorer-python": ("P", "C6")}  # marker, colour
#: The CPU-bound neighbour of ``--hog``.
HOG = "while True:\n    pass\n"
SHADOW_GOAL = 1.20
TID = b'"transaction_id":"'


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


def tx_index(value: bytes) -> int:
    """The message index from a compact JSON value's ``"transaction_id":"<tag>-<index>"``, without parsing it."""
    start = value.index(TID) + len(TID)
    return int(value[start:value.index(b'"', start)].rsplit(b"-", 1)[1])


# -- processes ----------------------------------------------------------------------------
def _produce(producer, topic: str, key: bytes, value: bytes, ts_ms: int) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, timestamp=ts_ms)
            return
        except BufferError:  # local queue full: serve delivery reports until there is room
            producer.poll(0.01)


def producer_main(bootstrap: str, topic: str, msgs: list, rate: float | None, send_ts_path: str) -> None:
    """Send ``msgs`` at ``rate`` per second (None: as fast as possible); save each send time."""
    from confluent_kafka import Producer

    failed = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": 1, "partitioner": "murmur2_random",
                         "delivery.report.only.error": True, "on_delivery": lambda err, _msg: failed.append(err)})
    sent = np.zeros(len(msgs))
    t0 = time.time()
    for i, (key, value) in enumerate(msgs):
        if rate:
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0.002:
                time.sleep(delay)
        sent[i] = time.time()
        _produce(producer, topic, key, value, int(sent[i] * 1000))
        producer.poll(0)
    producer.flush()
    if failed:
        print(f"producer: {len(failed)} deliveries failed, first: {failed[0]}", file=sys.stderr)
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

BARE_CONFLUENT_PIPE = """
import sys
from confluent_kafka import Consumer, Producer
bootstrap, src, dst, group = sys.argv[1:5]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": True, "fetch.wait.max.ms": 100})
consumer.subscribe([src])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "partitioner": "murmur2_random"})
while True:
    msgs = consumer.consume(2000, 0)
    if not msgs:
        m = consumer.poll(0.1)
        msgs = [] if m is None else [m]
    for m in msgs:
        if m.error():
            continue
        while True:
            try:
                producer.produce(dst, key=m.key(), value=m.value())
                break
            except BufferError:
                producer.poll(0.01)
    producer.poll(0)
"""


BARE_TXN_PIPE = """
import sys, uuid
from confluent_kafka import Consumer, Producer, TopicPartition
bootstrap, src, dst, group = sys.argv[1:5]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "isolation.level": "read_committed", "fetch.wait.max.ms": 100,
                     "socket.nagle.disable": True})
consumer.subscribe([src])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "partitioner": "murmur2_random",
                     "transactional.id": group + "-" + uuid.uuid4().hex[:6], "enable.idempotence": True,
                     "retry.backoff.ms": 2, "retry.backoff.max.ms": 20, "socket.nagle.disable": True})
producer.init_transactions(60)
while True:
    msgs = consumer.consume(2000, 0)
    if not msgs:
        m = consumer.poll(0.1)
        msgs = [] if m is None else [m]
    msgs = [m for m in msgs if not m.error()]
    if not msgs:
        continue
    producer.begin_transaction()
    nxt = {}
    for m in msgs:
        nxt[m.partition()] = m.offset() + 1
        while True:
            try:
                producer.produce(dst, key=m.key(), value=m.value())
                break
            except BufferError:
                producer.poll(0.01)
    producer.send_offsets_to_transaction([TopicPartition(src, p, o) for p, o in nxt.items()],
                                         consumer.consumer_group_metadata(), 30)
    producer.commit_transaction(60)
"""

BARE_CODE = {"bare": BARE_PIPE, "bare-confluent": BARE_CONFLUENT_PIPE, "bare-txn": BARE_TXN_PIPE}


def start_pipeline(kind: str, bootstrap: str, topics: dict, model_root: Path, log: Path,
                   instance: str = "bench", metrics_port: int = 0) -> subprocess.Popen:
    if kind in BARE_CODE:
        cmd = [sys.executable, "-c", BARE_CODE[kind], bootstrap, topics["in"], topics["out"],
               f"{kind}-{uuid.uuid4().hex[:6]}"]
    else:
        cmd = [sys.executable, "-m", "npusuite.fraud.service", "--bootstrap", bootstrap, "--group", topics["group"],
               "--model", "fraud-fast", "--model-root", str(model_root), "--instance-id", instance,
               "--transactions-topic", topics["in"], "--scores-topic", topics["out"],
               "--alerts-topic", topics["out"] + "-alerts", "--dlq-topic", topics["out"] + "-dlq"]
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port)]
        if kind == "scorer-python":
            cmd += ["--features", "python"]
        if kind == "scorer-shadow":
            cmd += ["--shadow", "challenger", "--shadow-topic", topics["out"] + "-shadow"]
    return subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def start_hog() -> subprocess.Popen:
    """A CPU-bound neighbour: one core busy with another job."""
    return subprocess.Popen([sys.executable, "-c", HOG], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def phase_histogram(port: int) -> dict[str, dict]:
    """The scorer's per-batch phase histogram, read from its metrics endpoint (name from metrics.py)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    from npusuite.fraud.service.metrics import ServiceMetrics

    name = ServiceMetrics().batch_phase_seconds._name
    try:
        text = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError as exc:
        logger.warning("no metrics from the scorer on port %d: %s", port, exc)
        return {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            phase = sample.labels.get("phase")
            if sample.name.endswith("_bucket"):
                buckets.setdefault(phase, []).append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_sum"):
                sums[phase] = sample.value
    return {phase: phase_summary(sorted(rows), sums.get(phase, 0.0)) for phase, rows in buckets.items()}


def phase_summary(cumulative: list[tuple[float, float]], total_s: float) -> dict:
    """Count, mean and bucket quantiles (upper bounds, ms) of one phase's cumulative ``le`` buckets."""
    n = cumulative[-1][1] if cumulative else 0
    out = {"batches": int(n), "mean_ms": total_s / n * 1000 if n else None,
           "buckets_ms": {("inf" if le == float("inf") else f"{le * 1000:g}"): int(c) for le, c in cumulative}}
    for q in (0.5, 0.9, 0.99):
        out[f"p{int(q * 100)}_le_ms"] = next((le * 1000 for le, c in cumulative if n and c >= q * n), None)
    return out


def merge_phases(runs: list[dict]) -> dict:
    """Phase histograms of several processes (scorer-x2) added up."""
    merged: dict[str, dict] = {}
    for run in runs:
        for phase, h in run.items():
            m = merged.setdefault(phase, {"batches": 0, "sum_ms": 0.0, "buckets": {}})
            m["batches"] += h["batches"]
            m["sum_ms"] += (h["mean_ms"] or 0.0) * h["batches"]
            for le, c in h["buckets_ms"].items():
                m["buckets"][le] = m["buckets"].get(le, 0) + c
    out = {}
    for phase, m in merged.items():
        rows = sorted((float(le) / 1000 if le != "inf" else float("inf"), c) for le, c in m["buckets"].items())
        out[phase] = phase_summary(rows, m["sum_ms"] / 1000)
    return out


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from npusuite.platform.kafka.topics import TopicSpec, bootstrap_create_missing

    bootstrap_create_missing(bootstrap, {name: TopicSpec(partitions)})


class Measurer:
    """read_committed consumer of every output partition: receive time per message index (from the transaction_id)."""

    def __init__(self, bootstrap: str, topic: str, n: int):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"measure-{uuid.uuid4().hex[:8]}",
                                  "isolation.level": "read_committed", "enable.auto.commit": False,
                                  "fetch.wait.max.ms": 20, "max.partition.fetch.bytes": 8 * 1024 * 1024})
        partitions = self.consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.recv = np.full(n, np.nan)
        self.count = 0

    def _batch(self) -> list:
        msgs = self.consumer.consume(10000, 0)  # consume(n, t) waits all of t unless n arrive: never wait in it
        if not msgs:
            m = self.consumer.poll(0.05)
            msgs = [] if m is None else [m]
        return msgs

    def poll(self, until_s: float, want: int) -> None:
        while self.count < want and time.time() < until_s:
            msgs = self._batch()
            now = time.time()
            idx = np.fromiter((tx_index(m.value()) for m in msgs if not m.error()), dtype=np.int64)
            if len(idx):
                self.count += len(np.unique(idx[np.isnan(self.recv[idx])]))
                self.recv[idx] = now

    def close(self) -> None:
        self.consumer.close()


# -- one run ----------------------------------------------------------------------------
def produce_all(bootstrap: str, topic: str, msgs: list, rate: float | None, path: Path, wait: bool = True):
    p = mp.get_context("spawn").Process(target=producer_main, args=(bootstrap, topic, msgs, rate, str(path)))
    p.start()
    if wait:
        p.join()
    return p


def wait_for(measurer: Measurer, proc: subprocess.Popen, timeout_s: float, want: int, stall_s: float = 60,
             start_s: float = 300) -> None:
    """Poll until ``want`` outputs are in, ``timeout_s`` has passed, none came for ``stall_s`` (``start_s`` before
    the first: a scorer's start-up, imports and model load, took over a minute on a loaded machine), or the
    pipeline died."""
    deadline = time.time() + timeout_s
    last, last_t = measurer.count, time.time()
    while measurer.count < want and time.time() < deadline and proc.poll() is None:
        measurer.poll(min(deadline, time.time() + 1.0), want)
        if measurer.count > last:
            last, last_t = measurer.count, time.time()
        elif time.time() - last_t > (stall_s if last else start_s):
            logger.warning("no output for %.0f s (%d of %d in); giving up", stall_s, measurer.count, want)
            return


def run_backlog(kind: str, bootstrap: str, msgs: list, topics: dict, measurer: Measurer, start, send_ts: Path) -> dict:
    """Everything waits in the input topic, then the pipeline starts: its maximum throughput."""
    produce_all(bootstrap, topics["in"], msgs, None, send_ts)
    proc = start()
    wait_for(measurer, proc, 600, len(msgs))
    recv = measurer.recv[~np.isnan(measurer.recv)]
    span = float(recv.max() - recv.min()) if len(recv) > 1 else float("nan")
    return {"pipeline": kind, "messages": len(msgs), "received": int(len(recv)),
            "throughput_per_s": len(recv) / span if span > 0 else None}


def run_rate(kind: str, bootstrap: str, msgs: list, rate: float, topics: dict, measurer: Measurer, start,
             send_ts: Path, drain_s: float, log: Path) -> dict:
    """Warm the pipeline up with the first messages, then send the rest at ``rate`` and time them."""
    warm = min(500, len(msgs) // 10)
    proc = start()
    produce_all(bootstrap, topics["in"], msgs[:warm], None, send_ts.with_name("warm-" + send_ts.name))
    wait_for(measurer, proc, 420, warm)
    if measurer.count < warm:
        raise RuntimeError(f"{kind} did not process its warm-up messages; see {log}")
    if kind == "scorer-x2":  # time the two scorers, not the rebalance that the second one's join starts
        wait_group_stable(bootstrap, topics["group"], members=2)
    p = produce_all(bootstrap, topics["in"], msgs[warm:], rate, send_ts, wait=False)
    while p.is_alive():
        measurer.poll(time.time() + 0.5, len(msgs))
    p.join()
    measurer.poll(time.time() + drain_s, len(msgs))
    return rate_result(kind, rate, np.load(send_ts), measurer.recv[warm:])


def wait_group_stable(bootstrap: str, group: str, members: int, timeout_s: float = 180.0) -> None:
    """Until ``group`` is Stable with ``members`` members that each own partitions (Kafka's admin API)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
        owners = [m for m in desc.members if m.assignment and m.assignment.topic_partitions]
        if desc.state == ConsumerGroupState.STABLE and len(owners) == members:
            logger.info("group %s stable with %d members", group, members)
            return
        time.sleep(0.5)
    raise RuntimeError(f"group {group} not stable with {members} members within {timeout_s:.0f} s")


def _windowed_p99(t: np.ndarray, lat_ms: np.ndarray, window_s: float) -> list[float | None]:
    """p99 latency of the messages sent in each ``window_s`` window (by send time ``t``, seconds from the first)."""
    if not len(t):
        return []
    idx = (t // window_s).astype(int)
    return [round(float(np.percentile(lat_ms[idx == w], 99)), 1) if (idx == w).any() else None
            for w in range(int(idx.max()) + 1)]


def rate_result(kind: str, rate: float, sent: np.ndarray, recv: np.ndarray) -> dict:
    ok = ~np.isnan(recv)
    lat_ms = (recv[ok] - sent[ok]) * 1000.0
    t0, t1 = float(sent[0]), float(sent[-1])  # Python floats: the logged dicts read plainly
    in_window = int(np.sum((recv[ok] >= t0) & (recv[ok] <= t1)))
    result = {
        "pipeline": kind, "rate_target_per_s": rate, "sent": len(sent),
        "send_rate_per_s": len(sent) / (t1 - t0) if t1 > t0 else None,
        "received": int(ok.sum()), "kept_up": bool(ok.all()),
        "throughput_per_s": in_window / (t1 - t0) if t1 > t0 else None,
        "p50_ms": float(np.percentile(lat_ms, 50)) if len(lat_ms) else None,
        "p99_ms": float(np.percentile(lat_ms, 99)) if len(lat_ms) else None,
        "max_ms": float(lat_ms.max()) if len(lat_ms) else None,
        # where a stall sits: p99 per 5 s of sending time (a p99 that moves with time, not with the rate)
        "p99_ms_per_5s": _windowed_p99(sent[ok] - t0, lat_ms, 5.0),
    }
    result["sustained"] = bool(result["kept_up"] and result["p99_ms"] is not None and result["p99_ms"] < P99_GOAL_MS
                               and (result["send_rate_per_s"] or 0) >= 0.95 * rate)
    return result


def run_one(kind: str, bootstrap: str, msgs: list, rate: float | None, model_root: Path, workdir: Path,
            partitions: int, drain_s: float, logdir: Path, hog: bool = False) -> dict:
    """One pipeline at one rate (None: backlog first, then start the pipeline)."""
    s = uuid.uuid4().hex[:8]
    topics = {"in": f"bench-in-{s}", "out": f"bench-out-{s}", "group": f"bench-{s}"}
    create_topic(bootstrap, topics["in"], partitions)
    create_topic(bootstrap, topics["out"], partitions)
    measurer = Measurer(bootstrap, topics["out"], len(msgs))
    send_ts = workdir / f"send-{s}.npy"
    log = logdir / f"{kind}-{'backlog' if rate is None else int(rate)}.log"
    procs: list[subprocess.Popen] = []
    ports: list[int] = []
    hog_proc = start_hog() if hog else None

    def start() -> subprocess.Popen:
        from npusuite.platform.kafka.broker import free_port

        for instance in ("a", "b") if kind == "scorer-x2" else ("bench",):
            port = free_port() if kind not in BARE_CODE else 0
            ports.append(port)
            procs.append(start_pipeline(kind, bootstrap, topics, model_root, log, instance, port))
        return procs[0]

    try:
        if rate is None:
            result = run_backlog(kind, bootstrap, msgs, topics, measurer, start, send_ts)
        else:
            result = run_rate(kind, bootstrap, msgs, rate, topics, measurer, start, send_ts, drain_s, log)
        if any(ports):
            result["phases"] = merge_phases([phase_histogram(p) for p in ports if p])
        return result | {"hog": hog}
    finally:
        measurer.close()
        for proc in procs:
            stop(proc)
        if hog_proc is not None:
            stop(hog_proc)


def stop(proc: subprocess.Popen) -> None:
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
    # The challenger for scorer-shadow: the same network again as version 2 (its cost is what is measured).
    from npusuite.platform.repository import ModelRepository

    repo = ModelRepository(root)
    repo.promote("fraud-fast", repo.add("fraud-fast", repo.resolve("fraud-fast", "1").path).version, "challenger")


# -- report -------------------------------------------------------------------------------
def plot_latency(ax, results: list[dict]) -> None:
    for kind, (marker, colour) in STYLE.items():
        rows = [r for r in results if r["pipeline"] == kind]
        if not rows:
            continue
        rates = [r["rate_target_per_s"] for r in rows]
        ax.plot(rates, [r["p50_ms"] for r in rows], marker=marker, color=colour, linestyle="--", label=f"{kind} p50")
        ax.plot(rates, [r["p99_ms"] for r in rows], marker=marker, color=colour, label=f"{kind} p99")
    ax.axhline(P99_GOAL_MS, color="red", linewidth=0.8, label="80 ms goal")
    ax.set_ylabel("end-to-end latency (ms)")


def plot_throughput(ax, results: list[dict], backlog: list[dict]) -> None:
    for kind, (marker, colour) in STYLE.items():
        rows = [r for r in results if r["pipeline"] == kind]
        if rows:
            ax.plot([r["rate_target_per_s"] for r in rows], [r["throughput_per_s"] for r in rows], marker=marker,
                    color=colour, label=f"{kind} sustained")
    rates = sorted({r["rate_target_per_s"] for r in results})
    ax.plot(rates, rates, color="grey", linewidth=0.8, label="offered")
    for kind, top in median_backlog(backlog).items():
        ax.axhline(top or 0, linestyle=":", color=STYLE[kind][1], label=f"{kind} max (backlog median)")
    ax.set_ylabel("output rate (tx/s)")


def plot(results: list[dict], backlog: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    plot_latency(a1, results)
    plot_throughput(a2, results, backlog)
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("producer rate (tx/s)")
        ax.legend(fontsize=7)
    fig.suptitle("npusuite fraud run (confluent-kafka) vs bare pipes on kafka-python and confluent-kafka\n"
                 "(instruments on confluent-kafka; real broker, this machine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def median_backlog(backlog: list[dict]) -> dict[str, float | None]:
    """Each pipeline's median backlog throughput over its rounds (None: no round finished)."""
    out = {}
    for kind in dict.fromkeys(b["pipeline"] for b in backlog):
        values = [b["throughput_per_s"] for b in backlog if b["pipeline"] == kind and b["throughput_per_s"]]
        out[kind] = float(np.median(values)) if values else None
    return out


def summarise(backlog: list[dict], results: list[dict], pipelines: list[str]) -> dict:
    top = median_backlog(backlog)
    per_round = {}
    for b in backlog:
        per_round.setdefault(b.get("round", 0), {})[b["pipeline"]] = b["throughput_per_s"]
    best = {k: max((r["rate_target_per_s"] for r in results if r["pipeline"] == k and r["sustained"]), default=None)
            for k in pipelines}
    return {
        "highest_rate_sustained_p99_under_80ms_per_s": best.get("scorer"),
        "max_throughput_scorer_per_s": top.get("scorer"), "max_throughput_bare_pipe_per_s": top.get("bare"),
        "max_throughput_bare_confluent_per_s": top.get("bare-confluent"),
        "max_throughput_bare_txn_per_s": top.get("bare-txn"),
        "throughput_ratio_scorer_vs_bare": _ratio(top.get("scorer"), top.get("bare")),
        "throughput_ratio_scorer_vs_bare_confluent": _ratio(top.get("scorer"), top.get("bare-confluent")),
        "max_throughput_scorer_x2_per_s": top.get("scorer-x2"),
        "throughput_ratio_scorer_x2_vs_bare": _ratio(top.get("scorer-x2"), top.get("bare")),
        "throughput_ratio_scorer_vs_bare_per_round": [_ratio(r.get("scorer"), r.get("bare"))
                                                       for _, r in sorted(per_round.items())],
        "throughput_ratio_scorer_vs_bare_confluent_per_round": [_ratio(r.get("scorer"), r.get("bare-confluent"))
                                                                 for _, r in sorted(per_round.items())],
        "throughput_ratio_scorer_x2_vs_scorer": _ratio(top.get("scorer-x2"), top.get("scorer")),
        "throughput_ratio_kernel_vs_python_features": _ratio(top.get("scorer"), top.get("scorer-python")),
        "p99_ms_per_rate": {k: {str(int(r["rate_target_per_s"])): r["p99_ms"] for r in results if r["pipeline"] == k}
                            for k in pipelines},
        "highest_rate_sustained_per_pipeline_per_s": best,
        "max_throughput_scorer_shadow_per_s": top.get("scorer-shadow"),
        "per_transaction_time_ratio_shadow_vs_scorer": _ratio(top.get("scorer"), top.get("scorer-shadow")),
        "per_transaction_time_ratio_shadow_vs_scorer_per_round": [_ratio(r.get("scorer"), r.get("scorer-shadow"))
                                                                   for _, r in sorted(per_round.items())],
        "goals": {"rate_per_s": 10000, "rate_per_s_with_hog": 5000, "ratio_vs_bare_confluent": 0.25,
                  "p99_ms": P99_GOAL_MS, "shadow_time_ratio": SHADOW_GOAL},
    }


# -- main -------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k and 5k tx/s for 10 s each, smaller backlog")
    ap.add_argument("--rates", default=None, help="comma-separated tx/s (default 1000,2000,5000,10000,20000)")
    ap.add_argument("--duration-s", type=float, default=None, help="seconds per rate (default 60; quick 10)")
    ap.add_argument("--backlog", type=int, default=None, help="messages for the max-throughput run (default 100000)")
    ap.add_argument("--backlog-rounds", type=int, default=None,
                    help="backlog runs per pipeline, taking turns; the median counts (default 3; quick 1)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed backlog per pipeline before the timed ones (default 20000; quick 5000; 0: none)")
    ap.add_argument("--pipelines", default=",".join(DEFAULT_PIPELINES),
                    help="comma-separated subset of " + ",".join(PIPELINES) + " (default: "
                    + ",".join(DEFAULT_PIPELINES) + ")")
    ap.add_argument("--hog", action="store_true",
                    help="run a CPU-bound neighbour process beside every pipeline run (one core busy)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--accounts", type=int, default=5000, help="accounts in the generated stream")
    ap.add_argument("--bootstrap", default=None, help="existing broker (default: KAFKA_BOOTSTRAP, else start one)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.pipelines = [p for p in args.pipelines.split(",") if p]
    unknown = set(args.pipelines) - set(PIPELINES)
    if unknown or not args.pipelines:
        ap.error(f"--pipelines: unknown {sorted(unknown)}; choose from {','.join(PIPELINES)}")
    args.rates = [float(r) for r in (args.rates or ("1000,5000" if args.quick else "1000,2000,5000,10000,20000"))
                  .split(",")]
    args.duration_s = args.duration_s or (10.0 if args.quick else 60.0)
    args.backlog = args.backlog or (20_000 if args.quick else 100_000)
    args.backlog_rounds = args.backlog_rounds or (1 if args.quick else 3)
    args.warmup = (5_000 if args.quick else 20_000) if args.warmup is None else args.warmup
    return args


def run_all(args: argparse.Namespace, bootstrap: str, workdir: Path, logdir: Path) -> tuple[list, list]:
    logger.info("broker %s; training the fast model", bootstrap)
    model_root = workdir / "models"
    train_model(model_root)
    days = 10
    base = base_transactions(args.accounts, days, seed=1)
    logger.info("base stream: %d transactions of %d accounts", len(base), args.accounts)
    for kind in args.pipelines if args.warmup else ():
        msgs = messages(base, args.warmup, f"wu{kind.replace('-', '')}", days)
        warm = run_one(kind, bootstrap, msgs, None, model_root, workdir, args.partitions, 10, logdir, args.hog)
        logger.info("warm-up %s (untimed): %s", kind, warm)
    backlog = []
    for round_ in range(args.backlog_rounds):
        for kind in args.pipelines:
            msgs = messages(base, args.backlog, f"bk{round_}{kind.replace('-', '')}", days)
            backlog.append(run_one(kind, bootstrap, msgs, None, model_root, workdir, args.partitions, 10, logdir,
                                   args.hog) | {"round": round_})
            logger.info("backlog round %d %s: %s", round_ + 1, kind, backlog[-1])
    results = []
    for rate in args.rates:
        n = int(rate * args.duration_s) + min(500, int(rate * args.duration_s) // 10)
        for kind in args.pipelines:
            msgs = messages(base, n, f"r{int(rate)}{kind.replace('-', '')}", days)
            results.append(run_one(kind, bootstrap, msgs, rate, model_root, workdir, args.partitions, 5.0, logdir,
                                   args.hog))
            logger.info("rate %d %s: %s", rate, kind, results[-1])
    return backlog, results


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    load_start = os.getloadavg()[0]
    logger.info("uptime at start: %s", uptime())
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
            backlog, results = run_all(args, bootstrap, workdir, logdir)
        finally:
            if broker is not None:
                broker.down()
    summary = summarise(backlog, results, args.pipelines)
    report = {"quick": args.quick, "hog": args.hog, "uptime_at_end": uptime(),
               "duration_s_per_rate": args.duration_s, "partitions": args.partitions,
              "backlog_messages": args.backlog, "backlog_rounds": args.backlog_rounds, "warmup_messages": args.warmup,
              "accounts": args.accounts, "pipelines": args.pipelines, "cpus": os.cpu_count(),
              "machine_load_1m_at_start": load_start, "machine_load_1m_at_end": os.getloadavg()[0],
              "summary": summary, "backlog": backlog, "rates": results}
    (args.out / "fraud_stream.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, backlog, args.out / "fraud_stream.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
