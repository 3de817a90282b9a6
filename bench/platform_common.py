"""Shared helpers for the platform benchmarks (not a benchmark itself).

Every ``bench/platform_*.py`` writes ``bench/out/<name>.json`` and a PNG,
takes ``--quick`` (smaller sizes for a busy 2-core machine) and ``--device``,
and measures its baseline in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform as std_platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes (minutes on a busy 2-core CPU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda[:N] or npu[:N]")
    p.add_argument("--out", type=Path, default=OUT, help="folder for <name>.json and <name>.png")
    p.add_argument("--threads", type=int, default=1, help=(
        "torch intra-op threads on the CPU (default 1: on a shared, oversubscribed machine OpenMP threads "
        "spin-wait for each other and slow the main thread several-fold; baselines and platform get the same)"))
    return p


def configure(args) -> None:
    """Apply ``--threads`` (CPU only) before any model runs."""
    import torch

    if args.device.startswith("cpu"):
        torch.set_num_threads(args.threads)


def in_thread(fn, *args, **kwargs):
    """Run ``fn`` in a fresh thread and return its result: baselines run under the same threading
    conditions as the platform's worker threads."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def environment(device: str) -> dict:
    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "machine": std_platform.machine(),
           "cpus": __import__("os").cpu_count(), "device": device, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def write(out: Path, name: str, result: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99),
            "mean_ms": statistics.fmean(ms) if ms else float("nan")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], url: str, log: Path, timeout_s: float = 180) -> subprocess.Popen:
    """Start a server process and wait until ``url`` answers 200."""
    import httpx

    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become ready; see {log}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def llm_dir(size: str, cache: Path | None = None) -> Path:
    """A cached random model of ``size`` (built once per size with make_tiny_llm)."""
    from npusuite.platform.runtime.tiny_llm import make_tiny_llm

    folder = (cache or OUT / ".cache") / f"llm-{size}"
    if not (folder / "model.safetensors").exists():
        make_tiny_llm(folder, size=size, seed=0)
    return folder


def prompts(n: int, seed: int = 0) -> list[str]:
    from npusuite.platform.runtime.tiny_llm import default_corpus

    lines = default_corpus(n_lines=4 * n + 8, seed=seed + 1)
    return [" ".join(lines[4 * i:4 * i + 3]) for i in range(n)]


if __name__ == "__main__":
    print(__doc__)
