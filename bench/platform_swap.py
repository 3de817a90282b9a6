"""(d) Hot-swap time and failed requests during 10 swaps under load, vs unload-then-load.

A real ``npusuite platform serve`` process serves each model; 8 client
threads keep requests flowing over HTTP while the admin API swaps the model
10 times between two versions.  Swap time = the load call's duration
(resolve + checksum + load + warm-up + switch; the old version keeps
answering throughout).  Baseline in the same run: the same 10 version changes
done as unload-then-load (what a restart, or Triton's explicit unload/load,
does), counting requests that fail in the gap.  Models: the torch-module
``scale`` and the tiny LLM (plus the bench-size LLM without ``--quick``).
Goal (issue 3): swap < 2 s with 0 failed requests.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from platform_common import (
    environment,
    free_port,
    llm_dir,
    parser,
    start_server,
    stop_server,
    summary_ms,
    write,
)

NAME = "platform_swap"
TOKEN = "bench-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def load_generator(url: str, model: str, kind: str, stop: threading.Event, stats: dict) -> None:
    import httpx

    if kind == "causal-lm":
        path, body = "/v1/completions", {"model": model, "prompt": "the card was", "max_tokens": 4,
                                         "temperature": 0}
    else:
        path, body = f"/v2/models/{model}/infer", {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 1, 1, 1]}]}
    with httpx.Client(timeout=120) as client:
        while not stop.is_set():
            try:
                r = client.post(url + path, json=body)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            with stats["lock"]:
                stats["ok" if ok else "failed"] += 1


def phase(url: str, model: str, kind: str, mode: str, swaps: int, clients: int) -> dict:
    import httpx

    stats = {"ok": 0, "failed": 0, "lock": threading.Lock()}
    stop = threading.Event()
    threads = [threading.Thread(target=load_generator, args=(url, model, kind, stop, stats)) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    times = []
    for i in range(swaps):
        target = "2" if i % 2 == 0 else "1"
        t0 = time.perf_counter()
        if mode == "unload_then_load":
            r = httpx.post(f"{url}/v2/repository/models/{model}/unload", headers=AUTH, timeout=300)
            r.raise_for_status()
        r = httpx.post(f"{url}/v2/repository/models/{model}/load", json={"parameters": {"version": target}},
                       headers=AUTH, timeout=300)
        times.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise RuntimeError(f"load {model}@{target}: {r.status_code} {r.text}")
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    return {"model": model, "kind": kind, "mode": mode, "swaps": swaps, "clients": clients,
            "swap_time": summary_ms(times), "max_swap_s": max(times), "requests_ok": stats["ok"],
            "requests_failed": stats["failed"]}


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["phases"]
    labels = [f"{r['model']}\n{'hot swap' if r['mode'] == 'hot_swap' else 'unload+load'}" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    a.bar(labels, [r["max_swap_s"] for r in rows], color=["tab:green" if r["mode"] == "hot_swap" else "tab:gray"
                                                          for r in rows])
    a.axhline(2.0, color="red", linestyle="--", label="goal 2 s")
    a.set_ylabel("slowest of 10 swaps (s)")
    a.legend()
    b.bar(labels, [r["requests_failed"] for r in rows], color=["tab:green" if r["mode"] == "hot_swap" else
                                                               "tab:gray" for r in rows])
    b.set_ylabel("failed requests during 10 swaps")
    for ax in (a, b):
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    args = p.parse_args()
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.runtime.reference_models import save_scale
    from npusuite.platform.runtime.tiny_llm import make_tiny_llm

    gpu = not args.device.startswith("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo = ModelRepository(tmp / "models")
        repo.add("scale", save_scale(tmp / "s1", 1.0))
        repo.add("scale", save_scale(tmp / "s2", 2.0))
        repo.add("tiny-llm", make_tiny_llm(tmp / "l1", seed=0))
        repo.add("tiny-llm", make_tiny_llm(tmp / "l2", seed=1))
        models = [("scale", "torch-module"), ("tiny-llm", "causal-lm")]
        if not args.quick:
            size = "large" if gpu else "bench"
            big = llm_dir(size)
            repo.add(f"{size}-llm", big)
            repo.add(f"{size}-llm", big, precision="bf16" if gpu else "int8")
            models.append((f"{size}-llm", "causal-lm"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "npusuite.platform", "platform", "serve", "--model-root", str(repo.root),
               "--port", str(port), "--device", args.device, "--admin-token", TOKEN, "--no-follow-aliases"]
        proc = start_server(cmd, url + "/v2/health/ready", args.out / "logs" / f"{NAME}.log", timeout_s=600)
        phases = []
        try:
            for model, kind in models:
                for mode in ("hot_swap", "unload_then_load"):
                    r = phase(url, model, kind, mode, 10, args.clients)
                    phases.append(r)
                    print(f"{model} {mode}: slowest swap {r['max_swap_s']:.3f} s, p50 "
                          f"{r['swap_time']['p50_ms']:.0f} ms, ok {r['requests_ok']}, failed "
                          f"{r['requests_failed']}", flush=True)
        finally:
            stop_server(proc)
    hot = [r for r in phases if r["mode"] == "hot_swap"]
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick, "phases": phases,
              "goal": {"max_swap_s": 2.0, "failed_requests": 0},
              "goal_met": all(r["max_swap_s"] < 2.0 and r["requests_failed"] == 0 for r in hot)}
    write(args.out, NAME, result)
    plot(result, args.out / f"{NAME}.png")


if __name__ == "__main__":
    main()
