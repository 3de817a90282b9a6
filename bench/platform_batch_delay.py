"""Choosing ``max_queue_delay_ms``: throughput and latency of the dynamic batcher for several delays.

A fraud-sized MLP (64 -> 512 -> 512 -> 1, torch, one request = one row) runs
behind the platform's :class:`DynamicBatcher`; closed-loop client threads
(1, 8, 32) send requests for a fixed time at each delay, including the
reference deployment's 50 ms (the baseline).  The chosen default is the
delay with the best p99 latency at every load without losing throughput
(see docs/platform.md).
"""

from __future__ import annotations

import threading
import time

from platform_common import configure, environment, parser, summary_ms, write

NAME = "platform_batch_delay"


def make_predict(device: str):
    import numpy as np
    import torch

    torch.manual_seed(0)
    dev = torch.device(device)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 1)).to(dev).eval()

    def predict(inputs):
        with torch.inference_mode():
            y = mlp(torch.from_numpy(inputs["x"]).to(dev))
        return {"y": y.cpu().numpy().astype(np.float32)}

    return predict


def run(predict, delay_ms: float, clients: int, seconds: float) -> dict:
    import numpy as np

    from npusuite.platform.engine import BatcherConfig, DynamicBatcher
    from npusuite.platform.engine.observer import EngineObserver

    class Sizes(EngineObserver):
        def __init__(self):
            self.sizes = []

        def batch(self, model, size, queue_waits_s, compute_s):
            self.sizes.append(size)

    sizes = Sizes()
    b = DynamicBatcher(predict, BatcherConfig(max_batch_size=64, max_queue_delay_ms=delay_ms,
                                              max_queue_size=10_000), observer=sizes)
    x = {"x": np.random.default_rng(0).standard_normal((1, 64)).astype(np.float32)}
    for _ in range(20):
        b.infer(x)
    sizes.sizes.clear()
    stop = threading.Event()
    lat: list[float] = []
    lock = threading.Lock()

    def client():
        mine = []
        while not stop.is_set():
            t0 = time.perf_counter()
            b.infer(x, timeout_s=60)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    b.close()
    return {"delay_ms": delay_ms, "clients": clients, "requests_per_s": len(lat) / wall, "latency": summary_ms(lat),
            "mean_batch_size": sum(sizes.sizes) / max(1, len(sizes.sizes))}


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for c in result["clients"]:
        rows = [r for r in result["runs"] if r["clients"] == c]
        a.plot([r["delay_ms"] for r in rows], [r["requests_per_s"] for r in rows], marker="o", label=f"{c} clients")
        b.plot([r["delay_ms"] for r in rows], [r["latency"]["p99_ms"] for r in rows], marker="o", label=f"{c} clients")
    for ax, label in ((a, "requests/s"), (b, "p99 latency (ms)")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("max_queue_delay_ms")
        ax.set_ylabel(label)
        ax.legend()
    a.set_title("throughput vs batching delay")
    b.set_title("p99 latency vs batching delay (50 = reference)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    args = p.parse_args()
    configure(args)
    seconds = 1.0 if args.quick else 2.0
    delays = [0.0, 1.0, 2.0, 5.0, 50.0] if args.quick else [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0]
    clients = [1, 8, 32]
    predict = make_predict(args.device)
    samples: dict[tuple[int, float], list[dict]] = {(c, d): [] for c in clients for d in delays}
    # Rounds interleave every (clients, delay) cell, so bursts of load from other processes on a shared
    # machine spread over all cells; the median round of each cell is reported.
    for rnd in range(args.rounds):
        for c in clients:
            for d in delays:
                r = run(predict, d, c, seconds)
                samples[(c, d)].append(r)
                print(f"round {rnd} clients {c:2d} delay {d:5.1f} ms: {r['requests_per_s']:8.0f} req/s, p50 "
                      f"{r['latency']['p50_ms']:.2f} ms, p99 {r['latency']['p99_ms']:.2f} ms, batch "
                      f"{r['mean_batch_size']:.1f}", flush=True)
    runs = []
    for rs in samples.values():
        rs = sorted(rs, key=lambda r: r["requests_per_s"])
        med = dict(rs[len(rs) // 2])
        med["rounds_requests_per_s"] = [r["requests_per_s"] for r in rs]
        med["rounds_p99_ms"] = [r["latency"]["p99_ms"] for r in rs]
        runs.append(med)
    by = {(r["clients"], r["delay_ms"]): r for r in runs}
    vs_reference = {f"{c} clients, {d} ms": {
        "throughput_ratio": by[(c, d)]["requests_per_s"] / by[(c, 50.0)]["requests_per_s"],
        "p99_ratio": by[(c, d)]["latency"]["p99_ms"] / by[(c, 50.0)]["latency"]["p99_ms"]}
        for c in clients for d in delays if d != 50.0}
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick,
              "seconds_per_run": seconds, "rounds": args.rounds, "delays_ms": delays, "clients": clients, "runs": runs,
              "vs_reference_50ms": vs_reference}
    write(args.out, NAME, result)
    plot(result, args.out / f"{NAME}.png")


if __name__ == "__main__":
    main()
