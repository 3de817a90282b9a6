"""(b) fp32 vs int8 weight-only (torchao ``quantize_``): model memory and generation tokens/s.

Same model folder loaded twice (fp32 baseline, then int8 weight-only on every
``nn.Linear``), same prompts, greedy, exactly ``--max-tokens`` tokens per
request through the platform's LLM scheduler at concurrency 1 and 16.
Memory = bytes of weights (inside torchao's quantised tensors), plus the
device's allocated-memory delta on CUDA.  Speed: rounds alternate fp32 and
int8 (median reported), so other load on a shared machine hits both alike.  Goal (issue 3): int8 memory <= 0.35 of fp32.
"""

from __future__ import annotations

import gc
import statistics
import time

from platform_common import configure, environment, llm_dir, parser, prompts, write

NAME = "platform_int8"


def load(folder, device: str, precision: str):
    from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
    from npusuite.platform.runtime.causal_lm import CausalLM
    from npusuite.platform.runtime.devices import get_device

    dev = get_device(device)
    gc.collect()
    before = dev.memory_allocated_bytes()
    lm = CausalLM.load(folder, device, precision)
    dev.synchronize()
    after = dev.memory_allocated_bytes()
    sched = LLMScheduler(lm, LLMConfig(max_running=64, max_queue_size=10_000))
    sched.submit(lm.encode("warm up"), SamplingParams(max_tokens=2)).result(600)
    info = {"precision": precision, "weight_bytes": lm.memory_bytes,
            "device_allocated_bytes": None if before is None else after - before, "levels": []}
    return lm, sched, info


def one_round(lm, sched, texts: list[str], max_tokens: int, c: int) -> float:
    from npusuite.platform.engine import SamplingParams

    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    t0 = time.perf_counter()
    streams = [sched.submit(lm.encode(t), params) for t in texts[:c]]
    for s in streams:
        s.result(1200)
    return sum(len(s.completion_ids) for s in streams) / (time.perf_counter() - t0)


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.bar([r["precision"] for r in runs], [r["weight_bytes"] / 2**20 for r in runs], color=["tab:blue", "tab:orange"])
    a.set_ylabel("weights (MiB)")
    a.set_title(f"memory: int8/fp32 = {result['memory_ratio']:.2f}")
    levels = [lv["concurrency"] for lv in runs[0]["levels"]]
    width = 0.35
    for i, r in enumerate(runs):
        b.bar([x + i * width for x in range(len(levels))], [lv["tokens_per_s"] for lv in r["levels"]], width,
              label=r["precision"])
    b.set_xticks([x + width / 2 for x in range(len(levels))], [f"C={c}" for c in levels])
    b.set_ylabel("tokens/s")
    b.legend()
    b.set_title(f"generation speed ({result['environment']['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", default=None, help="bench (CPU default) or large (GPU default)")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None, help="alternating fp32/int8 rounds (median reported)")
    args = p.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 3)
    configure(args)
    gpu = not args.device.startswith("cpu")
    size = args.size or ("large" if gpu else "bench")
    max_tokens = args.max_tokens or (16 if args.quick else 32)
    levels = [1, 16]
    texts = prompts(max(levels))
    folder = llm_dir(size)
    loaded = [load(folder, args.device, prec) for prec in ("fp32", "int8")]
    samples = {(prec, c): [] for prec in ("fp32", "int8") for c in levels}
    # Rounds alternate fp32 and int8, so load from other processes on a shared machine hits both alike.
    for r in range(args.rounds):
        for lm, sched, info in loaded:
            for c in levels:
                tps = one_round(lm, sched, texts, max_tokens, c)
                samples[(info["precision"], c)].append(tps)
                print(f"round {r}: {info['precision']} C={c}: {tps:.1f} tok/s, weights "
                      f"{info['weight_bytes'] / 2**20:.1f} MiB", flush=True)
    runs = []
    for _lm, sched, info in loaded:
        sched.close()
        info["levels"] = [{"concurrency": c, "tokens_per_s": statistics.median(samples[(info["precision"], c)]),
                           "samples_tokens_per_s": samples[(info["precision"], c)]} for c in levels]
        runs.append(info)
    fp32, int8 = runs
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick,
              "model": {"size": size}, "max_tokens": max_tokens, "rounds": args.rounds, "runs": runs,
              "memory_ratio": int8["weight_bytes"] / fp32["weight_bytes"],
              "tokens_per_s_ratio": {f"C={a['concurrency']}": b["tokens_per_s"] / a["tokens_per_s"]
                                     for a, b in zip(fp32["levels"], int8["levels"], strict=True)},
              "memory_goal": 0.35}
    result["memory_goal_met"] = result["memory_ratio"] <= 0.35
    print(f"int8/fp32 memory {result['memory_ratio']:.3f}; tokens/s ratio {result['tokens_per_s_ratio']}")
    write(args.out, NAME, result)
    plot(result, args.out / f"{NAME}.png")


if __name__ == "__main__":
    main()
