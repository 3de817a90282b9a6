"""Edge benchmarks: outbox throughput per fsync policy, and campaign time to 100% across boxes.

0. **Model**: a washer student trained briefly and exported to ONNX by
   ``npusuite inspection export`` (parity with torch checked), unless
   ``--model`` names an exported folder (``model.onnx`` + card + calibration).
1. **Outbox**: results/s of ``Outbox.put`` with real ingest payloads (the
   trained student's inspections of washer test images: frame PNG, heatmap
   for NG) for each fsync policy, against a baseline measured in the same
   run: the naive durable log (append one JSON line to a file and
   ``os.fsync`` it per result).
2. **Rollout**: N real agent processes (``npusuite edge agent``, default
   ``--pipeline inspection``: the signed bundle of the trained ONNX student,
   run by ONNX Runtime, health-checked on the bundle's calibration images)
   on loopback, enrolled with a real fleet server process serving a real TUF
   repository.  After an untimed campaign installs 1.0.0 everywhere, we time a
   staged campaign (5% -> 25% -> 100%) from its start to 100% succeeded, and as
   the baseline a single-stage (100%) campaign of the next version.
   ``--pipeline sim`` runs the simulated scorer instead: only for fleet-scale
   runs (20+ boxes on a laptop), where the model is not what is measured.

Writes ``bench/out/edge.json`` and ``bench/out/edge.png``.  ``--quick``: fewer
results and 4 boxes (default 8; with ``--pipeline sim`` 6 and 20).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
from tqdm import tqdm

from npusuite.edge.bundles import make_bundle
from npusuite.edge.outbox import FSYNC_POLICIES, Outbox, OutboxConfig
from npusuite.edge.release import ReleaseRepository
from npusuite.edge.results import ingest_payload
from npusuite.edge.simulate import sample_frames, write_sim_model

OUT = Path(__file__).resolve().parent / "out"
ADMIN = "bench-admin-token"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained_model(work: Path, quick: bool) -> tuple[Path, Path]:
    """(exported ONNX student folder, washer test images): step 0 of the module docstring."""
    from npusuite.inspection.export import ExportConfig, export
    from npusuite.inspection.generate import GenerateConfig, generate
    from npusuite.inspection.train import TrainConfig, train

    generate(work / "data", GenerateConfig(train_good=60, test_good=16, test_per_defect=4, seed=5), ("washer",))
    steps = 60 if quick else 200
    train(work / "data" / "washer", work / "model", TrainConfig(teacher_steps=steps, student_steps=steps,
                                                                 batch_size=8, progress=False))
    report = export(work / "model", work / "model-onnx", ExportConfig(images=work / "data" / "washer" / "test"))
    print(f"model: student exported to ONNX, parity {report.student.parity.same_verdicts}/"
          f"{report.student.parity.images} same verdicts, max heatmap diff {report.student.parity.max_heat_diff:.1e}")
    return work / "model-onnx", work / "data" / "washer" / "test"


def bench_outbox(n: int, work: Path, model: Path, images: Path) -> dict:
    from npusuite.edge.pipeline import inspection_factory, load_samples

    work.mkdir(parents=True, exist_ok=True)
    frames, _ = load_samples(images, limit=64)
    inspector = inspection_factory(model)
    results = [inspector.inspect(f) for f in frames]
    payloads = []
    for i in range(n):
        result = results[i % len(results)]
        payloads.append((f"bench:{i}", result.defective, ingest_payload(result, f"bench:{i}", "line-1", None)))
    mean_bytes = sum(len(json.dumps(p)) for _, _, p in payloads) / n
    out: dict = {"results": n, "mean_payload_bytes": round(mean_bytes), "model": inspector.ref,
                 "ng_share": round(sum(ng for _, ng, _ in payloads) / n, 3)}
    # baseline: append + fsync per result
    path = work / "baseline.jsonl"
    t0 = time.perf_counter()
    with path.open("ab") as f:
        for _rid, _ng, payload in tqdm(payloads, desc="baseline jsonl+fsync", leave=False):
            f.write(json.dumps(payload).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
    base = n / (time.perf_counter() - t0)
    out["baseline_jsonl_fsync_results_per_s"] = round(base, 1)
    for policy in FSYNC_POLICIES:
        box = Outbox(OutboxConfig(work / f"outbox-{policy}.db", fsync=policy, max_bytes=4 * 1024 ** 3))
        t0 = time.perf_counter()
        for rid, ng, payload in tqdm(payloads, desc=f"outbox fsync={policy}", leave=False):
            box.put(rid, ng, payload)
        rate = n / (time.perf_counter() - t0)
        box.close()
        out[f"outbox_{policy}_results_per_s"] = round(rate, 1)
        out[f"outbox_{policy}_vs_baseline"] = round(rate / base, 3)
    return out


class Fleet:
    def __init__(self, work: Path, n_devices: int, heartbeat_s: float, pipeline: str, model: Path | None,
                 images: Path | None) -> None:
        self.work = work
        self.pipeline, self.model = pipeline, model
        self.repo = ReleaseRepository.init(work / "release")
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        env = {**os.environ, "NPUSUITE_ADMIN_TOKEN": ADMIN, "NPUSUITE_LOG_LEVEL": "WARNING"}
        self._start([sys.executable, "-m", "npusuite.platform", "edge", "fleet", "serve", "--db",
                     str(work / "fleet.db"), "--port", str(self.port), "--release-dir", str(work / "release")],
                    "fleet", env)
        self.admin = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        self._wait(lambda: self._get("/healthz"), 60, "fleet server")
        token = self.admin.post("/api/enrollment-tokens", json={"uses": n_devices}).json()["enrollment_token"]
        (work / "frames").mkdir()
        if pipeline == "sim":
            frames, _ = sample_frames(4)
            for f in frames:
                cv2.imwrite(str(work / "frames" / f.name), f.image)
        else:
            for path in sorted(images.rglob("*.png"))[:8]:
                shutil.copy(path, work / "frames" / f"{path.parent.name}-{path.name}")
        for i in range(n_devices):
            self._start([sys.executable, "-m", "npusuite.platform", "edge", "agent", "--box", str(work / f"box{i}"),
                         "--device-id", f"box-{i:02d}", "--source", str(work / "frames"), "--pipeline", pipeline,
                         "--fleet-url", self.url, "--enroll-token", token, "--trusted-root",
                         str(self.repo.trusted_root_path), "--heartbeat-s", str(heartbeat_s), "--keep-running"],
                        f"box{i}", env)
        self._wait(lambda: len(self.admin.get("/api/devices").json()) == n_devices, 300, "device enrolment")

    def _get(self, path: str) -> bool:
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _start(self, cmd: list[str], name: str, env: dict) -> None:
        log = (self.work / f"{name}.log").open("ab")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))

    @staticmethod
    def _wait(fn, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not fn():
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: timed out waiting for {what}")
            time.sleep(0.25)

    def publish(self, version: str) -> str:
        model = (write_sim_model(self.work / f"model-{version}", "line-a", version) if self.pipeline == "sim"
                 else self.model)
        target = f"models/line-a-{version}.tar.gz"
        bundle = make_bundle(model, self.work / f"line-a-{version}.tar.gz", "line-a", version)
        self.repo.add_target(target, bundle, version)
        return target

    def campaign(self, version: str, stages: list[float], timeout_s: float) -> dict:
        target = self.publish(version)
        t0 = time.monotonic()
        cid = self.admin.post("/api/campaigns", json={"target": target, "version": version, "stages_pct": stages,
                                                      "failure_threshold": 0.2}).json()["id"]
        progress = []
        with tqdm(total=None, desc=f"campaign {version} {stages}", leave=False) as bar:
            while True:
                c = self.admin.get(f"/api/campaigns/{cid}").json()
                progress.append((round(time.monotonic() - t0, 3), c["outcomes"]["succeeded"]))
                bar.set_postfix(succeeded=c["outcomes"]["succeeded"], stage=c["stage"])
                if c["status"] != "running":
                    break
                if time.monotonic() - t0 > timeout_s:
                    raise SystemExit(f"bench: campaign {version} did not finish: {c}")
                time.sleep(0.2)
        return {"status": c["status"], "seconds_to_100pct": round(time.monotonic() - t0, 2),
                "succeeded": c["outcomes"]["succeeded"], "failed": c["outcomes"]["failed"], "progress": progress}

    def close(self) -> None:
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def bench_rollout(n_devices: int, heartbeat_s: float, work: Path, pipeline: str, model: Path | None,
                  images: Path | None) -> dict:
    fleet = Fleet(work, n_devices, heartbeat_s, pipeline, model, images)
    try:
        warm = fleet.campaign("1.0.0", [100], 600)
        staged = fleet.campaign("1.1.0", [5, 25, 100], 600)
        flat = fleet.campaign("1.2.0", [100], 600)
    finally:
        fleet.close()
    return {"devices": n_devices, "heartbeat_s": heartbeat_s, "pipeline": pipeline, "provision_1.0.0": warm,
            "staged_5_25_100": staged,
            "baseline_single_stage": flat,
            "staged_vs_single_stage_time": round(staged["seconds_to_100pct"] / flat["seconds_to_100pct"], 3)}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    ob = result["outbox"]
    names = ["baseline\njsonl+fsync"] + [f"outbox\n{p}" for p in FSYNC_POLICIES]
    values = [ob["baseline_jsonl_fsync_results_per_s"]] + [ob[f"outbox_{p}_results_per_s"] for p in FSYNC_POLICIES]
    a.bar(names, values, color=["grey", "tab:blue", "tab:orange", "tab:green"])
    a.set_ylabel("results/s")
    a.set_title(f"outbox put throughput ({ob['mean_payload_bytes']} B payloads)")
    ro = result["rollout"]
    for key, label in (("staged_5_25_100", "staged 5/25/100%"), ("baseline_single_stage", "single stage 100%")):
        xs, ys = zip(*ro[key]["progress"], strict=True)
        b.step(xs, [100 * y / ro["devices"] for y in ys], where="post", label=label)
    b.set_xlabel("seconds since campaign start")
    b.set_ylabel("% of boxes updated")
    b.set_title(f"rollout across {ro['devices']} agent processes ({ro['pipeline']}, heartbeat "
                f"{ro['heartbeat_s']} s)", fontsize=9)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small run: 300 results, 4 boxes (sim: 6)")
    ap.add_argument("--results", type=int, default=None, help="outbox results per policy (default 2000)")
    ap.add_argument("--devices", type=int, default=None, help="agent processes (default 8; sim: 20)")
    ap.add_argument("--heartbeat-s", type=float, default=1.0)
    ap.add_argument("--pipeline", choices=("inspection", "sim"), default="inspection",
                    help="inspection: the trained ONNX student (default); sim: the simulated scorer, only for "
                         "fleet-scale rollouts where the model is not what is measured")
    ap.add_argument("--model", type=Path, default=None, help="an exported model folder (inspection export) and "
                    "--images its test images; default: train and export one briefly")
    ap.add_argument("--images", type=Path, default=None)
    args = ap.parse_args()
    n = args.results or (300 if args.quick else 2000)
    sim = args.pipeline == "sim"
    devices = args.devices or ((6 if args.quick else 20) if sim else (4 if args.quick else 8))
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="npusuite-bench-edge-"))
    try:
        if args.model is not None:
            if args.images is None:
                raise SystemExit("bench: --model needs --images (its test images)")
            model, images = args.model, args.images
        else:
            model, images = trained_model(work / "model", args.quick)
        result = {"quick": args.quick, "outbox": bench_outbox(n, work / "outbox", model, images)}
        print(json.dumps(result["outbox"], indent=2))
        (work / "fleet").mkdir()
        result["rollout"] = bench_rollout(devices, args.heartbeat_s, work / "fleet", args.pipeline, model, images)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (OUT / "edge.json").write_text(json.dumps(result, indent=2))
    plot(result, OUT / "edge.png")
    ro = result["rollout"]
    print(json.dumps({k: v for k, v in ro.items() if not isinstance(v, dict)} | {
        "staged_s": ro["staged_5_25_100"]["seconds_to_100pct"],
        "single_stage_s": ro["baseline_single_stage"]["seconds_to_100pct"]}, indent=2))
    print(f"wrote {OUT / 'edge.json'} and {OUT / 'edge.png'}")


if __name__ == "__main__":
    main()
