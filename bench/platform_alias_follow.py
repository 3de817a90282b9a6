"""Followed alias: promote -> switched latency with the inotify folder watch vs the poll fallback.

An in-process :class:`~npusuite.platform.engine.ModelEngine` follows
``scale@production`` in a temporary repository; the alias is promoted
``--promotes`` times, alternating between versions 1 and 2, and each latency
is the time from ``promote()`` returning to ``engine.ref`` naming the new
version (watched with a 1 ms loop), so it includes the engine's load, warm-up
and switch of the tiny ``scale`` model (a few ms).  Baseline in the same run:
the same engine with inotify off, polling the alias every ``--poll-s``
(default 1 s: what ``follow`` did before issue 13; the real fallback polls
every 30 s, which would only make the ratio larger).
Goal (issue 13): promote -> switched p99 < 100 ms with the watch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from platform_common import environment, parser, summary_ms, write

NAME = "platform_alias_follow"


def phase(root: Path, mode: str, promotes: int, poll_s: float) -> dict:
    from npusuite.platform.engine import ModelEngine
    from npusuite.platform.repository import ModelRepository

    repo = ModelRepository(root)
    repo.promote("scale", "1")
    engine = ModelEngine("scale", repo)
    engine.load("production")
    engine.follow("production", fallback_poll_s=poll_s if mode == "poll" else 30.0, use_inotify=mode == "watch")
    latencies, missed = [], 0
    try:
        for i in range(promotes):
            target = "2" if i % 2 == 0 else "1"
            time.sleep(0.05)  # let the previous version's drain start: promotes come one at a time
            repo.promote("scale", target)
            t0 = time.perf_counter()
            while engine.version.version != target and time.perf_counter() - t0 < 10 * poll_s + 5:
                time.sleep(0.001)
            if engine.version.version == target:
                latencies.append(time.perf_counter() - t0)
            else:
                missed += 1
    finally:
        engine.close()
    return {"mode": mode, "poll_s": poll_s if mode == "poll" else 30.0, "promotes": promotes, "missed": missed,
            "latency": summary_ms(latencies), "latencies_ms": [round(v * 1000, 3) for v in latencies]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["phases"]
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"{r['mode']}\n(poll {r['poll_s']:g} s)" for r in rows]
    ax.bar(labels, [r["latency"]["p99_ms"] for r in rows], color=["tab:green", "tab:gray"], label="p99")
    ax.scatter(labels, [r["latency"]["p50_ms"] for r in rows], color="black", zorder=3, label="p50")
    ax.axhline(100, color="red", linestyle="--", label="goal 100 ms")
    ax.set_yscale("log")
    ax.set_ylabel("promote -> switched (ms)")
    ax.set_title(f"followed alias: watch is {result['ratio_p50_poll_over_watch']:.0f}x faster (p50)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--promotes", type=int, default=40)
    p.add_argument("--poll-s", type=float, default=1.0)
    args = p.parse_args()
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.runtime.reference_models import save_scale

    promotes = 10 if args.quick else args.promotes
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo = ModelRepository(tmp / "models")
        repo.add("scale", save_scale(tmp / "s1", 1.0))
        repo.add("scale", save_scale(tmp / "s2", 2.0))
        phases = [phase(repo.root, mode, promotes, args.poll_s) for mode in ("watch", "poll")]
    for r in phases:
        print(f"{r['mode']}: p50 {r['latency']['p50_ms']:.1f} ms, p99 {r['latency']['p99_ms']:.1f} ms, "
              f"missed {r['missed']}", flush=True)
    watch, poll = phases
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick, "phases": phases,
              "ratio_p50_poll_over_watch": poll["latency"]["p50_ms"] / watch["latency"]["p50_ms"],
              "ratio_p99_poll_over_watch": poll["latency"]["p99_ms"] / watch["latency"]["p99_ms"],
              "goal": {"p99_ms": 100.0},
              "goal_met": watch["missed"] == 0 and watch["latency"]["p99_ms"] < 100.0}
    write(args.out, NAME, result)
    plot(result, args.out / f"{NAME}.png")


if __name__ == "__main__":
    main()
