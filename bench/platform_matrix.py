"""(f) The reference deployment's matrix: model size x concurrent batch x precision -> FTT, TGS, MU.

Model size: three random Qwen2 shapes whose parameter counts are in the ratio
7 : 13 : 70 (7B : 13B : 70B scaled down: ~7M : 13M : 70M, ``--quick``
~0.7M : 1.3M : 7M).  Batch: 8, 16 and 32 requests arriving together at the
platform's LLM scheduler.  Precision: fp32, bf16 and int8 (torchao weight-only)
on CPU; fp16, bf16 and int8 on an accelerator (the first precision is fp16
where the device class supports it, else fp32; a precision the device class
does not support is recorded as skipped).

Per cell:
- FTT: median time from submission to a request's first token (the batch's
  prefill, queueing included);
- TGS: steady generated tokens per second once every request has its first
  token ((tokens - first tokens) / (end - last first token));
- MU: memory in use against the device total: on a device with an allocator
  (``torch.<kind>.max_memory_allocated``) its peak during the cell over the
  device's total; on CPU the process RSS after the cell over the machine's RAM
  (RSS includes the Python and torch runtime, ~0.5 GB).

On devices whose class can capture graphs the static-KV decode path runs
(``--kv-cache auto``); on CPU the dynamic one.  Writes
``platform_matrix.json`` and one PNG per metric (``platform_matrix_ftt.png``,
``_tgs.png``, ``_mu.png``).
"""

from __future__ import annotations

import gc
import statistics
import time

from platform_common import OUT, configure, environment, parser, write

NAME = "platform_matrix"
VOCAB = 1024
# hidden, layers, heads, kv heads, intermediate: parameter counts 6.95M : 12.83M : 70.57M (7 : 12.9 : 71)
SHAPES = {"7B": (256, 9, 4, 2, 672), "13B": (320, 11, 4, 2, 832), "70B": (576, 19, 4, 2, 1536)}
# 0.706M : 1.298M : 6.95M (7 : 12.9 : 68.9)
QUICK_SHAPES = {"7B": (96, 5, 2, 1, 256), "13B": (128, 6, 4, 2, 320), "70B": (256, 9, 4, 2, 672)}
BATCHES = (8, 16, 32)


def build_models(shapes: dict, folder) -> dict:
    """One random Qwen2 per shape, sharing one locally trained tokenizer (cached under ``folder``)."""
    from npusuite.platform.runtime.tiny_llm import build_causal_lm, default_corpus, train_tokenizer

    out = {}
    tok_dir = folder / "tokenizer"
    tokenizer = None
    for name, (hidden, layers, heads, kv, inter) in shapes.items():
        d = folder / f"{name}-{hidden}x{layers}"
        if not (d / "model.safetensors").exists():
            tokenizer = tokenizer or train_tokenizer(default_corpus(), tok_dir, vocab_size=VOCAB)
            tokenizer.save_pretrained(str(d))
            build_causal_lm(d, tokenizer, size="tiny", hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv, intermediate_size=inter,
                            vocab_size=VOCAB)
        out[name] = d
    return out


def memory_use(dev) -> tuple[int, int, str]:
    """(bytes in use, device total, what was measured)."""
    import psutil
    import torch

    backend = getattr(torch, dev.kind, None)
    if backend is not None and hasattr(backend, "max_memory_allocated") and hasattr(backend, "get_device_properties"):
        index = dev.index or 0
        return (int(backend.max_memory_allocated(index)), int(backend.get_device_properties(index).total_memory),
                "peak allocated")
    return int(psutil.Process().memory_info().rss), int(psutil.virtual_memory().total), "process RSS"


def reset_peak(dev) -> None:
    import torch

    backend = getattr(torch, dev.kind, None)
    if backend is not None and hasattr(backend, "reset_peak_memory_stats"):
        backend.empty_cache()
        backend.reset_peak_memory_stats(dev.index or 0)


