"""(a) LLM throughput and time to first token under concurrency: iteration-level batching vs baselines.

For each concurrency C in 1, 4, 16, 64: C requests (same prompts, greedy,
exactly ``--max-tokens`` new tokens each) arrive together at the platform's
LLM scheduler (in-process engine; HTTP cost is benchmark (c)).  Baselines
measured in the same run on the same model and prompts:

- sequential: plain ``model.generate`` called one request at a time;
- offline: ONE batched ``model.generate`` of all C requests (left padding) --
  the best a non-streaming offline job can do.

Goals (issue 3): at C=16, throughput >= 4x sequential and >= 0.8x offline.
"""

from __future__ import annotations

import statistics
import threading
import time

from platform_common import configure, environment, in_thread, llm_dir, parser, prompts, summary_ms, write

NAME = "platform_llm_batching"


def run_platform(lm, texts: list[str], max_tokens: int, max_running: int) -> dict:
    from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams

    sched = LLMScheduler(lm, LLMConfig(max_running=max_running, max_queue_size=10_000))
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    ids = [lm.encode(t) for t in texts]
    sched.submit(ids[0], SamplingParams(max_tokens=2)).result(600)  # warm
    barrier = threading.Barrier(len(texts))
    ttft, done, tokens = [], [], [0]
    lock = threading.Lock()

    def client(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        stream = sched.submit(ids[i], params)
        for _ev in stream:
            pass
        with lock:
            # token-level: a random model's first tokens may decode to no visible text
            ttft.append(stream.first_token_s - stream.created_s)
            done.append(time.perf_counter() - t0)
            tokens[0] += len(stream.completion_ids)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    sched.close()
    return {"tokens": tokens[0], "wall_s": wall, "tokens_per_s": tokens[0] / wall, "ttft": summary_ms(ttft),
            "latency": summary_ms(done)}


def run_sequential(lm, texts: list[str], max_tokens: int) -> dict:
    lm.generate_offline(texts[:1], 2)  # warm
    latencies, tokens, start = [], 0, time.perf_counter()
    for t in texts:
        tokens += len(lm.generate_offline([t], max_tokens)[0])
        latencies.append(time.perf_counter() - start)  # queued one after another: waits for those before it
    wall = time.perf_counter() - start
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall, "latency": summary_ms(latencies),
            "requests_measured": len(texts)}


def run_offline(lm, texts: list[str], max_tokens: int) -> dict:
    lm.generate_offline(texts[:2], 2)  # warm
    t0 = time.perf_counter()
    out = lm.generate_offline(texts, max_tokens)
    wall = time.perf_counter() - t0
    tokens = sum(len(o) for o in out)
    return {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "latency": summary_ms([wall] * len(texts))}


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [r["concurrency"] for r in result["levels"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("platform", "npusuite continuous batching"), ("sequential", "sequential generate"),
                       ("offline", "offline batched generate")):
        a.plot(levels, [r[key]["tokens_per_s"] for r in result["levels"]], marker="o", label=label)
    a.set_xscale("log", base=2)
    a.set_xlabel("concurrent requests")
    a.set_ylabel("generated tokens/s")
    a.legend()
    a.set_title(f"LLM throughput ({result['model']['size']}, {result['environment']['device']})")
    b.plot(levels, [r["platform"]["ttft"]["p50_ms"] for r in result["levels"]], marker="o", label="p50")
    b.plot(levels, [r["platform"]["ttft"]["p99_ms"] for r in result["levels"]], marker="o", label="p99")
    b.set_xscale("log", base=2)
    b.set_xlabel("concurrent requests")
    b.set_ylabel("time to first token (ms)")
    b.legend()
    b.set_title("npusuite time to first token")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", default=None, help="model size: bench (CPU default) or large (GPU default)")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--levels", default=None, help="comma-separated concurrency levels")
    p.add_argument("--max-sequential", type=int, default=None,
                   help="run the sequential baseline on at most this many requests (its tokens/s does not "
                        "depend on the count)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per level (median reported)")
    args = p.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    configure(args)
    import torch

    from npusuite.platform.runtime.causal_lm import CausalLM

    gpu = not args.device.startswith("cpu")
    size = args.size or ("large" if gpu else "bench")
    max_tokens = args.max_tokens or (16 if args.quick else 32)
    levels = [int(x) for x in args.levels.split(",")] if args.levels else ([1, 4, 16] if args.quick
                                                                         else [1, 4, 16, 64])
    max_seq = args.max_sequential or (8 if args.quick else 16)
    torch.manual_seed(0)
    lm = CausalLM.load(llm_dir(size), args.device, "fp32" if not gpu else "bf16")
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick,
              "model": {"size": size, "arch": type(lm.model).__name__, "precision": lm.precision,
                        "params": sum(p.numel() for p in lm.model.parameters())},
              "max_tokens": max_tokens, "rounds": args.rounds, "levels": []}
    for c in levels:
        texts = prompts(c)
        # Rounds interleave the three systems, so load from other processes on a shared machine hits all
        # alike; the round with the median platform throughput is reported, ratios are per-round medians.
        rounds = []
        for _ in range(args.rounds):
            rounds.append({"platform": run_platform(lm, texts, max_tokens, max_running=max(64, c)),
                           "sequential": in_thread(run_sequential, lm, texts[:max_seq], max_tokens),
                           "offline": in_thread(run_offline, lm, texts, max_tokens)})
        rounds.sort(key=lambda r: r["platform"]["tokens_per_s"])
        row = {"concurrency": c, **rounds[len(rounds) // 2],
               "rounds_tokens_per_s": [{k: r[k]["tokens_per_s"] for k in ("platform", "sequential", "offline")}
                                       for r in rounds]}
        row["ratio_vs_sequential"] = statistics.median(
            r["platform"]["tokens_per_s"] / r["sequential"]["tokens_per_s"] for r in rounds)
        row["ratio_vs_offline"] = statistics.median(
            r["platform"]["tokens_per_s"] / r["offline"]["tokens_per_s"] for r in rounds)
        print(f"C={c:3d}: platform {row['platform']['tokens_per_s']:8.1f} tok/s "
              f"(TTFT p50 {row['platform']['ttft']['p50_ms']:.0f} ms) | sequential "
              f"{row['sequential']['tokens_per_s']:8.1f} | offline {row['offline']['tokens_per_s']:8.1f} | "
              f"x{row['ratio_vs_sequential']:.2f} vs seq, x{row['ratio_vs_offline']:.2f} vs offline", flush=True)
        result["levels"].append(row)
    at16 = next((r for r in result["levels"] if r["concurrency"] == 16), None)
    if at16:
        result["goals"] = {"c16_vs_sequential": at16["ratio_vs_sequential"], "c16_vs_sequential_goal": 4.0,
                           "c16_vs_offline": at16["ratio_vs_offline"], "c16_vs_offline_goal": 0.8,
                           "met": at16["ratio_vs_sequential"] >= 4.0 and at16["ratio_vs_offline"] >= 0.8}
    write(args.out, NAME, result)
    plot(result, args.out / f"{NAME}.png")


if __name__ == "__main__":
    main()
