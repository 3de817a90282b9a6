"""Micro-benchmark: the live scorer's per-batch path without a broker, in µs per transaction.

Feeds pre-encoded transaction messages (the ``bench/fraud_stream.py`` stream: its
generator, its 5,000 accounts, its message bytes) through exactly what the
scorer's Kafka loop runs per poll batch, :func:`~npusuite.fraud.service.processor.process_batch`
with the real :class:`~npusuite.fraud.service.scoring.LiveScorer` (fast model
engine, compiled feature kernel) and an :class:`~npusuite.fraud.service.account_store.AccountStore`
(parse and validate -> features -> model -> reasons -> encode -> changelog),
in batches of ``--batch`` records over ``--partitions`` partitions.  The Kafka
client's own work (consume, produce, commit) is not in it; ``bench/fraud_stream.py``
measures the whole service on a broker.

Two passes over the same stream (fresh account state each):

* timed: the scoring thread's CPU time (and the wall time) of every
  ``process_batch`` call, no instrumentation; the figure to compare is the CPU
  time (``total_us_per_tx``, the median of ``--repeats`` passes), which other
  processes on a shared machine disturb far less than the wall time.  The
  implementations' passes run side by side, batch by batch
  (:func:`interleaved_pass`), so that a slow spell falls on all of them;
* phases: the same run with a deterministic profiler (cProfile), each function's
  own time attributed to a phase by where its code lives.  The profiler
  inflates Python-heavy phases, so the phase figures are shares, not times.

Before them, one untimed pass hashes every record the batches would send
(``output_sha256``: topics, keys, partitions, headers and values, the scoring
time left out of the values).  Both feature implementations must give the same
digest, and an optimisation of the path must not change it (run the bench
before and after with the same ``--model-root``).

``--features both`` (the default) runs the compiled kernel and the Python
reference (``fraud run --features python``) on the same stream, their timed
passes interleaved, and reports the ratio of their CPU time per transaction
(the baseline in the same run).

``--novelty`` adds, on the compiled kernel, the live scorer with the novelty
tier (``fraud train-novelty``: ``kernel + novelty``) and with the sequence
novelty model (``fraud train-novelty --sequence``: ``kernel + sequence
novelty``), trained on the same data as the fast model, and reports each
one's throughput as a ratio to ``kernel`` (today's scorer: no novelty tier).

Writes ``bench/out/fraud_hot_path.json`` and ``fraud_hot_path.png`` (µs per
transaction by phase, per feature implementation).  Run it niced on a shared
machine: ``nice -n 10 .venv/bin/python bench/fraud_hot_path.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import logging
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fraud_stream import OUT, base_transactions, messages, train_model

logger = logging.getLogger("bench.fraud_hot_path")

#: (phase, substrings of "<file>:<function>") in match order; the first match wins, the rest is "other".
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parse", ("contracts/transaction.py", "records.py", "pydantic", "batch_parsing", "validate_json",
               "model_validate_json", "parse_transaction")),
    ("features", ("feature_kernel.py", "feature_kernel_batch.py", "features.py", "categorical.py", "featurise",
                  "numba")),
    ("model", ("fast_model.py", "torch", "module.py", "contributions", "novelty", "boosted_model.py")),
    ("reasons", ("reasons.py",)),
    ("encode", ("contracts/score.py", "messages.py", "to_json", "score_value")),
    ("changelog", ("account_store.py",)),
    ("processor", ("processor.py", "scoring.py", "scorer.py")),
)


def phase_of(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    for phase, needles in PHASES:
        if any(n in where for n in needles):
            return phase
    return "other"


def batches(msgs: list[tuple[bytes, bytes]], size: int, partitions: int):
    from npusuite.fraud.service.processor import InRecord

    offsets = [0] * partitions
    out = []
    for key, value in msgs:
        p = zlib.crc32(key) % partitions
        out.append(InRecord(p, offsets[p], key, value, 0))
        offsets[p] += 1
        if len(out) == size:
            yield out
            out = []
    if out:
        yield out


#: Score and alert values carry the scoring time; the digest leaves it out.
_LATENCY = re.compile(rb'"latency_ms":[-+0-9.eE]+')


def digest_outcome(digest, outcome) -> None:
    """Fold every record the batch would send (topic, key, partition, headers, value without its latency)."""
    for r in outcome.records:
        digest.update(repr((r.topic, r.key, r.partition, r.headers)).encode())
        digest.update(_LATENCY.sub(b"", r.value or b""))


def _fresh_store(partitions: int):
    from npusuite.fraud.service.account_store import AccountStore

    store = AccountStore(20)
    for p in range(partitions):
        store.set_partition(p, {})
    return store


def _timed_batch(scorer, store, batch, topics) -> tuple[float, float, object]:
    """Wall and CPU seconds of one ``process_batch`` call, and its outcome."""
    from npusuite.fraud.service.processor import process_batch

    t0, c0 = time.perf_counter(), time.thread_time()
    outcome = process_batch(batch, store, scorer, topics, "changelog", same_partitions=True)
    return time.perf_counter() - t0, time.thread_time() - c0, outcome


def one_pass(scorer, msgs, size: int, partitions: int, profile: cProfile.Profile | None = None,
             digest=None) -> tuple[float, float]:
    """Wall and CPU seconds spent in process_batch over the whole stream (fresh account state); ``digest``
    (a hashlib object) takes every output record (:func:`digest_outcome`)."""
    from npusuite.fraud.service.config import Topics
    from npusuite.platform.gc_policy import GcPolicy

    gc_policy = GcPolicy()  # the runner's: young threshold raised, each batch's survivors frozen after it
    gc_policy.install()
    store, topics = _fresh_store(partitions), Topics()
    wall = cpu = 0.0
    for batch in batches(msgs, size, partitions):
        if profile is not None:
            profile.enable()
        w, c, outcome = _timed_batch(scorer, store, batch, topics)
        wall, cpu = wall + w, cpu + c
        if digest is not None:
            digest_outcome(digest, outcome)
        if profile is not None:
            profile.disable()
        gc_policy.after_batch()
    gc_policy.full_collect("pass done")
    return wall, cpu


def interleaved_pass(scorers: dict, msgs, size: int, partitions: int) -> dict[str, tuple[float, float]]:
    """One pass per scorer over the same stream (fresh account state each), their batches interleaved: batch
    i goes through every scorer before batch i + 1 goes through any.  A slow spell of a shared machine then
    falls on all of them alike, which whole passes one after another do not give (on a 2-vCPU VM the same
    pass took 47 to 66 µs a transaction within minutes).  Wall and CPU seconds per scorer."""
    from npusuite.fraud.service.config import Topics
    from npusuite.platform.gc_policy import GcPolicy

    gc_policy = GcPolicy()
    gc_policy.install()
    stores, topics = {name: _fresh_store(partitions) for name in scorers}, Topics()
    spent = dict.fromkeys(scorers, (0.0, 0.0))
    for batch in batches(msgs, size, partitions):
        for name, scorer in scorers.items():
            w, c, _ = _timed_batch(scorer, stores[name], batch, topics)
            spent[name] = (spent[name][0] + w, spent[name][1] + c)
            gc_policy.after_batch()
    gc_policy.full_collect("pass done")
    return spent


def phase_shares(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile).stats  # (file, line, function) -> (cc, nc, tottime, cumtime, callers)
    own: dict[str, float] = {}
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        phase = phase_of(filename, function)
        own[phase] = own.get(phase, 0.0) + tottime
    total = sum(own.values()) or 1.0
    return {k: round(v / total, 4) for k, v in sorted(own.items(), key=lambda kv: -kv[1])}


def top_functions(profile: cProfile.Profile, n: int) -> list[str]:
    """The ``n`` functions with the most own time: share, phase, calls, where."""
    stats = pstats.Stats(profile).stats
    total = sum(v[2] for v in stats.values()) or 1.0
    rows = sorted(stats.items(), key=lambda kv: -kv[1][2])[:n]
    return [f"{v[2] / total:6.1%} {phase_of(k[0], k[2]):9s} {v[1]:8d} {Path(k[0]).name}:{k[1]}:{k[2]}"
            for k, v in rows]


def measure(scorers: dict, msgs, args) -> dict[str, dict]:
    """Per feature implementation: timed passes (interleaved across implementations), then one profiled pass."""
    digests = {}
    for name, scorer in scorers.items():
        one_pass(scorer, msgs[:4000], args.batch, args.partitions)  # warm: compile, caches
        digests[name] = hashlib.sha256()
        one_pass(scorer, msgs, args.batch, args.partitions, digest=digests[name])
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in scorers}
    for _ in range(args.repeats):
        for name, spent in interleaved_pass(scorers, msgs, args.batch, args.partitions).items():
            times[name].append(spent)
    out = {}
    for name, scorer in scorers.items():
        profile = cProfile.Profile()
        one_pass(scorer, msgs, args.batch, args.partitions, profile)
        cpu_per_tx = [cpu / args.n * 1e6 for _, cpu in times[name]]
        total = statistics.median(cpu_per_tx)
        shares = phase_shares(profile)
        out[name] = {"total_us_per_tx": round(total, 2), "passes_cpu_us_per_tx": [round(t, 2) for t in cpu_per_tx],
                     "passes_wall_us_per_tx": [round(wall / args.n * 1e6, 2) for wall, _ in times[name]],
                     "phase_shares_profiled": shares,
                     "phase_us_per_tx_estimated": {k: round(v * total, 2) for k, v in shares.items()},
                     "output_sha256": digests[name].hexdigest(),
                     "top_functions_profiled": top_functions(profile, args.top)}
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(report["modes"])
    phases = sorted({p for m in modes for p in report["modes"][m]["phase_us_per_tx_estimated"]})
    fig, ax = plt.subplots(figsize=(8.5, 4))
    bottom = [0.0] * len(modes)
    for j, phase in enumerate(phases):
        values = [report["modes"][m]["phase_us_per_tx_estimated"].get(phase, 0.0) for m in modes]
        ax.bar(modes, values, bottom=bottom, label=phase, color=f"C{j}")
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ratios = report.get("throughput_ratio_vs_kernel_cpu", {})
    for i, m in enumerate(modes):
        label = f"{report['modes'][m]['total_us_per_tx']:.1f} µs"
        if m != "kernel" and m in ratios:
            label += f"\n{ratios[m]:.2f}x kernel's throughput"
        ax.text(i, bottom[i], label, ha="center", va="bottom", fontsize=8)
    ax.set_ylim(top=max(bottom) * 1.2)
    ratio = report.get("ratio_kernel_vs_python_cpu")
    ax.set(ylabel="CPU µs per transaction (phases: profiled shares)",
           title="process_batch per transaction" + (f"; kernel / python = {ratio:.2f}" if ratio else ""))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40_000, help="transactions per pass")
    ap.add_argument("--batch", type=int, default=2000, help="records per process_batch call")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--accounts", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5, help="timed passes per implementation (side by side, batch by "
                    "batch); the median counts")
    ap.add_argument("--features", choices=("both", "kernel", "python"), default="both",
                    help="feature implementation(s); both: the kernel against the Python reference in one run")
    ap.add_argument("--model-root", type=Path, default=None, help="a repository with fraud-fast (default: train one)")
    ap.add_argument("--novelty", action="store_true", help="also the kernel with the novelty tier and with the "
                    "sequence novelty model, as throughput ratios to the kernel alone")
    ap.add_argument("--top", type=int, default=25, help="functions listed by own time (profiled pass)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.novelty and args.model_root is not None:
        ap.error("--novelty trains its novelty models beside the fast model: leave out --model-root")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    from npusuite.fraud.service.config import ModelConfig
    from npusuite.fraud.service.scoring import build_live_scorer

    modes = ("kernel", "python") if args.features == "both" else (args.features,)
    with tempfile.TemporaryDirectory(prefix="fraud-hot-") as tmp:
        root = args.model_root
        if root is None:
            root = Path(tmp) / "models"
            logger.info("training the fast model into %s", root)
            train_model(root)
        days = 10
        msgs = messages(base_transactions(args.accounts, days, seed=1), args.n, "hot", days)
        configs = {m: ModelConfig(model="fraud-fast", model_root=root, features=m) for m in modes}
        if args.novelty:
            logger.info("training the novelty models into %s", root)
            configs.update({f"kernel + {name}": ModelConfig(model="fraud-fast", model_root=root, features="kernel",
                                                            novelty_model=ref)
                            for name, ref in train_novelty_models(root).items()})
        scorers = {m: build_live_scorer(config) for m, config in configs.items()}
        try:
            results = measure(scorers, msgs, args)
        finally:
            for scorer in scorers.values():
                scorer.close()
    report = {"n": args.n, "batch": args.batch, "partitions": args.partitions, "accounts": args.accounts,
              "load_1m": os.getloadavg()[0], "modes": results}
    if len(modes) == 2:
        report["ratio_kernel_vs_python_cpu"] = round(results["kernel"]["total_us_per_tx"]
                                                     / results["python"]["total_us_per_tx"], 3)
    if "kernel" in results:
        # Throughput is the inverse of CPU time per transaction: kernel's time over each mode's.
        report["throughput_ratio_vs_kernel_cpu"] = {m: round(results["kernel"]["total_us_per_tx"]
                                                             / r["total_us_per_tx"], 3) for m, r in results.items()}
        # The same ratio within each interleaved pass: its spread is the measurement's.
        report["throughput_ratio_per_pass"] = {
            m: [round(k / t, 3) for k, t in zip(results["kernel"]["passes_cpu_us_per_tx"], r["passes_cpu_us_per_tx"],
                                                strict=True)] for m, r in results.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fraud_hot_path.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "fraud_hot_path.png")
    print(json.dumps({m: {k: v for k, v in r.items() if k != "top_functions_profiled"} for m, r in results.items()},
                     indent=2))
    if "ratio_kernel_vs_python_cpu" in report:
        print(f"kernel / python CPU per transaction: {report['ratio_kernel_vs_python_cpu']}")
    if args.novelty:
        print(f"throughput against the kernel alone: {report['throughput_ratio_vs_kernel_cpu']}; per pass: "
              f"{report['throughput_ratio_per_pass']}")


def train_novelty_models(root: Path) -> dict[str, str]:
    """``fraud train-novelty`` with and without ``--sequence`` on :func:`train_model`'s data, into ``root``."""
    import subprocess

    work, out = root.parent, {}
    for name, extra in (("novelty", []), ("sequence novelty", ["--sequence"])):
        model = "fraud-seq" if extra else "fraud"
        subprocess.run([sys.executable, "-m", "npusuite.platform", "fraud", "train-novelty", "--data",
                        str(work / "data" / "transactions.jsonl"), "--labels", str(work / "data" / "labels.jsonl"),
                        "--out", str(work / model.replace("fraud", "novelty")), "--model-root", str(root), "--name",
                        model, *extra], check=True, capture_output=True)
        out[name] = f"{model}-novelty"
    return out


if __name__ == "__main__":
    main()