def run_cell(folder, dev, precision: str, batch: int, max_tokens: int, texts: list[str], static_kv) -> dict:
    from npusuite.platform.engine import LLMConfig, LLMScheduler, SamplingParams
    from npusuite.platform.runtime.causal_lm import CausalLM

    reset_peak(dev)
    lm = CausalLM.load(folder, dev, precision, static_kv=static_kv)
    sched = LLMScheduler(lm, LLMConfig(max_running=batch, max_prefill_batch=batch, max_queue_size=10_000))
    ids = [lm.encode(t) for t in texts[:batch]]
    params = SamplingParams(max_tokens=max_tokens, ignore_eos=True)
    for s in sched.submit_many(ids, params):  # warm: kernels, graphs, allocator at this batch's shapes
        s.result(600)
    if lm.prefix_cache is not None:
        lm.prefix_cache.clear()  # the prompts differ anyway; no cell may profit from its warm-up
    streams = sched.submit_many(ids, params)
    for s in streams:
        s.result(600)
    end = time.monotonic()
    dev.synchronize()
    first = [s.first_token_s for s in streams]
    tokens = sum(len(s.completion_ids) for s in streams)
    used, total, how = memory_use(dev)
    cell = {"ftt_ms": statistics.median((f - s.created_s) * 1000 for f, s in zip(first, streams, strict=True)),
            "tgs": (tokens - batch) / max(end - max(first), 1e-9), "tokens": tokens,
            "mu": used / total, "memory_bytes": used, "memory_total_bytes": total, "memory_measured": how,
            "weights_bytes": lm.memory_bytes, "decode": lm.kv_layout, "decode_modes": lm.decode_modes}
    sched.close()
    del sched, lm
    gc.collect()
    return cell


def plot(result: dict, out) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric, label in (("ftt_ms", "first-token time (ms)"), ("tgs", "steady tokens/s"),
                          ("mu", "memory in use / device total")):
        fig, axes = plt.subplots(1, len(result["precisions"]), figsize=(4 * len(result["precisions"]), 3.6),
                                 sharey=True)
        for ax, precision in zip(axes, result["precisions"], strict=True):
            for size in result["sizes"]:
                cells = [c for c in result["cells"] if c["size"] == size and c["precision"] == precision
                         and metric in c]
                ax.plot([c["batch"] for c in cells], [c[metric] for c in cells], marker="o",
                        label=f"{size} ({result['sizes'][size]['params'] / 1e6:.1f}M)")
            ax.set_title(precision)
            ax.set_xlabel("concurrent requests")
            ax.set_xticks(list(BATCHES))
        axes[0].set_ylabel(label)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{label}: {result['environment']['device']}")
        fig.tight_layout()
        path = out / f"{NAME}_{metric.split('_')[0]}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--kv-cache", choices=("auto", "static", "dynamic"), default="auto",
                   help="decode path: auto = static KV + graphs where the device class can capture graphs")
    args = p.parse_args()
    configure(args)
    import torch

    from npusuite.platform.runtime.devices import get_device
    from npusuite.platform.runtime.kv_cache import StaticKVConfig

    dev = get_device(args.device)
    max_tokens = args.max_tokens or (8 if args.quick else 32)
    static = args.kv_cache == "static" or (args.kv_cache == "auto" and dev.graph_capture() is not None)
    static_kv = StaticKVConfig(max_slots=max(BATCHES), max_tokens=256) if static else None
    shapes = QUICK_SHAPES if args.quick else SHAPES
    folders = build_models(shapes, OUT / ".cache" / ("matrix-quick" if args.quick else "matrix"))
    precisions = ["fp16" if "fp16" in dev.precisions else "fp32", "bf16", "int8"]
    from platform_common import prompts

    texts = prompts(max(BATCHES))
    torch.manual_seed(0)
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick,
              "max_tokens": max_tokens, "decode": "static" if static else "dynamic", "precisions": precisions,
              "sizes": {}, "cells": []}
    for size, folder in folders.items():
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        hidden, layers, heads, kv, inter = shapes[size]
        head = hidden // heads
        params = (2 * cfg.vocab_size * hidden + hidden + layers * (
            2 * hidden * hidden + hidden + 2 * (hidden * kv * head + kv * head) + 3 * hidden * inter + 2 * hidden))
        result["sizes"][size] = {"params": params, "hidden": hidden, "layers": layers}
    base = result["sizes"]["7B"]["params"]
    for size in result["sizes"]:
        result["sizes"][size]["ratio_to_7B_x7"] = 7 * result["sizes"][size]["params"] / base
    for size, folder in folders.items():
        for precision in precisions:
            for batch in BATCHES:
                cell = {"size": size, "precision": precision, "batch": batch}
                if precision not in dev.precisions:
                    cell["skipped"] = f"{dev.kind} does not run {precision}"
                else:
                    cell.update(run_cell(folder, dev, precision, batch, max_tokens, texts, static_kv))
                    print(f"{size:>3} {precision:>4} C={batch:2d}: FTT {cell['ftt_ms']:8.1f} ms | TGS "
                          f"{cell['tgs']:8.1f} tok/s | MU {cell['mu']:.4f} ({cell['memory_bytes'] / 2**20:.0f} MiB "
                          f"{cell['memory_measured']})", flush=True)
                result["cells"].append(cell)
    write(args.out, NAME, result)
    plot(result, args.out)


if __name__ == "__main__":
    main()
