"""The real Prometheus server scraping a running fraud scorer, platform server and inspection line.

Everything is real and started once for the module: the session's Kafka broker, ``npusuite fraud run``
on a freshly trained fast model (the fraud service tests' fixture), ``npusuite platform serve`` with the
reference ``scale`` model, ``npusuite inspection run`` on a camera-paced clip with a quickly trained model
(the inspection tests' fixture), and Prometheus 2.42 (Debian's) scraping their /metrics every second
with the rules of deploy/prometheus loaded.  Traffic: transactions into Kafka, inference requests over
HTTP, frames from the clip.  The test asserts series from all four levels arrive (device series absent:
the processes run on CPU), and that every dashboard query evaluates without error on the live data; every
query whose metrics are all exported by these three processes must return samples.

Slow-marked (``make test-all``): training the two models and starting three Python services takes
about two and a half minutes on a loaded two-core machine (the test's own part, once they run, is ~15 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from npusuite.platform.kafka.broker import free_port
from npusuite.platform.observability import dashboards
from npusuite.platform.observability.prometheus_server import PrometheusServer, ScrapeTarget

REPO = Path(__file__).resolve().parents[3]
PROM = REPO / "deploy" / "prometheus"
JOBS = ("npusuite-fraud", "npusuite-platform", "npusuite-inspection")


def _reuse(folder: str):
    """Another test folder's conftest, for its fixtures (pytest scopes a conftest's fixtures to its folder)."""
    path = REPO / "tests" / folder / "conftest.py"
    spec = importlib.util.spec_from_file_location(f"_reused_{folder.replace('/', '_')}_conftest", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_fraud = _reuse("fraud/service")
_inspection = _reuse("inspection")
fast_model_repo = _fraud.fast_model_repo  # `npusuite fraud train --no-llm` into a repository
small_data = _inspection.small_data
tiny_model = _inspection.tiny_model  # a teacher+student trained for a few steps


@dataclass
class Stack:
    prometheus: PrometheusServer
    procs: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    platform_url: str
    harness: _fraud.StreamHarness

    def log_tails(self) -> str:
        return "\n".join(f"--- {job}\n{p.read_text(errors='replace')[-2500:]}" for job, p in self.logs.items())


def _spawn(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "NPUSUITE_LOG_LEVEL": "INFO"}
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=env, cwd=cwd)


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:4]} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, fast_model_repo, tiny_model, tmp_path_factory) -> Iterator[Stack]:
    from npusuite.inspection.video import write_line_video
    from npusuite.platform.repository import ModelRepository
    from npusuite.platform.runtime.reference_models import save_scale

    work = tmp_path_factory.mktemp("scrape")
    py = sys.executable
    # the platform's repository: the reference `scale` model (y = x) in production
    ModelRepository(work / "platform-models").add("scale", save_scale(work / "scale-src", 1.0))
    # a camera-paced 10 s clip, looped (--loop) so the line runs until it is stopped
    clip = work / "line.avi"
    write_line_video(clip, "washer", frames=200, fps=20.0, defect_rate=0.2, seed=11)

    harness = _fraud.StreamHarness(kafka_bootstrap, work, fast_model_repo)
    harness.create_topics(partitions=2)
    ports = {job: free_port() for job in JOBS}
    logs = {job: work / f"{job}.log" for job in JOBS}
    t = harness.topics
    procs = {
        "npusuite-fraud": _spawn(
            [py, "-m", "npusuite.fraud.service", "--bootstrap", kafka_bootstrap, "--group", harness.group,
             "--model", "fraud-fast", "--model-root", str(fast_model_repo), "--instance-id", "scrape-0",
             "--transactions-topic", t.transactions, "--scores-topic", t.scores, "--alerts-topic", t.alerts,
             "--dlq-topic", t.dlq, "--metrics-port", str(ports["npusuite-fraud"])], logs["npusuite-fraud"], work),
        "npusuite-platform": _spawn(
            [py, "-m", "npusuite.platform", "platform", "serve", "--model-root", str(work / "platform-models"),
             "--port", str(ports["npusuite-platform"])], logs["npusuite-platform"], work),
        "npusuite-inspection": _spawn(
            [py, "-m", "npusuite.platform", "inspection", "run", "--source", str(clip), "--model", str(tiny_model),
             "--loop", "--window-ms", "3000", "--queue-size", "64", "--results", str(work / "results.jsonl"),
             "--archive", str(work / "ng"),  # a state folder: its disk is reported
             "--metrics-port", str(ports["npusuite-inspection"])], logs["npusuite-inspection"], work),
    }
    targets = [ScrapeTarget(job, f"127.0.0.1:{port}") for job, port in ports.items()]
    prometheus = PrometheusServer(work / "prometheus", targets, scrape_interval_s=1.0,
                                  rule_files=sorted((PROM / "rules").glob("*.yml")))
    platform_url = f"http://127.0.0.1:{ports['npusuite-platform']}"
    try:
        prometheus.start()
        for job, port in ports.items():
            _wait_http(f"http://127.0.0.1:{port}/metrics", procs[job], logs[job])
        yield Stack(prometheus, procs, logs, platform_url, harness)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        prometheus.stop()


def _send_traffic(stack: Stack, transactions: list[dict], chunks: int = 10) -> None:
    """Transactions in ``chunks`` a second apart, so the scorer sees several batches (its feature drift
    window counts one row in 4, and exports PSI from 500 counted rows), and inference requests."""
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1.0] * 8}]}
    size = -(-len(transactions) // chunks)
    with httpx.Client(base_url=stack.platform_url, timeout=30) as http:
        for i in range(chunks):
            chunk = transactions[i * size:(i + 1) * size]
            stack.harness.produce([(tx["account_id"].encode(), json.dumps(tx).encode()) for tx in chunk])
            for _ in range(6):
                assert http.post("/v2/models/scale/infer", json=body).status_code == 200
            time.sleep(1)


def _names(stack: Stack, job: str) -> set[str]:
    return {s["__name__"] for s in stack.prometheus.api("series", {"match[]": f'{{job="{job}"}}'})}


#: Per level: (job, series name) that must arrive once traffic has flowed.
EXPECTED = {
    "a. infrastructure": [(job, n) for job in JOBS for n in (
        "npusuite_process_cpu_seconds_total", "npusuite_process_resident_memory_bytes",
        "npusuite_process_open_fds", "npusuite_host_memory_available_bytes", "npusuite_host_disk_free_bytes")],
    "b. framework": [
        ("npusuite-platform", "npusuite_platform_queue_length_requests"),
        ("npusuite-platform", "npusuite_platform_batch_size_rows_bucket"),
        ("npusuite-platform", "npusuite_platform_queue_wait_seconds_bucket"),
        ("npusuite-platform", "npusuite_platform_forward_seconds_bucket"),
        ("npusuite-fraud", "npusuite_fraud_batch_phase_seconds_bucket"),
        ("npusuite-fraud", "npusuite_fraud_consumer_lag_records"),
        ("npusuite-inspection", "npusuite_inspection_forward_seconds_bucket"),
    ],
    "c. model": [
        ("npusuite-fraud", "npusuite_fraud_score_bucket"),
        ("npusuite-fraud", "npusuite_fraud_decisions_total"),
        ("npusuite-fraud", "npusuite_fraud_score_psi"),
        ("npusuite-fraud", "npusuite_fraud_feature_psi"),
        ("npusuite-inspection", "npusuite_inspection_score_bucket"),
        ("npusuite-inspection", "npusuite_inspection_decisions_total"),
    ],
    "d. business": [
        ("npusuite-fraud", "npusuite_fraud_transactions_total"),
        ("npusuite-fraud", "npusuite_fraud_score_latency_seconds_bucket"),
        ("npusuite-platform", "npusuite_platform_requests_total"),
        ("npusuite-inspection", "npusuite_inspection_frames_total"),
        ("npusuite-inspection", "npusuite_inspection_decision_seconds_bucket"),
    ],
}
#: Device series: the processes run with --device cpu (their default), so these must not exist (not even as 0).
DEVICE = ("npusuite_device_utilization_ratio", "npusuite_device_memory_used_bytes",
          "npusuite_device_temperature_celsius", "npusuite_device_power_watts")


@pytest.mark.slow
@pytest.mark.kafka
def test_prometheus_sees_all_four_levels_and_every_dashboard_query_evaluates(stack: Stack):
    prom = stack.prometheus
    from npusuite.fraud.generator import GeneratorConfig, generate

    transactions, _labels = generate(GeneratorConfig(accounts=100, days=10, seed=5), progress=False)
    _send_traffic(stack, transactions[:2500])

    # every target up, then every expected series scraped (PSI needs 500 scored records in its window)
    deadline = time.monotonic() + 90
    missing: dict[str, list] = {}
    while time.monotonic() < deadline:
        health = prom.targets_health()
        names = {job: _names(stack, job) for job in JOBS}
        missing = {level: [(j, n) for j, n in want if n not in names[j]] for level, want in EXPECTED.items()}
        if all(h == "up" for h in health.values()) and len(health) == 3 and not any(missing.values()):
            break
        time.sleep(1)
    health = prom.targets_health()
    assert health == dict.fromkeys(JOBS, "up") and not any(missing.values()), \
        f"targets {health}; series not scraped: {missing}\n{stack.log_tails()}"

    # values, not just names: traffic was counted
    scored = prom.query('sum(npusuite_fraud_transactions_total{job="npusuite-fraud"})')
    assert scored and float(scored[0]["value"][1]) >= 500
    answered = prom.query('sum(npusuite_platform_requests_total{job="npusuite-platform",status="200"})')
    assert answered and float(answered[0]["value"][1]) >= 60
    frames = prom.query('sum(npusuite_inspection_frames_total{job="npusuite-inspection"})')
    assert frames and float(frames[0]["value"][1]) > 0

    # device series: absent on CPU
    devices = {n: prom.query(f"count({n})") for n in DEVICE}
    assert not any(devices.values()), f"device series from processes on CPU: {devices}"

    # the rules loaded and evaluated without error
    groups = prom.api("rules")["groups"]
    assert groups and all(r["health"] == "ok" for g in groups for r in g["rules"]), groups

    # every dashboard query evaluates without error on the live data; those reading only metrics these
    # processes export must return samples
    recorded = {r["name"] for g in groups for r in g["rules"] if r["type"] == "recording"}
    exported = set().union(*(_names(stack, job) for job in JOBS)) | {
        n for n in recorded if prom.query(f'count({{__name__="{n}"}})')}
    errors, empty, checked = [], [], 0
    for q in dashboards.all_queries(PROM / "dashboards"):
        try:
            result = prom.query(q.promql("1m"))
        except Exception as exc:  # collected: one report for all queries
            errors.append(f"{q.level} / {q.panel}: {exc}")
            continue
        if q.metric_names() <= exported:
            checked += 1
            if not result:
                empty.append(f"{q.level} / {q.panel} / {q.ref}: {q.promql('1m')}")
    assert not errors, "\n".join(errors)
    assert not empty, "queries over exported metrics returned nothing:\n" + "\n".join(empty)
    assert checked >= 25, checked
