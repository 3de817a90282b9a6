"""(c) HTTP infer overhead: a no-op model behind the platform's KServe v2 endpoint vs a bare FastAPI endpoint.

Both servers run as separate uvicorn processes on this machine; one client
sends the same 1x4 FP32 tensor request sequentially and records latency.
The bare endpoint parses the same JSON and answers the same JSON shape with
no batcher, engine or metrics: the difference is the platform's overhead
(batcher hand-off, tensor codec, metrics middleware).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI, Request
from platform_common import environment, free_port, parser, start_server, stop_server, summary_ms, write

NAME = "platform_http_overhead"
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 2.0, 3.0, 4.0]}]}


def bare_app():
    app = FastAPI()

    @app.get("/v2/health/live")
    def live() -> dict:
        return {"live": True}

    @app.post("/v2/models/noop/infer")
    async def infer(request: Request) -> dict:
        body = await request.json()
        x = body["inputs"][0]
        return {"model_name": "noop", "model_version": "1",
                "outputs": [{"name": "y", "datatype": "FP32", "shape": x["shape"], "data": x["data"]}]}

    return app


def measure(url: str, n: int, warmup: int = 30) -> dict:
    import httpx

    lat = []
    with httpx.Client(timeout=30) as client:
        for i in range(n + warmup):
            t0 = time.perf_counter()
            r = client.post(f"{url}/v2/models/noop/infer", json=BODY)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"{url}: {r.status_code} {r.text}")
            if i >= warmup:
                lat.append(dt)
    return summary_ms(lat)


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["bare FastAPI", "npusuite KServe v2"]
    vals = [result["bare"], result["platform"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = range(2)
    ax.bar([i - 0.2 for i in x], [v["p50_ms"] for v in vals], 0.4, label="p50")
    ax.bar([i + 0.2 for i in x], [v["p99_ms"] for v in vals], 0.4, label="p99")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("latency (ms)")
    ax.set_title("HTTP infer, no-op model, sequential client")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=None)
    p.add_argument("--serve-bare", type=int, default=None, help=argparse_hidden())
    args = p.parse_args()
    if args.serve_bare:
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.serve_bare, log_level="warning")
        return
    n = args.requests or (300 if args.quick else 2000)
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.runtime.reference_models import save_noop

    with tempfile.TemporaryDirectory() as tmp:
        repo = ModelRepository(Path(tmp) / "models")
        repo.add("noop", save_noop(Path(tmp) / "noop"))
        results = {}
        for kind in ("bare", "platform"):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            if kind == "bare":
                cmd = [sys.executable, __file__, "--serve-bare", str(port)]
            else:
                cmd = [sys.executable, "-m", "npusuite.platform", "platform", "serve", "--model-root",
                       str(repo.root), "--port", str(port), "--device", args.device]
            proc = start_server(cmd, url + "/v2/health/live", args.out / "logs" / f"{NAME}-{kind}.log")
            try:
                results[kind] = measure(url, n)
            finally:
                stop_server(proc)
            print(f"{kind}: p50 {results[kind]['p50_ms']:.2f} ms, p99 {results[kind]['p99_ms']:.2f} ms", flush=True)
    result = {"benchmark": NAME, "environment": environment(args.device), "quick": args.quick, "requests": n,
              **results,
              "overhead_p50_ms": results["platform"]["p50_ms"] - results["bare"]["p50_ms"],
              "overhead_p99_ms": results["platform"]["p99_ms"] - results["bare"]["p99_ms"],
              "ratio_p50": results["platform"]["p50_ms"] / results["bare"]["p50_ms"],
              "ratio_p99": results["platform"]["p99_ms"] / results["bare"]["p99_ms"]}
    write(args.out, NAME, result)
    plot(result, args.out / f"{NAME}.png")


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
