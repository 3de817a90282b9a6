"""A real Prometheus server for given scrape targets: config written, process started, readiness awaited.

Used by the tests (tests/platform/observability/test_prometheus_scrape.py, tests/deploy/test_dashboards.py)
and by benchmarks that need a Prometheus to read from.  It runs the ``prometheus`` binary (Debian's
package, installed by deploy/system-deps.sh) with a generated ``prometheus.yml``, a TSDB in ``workdir``
and its web UI/API on a loopback port; nothing here is a stand-in.

    with PrometheusServer(tmp, [ScrapeTarget("fraud", "127.0.0.1:9101")], scrape_interval_s=1) as prom:
        prom.wait_for('up{job="fraud"} == 1', timeout_s=20)
        prom.query("rate(npusuite_fraud_transactions_total[1m])")

:func:`prometheus_config` is the pure part (targets -> config dict); :class:`PrometheusServer` the I/O.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from npusuite.platform.errors import UserError
from npusuite.platform.kafka.broker import free_broker_port


class PrometheusQueryError(RuntimeError):
    """The server answered a query with ``status: error`` (bad PromQL, a timeout...)."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint to scrape: ``job`` names it in every series (``job="..."``)."""

    job: str
    address: str  # host:port
    path: str = "/metrics"
    bearer_token: str | None = field(default=None, repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)


def prometheus_config(targets: Sequence[ScrapeTarget], *, scrape_interval_s: float = 15.0,
                      evaluation_interval_s: float | None = None, rule_files: Sequence[Path] = (),
                      token_files: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """The ``prometheus.yml`` content for ``targets`` (one scrape job per target job name).

    ``token_files`` maps a job to a file holding its bearer token (the token itself never enters the config).
    """
    jobs: dict[str, list[ScrapeTarget]] = {}
    for t in targets:
        jobs.setdefault(t.job, []).append(t)
    scrape_configs = []
    for job, ts in jobs.items():
        paths = {t.path for t in ts}
        if len(paths) != 1:
            raise UserError(f"scrape job {job!r}: targets with different metrics paths {sorted(paths)}")
        entry: dict[str, Any] = {
            "job_name": job,
            "metrics_path": paths.pop(),
            "static_configs": [{"targets": [t.address], **({"labels": dict(t.labels)} if t.labels else {})}
                               for t in ts],
        }
        if token_files and job in token_files:
            entry["authorization"] = {"type": "Bearer", "credentials_file": str(token_files[job])}
        scrape_configs.append(entry)
    interval = f"{int(scrape_interval_s * 1000)}ms"
    evaluation = f"{int((evaluation_interval_s or scrape_interval_s) * 1000)}ms"
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": evaluation},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape_configs,
    }


class PrometheusServer:
    """The real ``prometheus`` process, scraping ``targets``; a context manager (start/stop)."""

    def __init__(self, workdir: Path, targets: Sequence[ScrapeTarget], *, scrape_interval_s: float = 15.0,
                 evaluation_interval_s: float | None = None, rule_files: Sequence[Path] = (),
                 port: int | None = None, binary: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.targets = list(targets)
        self.scrape_interval_s = scrape_interval_s
        self.evaluation_interval_s = evaluation_interval_s
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.port = port
        self.binary = binary or shutil.which("prometheus") or "/usr/bin/prometheus"
        self._proc: subprocess.Popen | None = None
        self._log = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen | None:
        """The ``prometheus`` process while it runs (None before :meth:`start` and after :meth:`stop`)."""
        return self._proc

    @property
    def log_path(self) -> Path:
        """Where the server's own log goes."""
        return self._log

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        token_files: dict[str, Path] = {}
        for t in self.targets:
            if t.bearer_token:
                path = self.workdir / f"token-{t.job}"
                path.write_text(t.bearer_token)
                path.chmod(0o600)
                token_files[t.job] = path
        config = prometheus_config(self.targets, scrape_interval_s=self.scrape_interval_s,
                                   evaluation_interval_s=self.evaluation_interval_s, rule_files=self.rule_files,
                                   token_files=token_files)
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout_s: float = 60.0) -> PrometheusServer:
        if not Path(self.binary).is_file():
            raise UserError(f"no prometheus binary at {self.binary} (deploy/system-deps.sh installs Debian's)")
        config = self.write_config()
        fixed = self.port is not None
        for _attempt in range(1 if fixed else 3):
            if not fixed:
                self.port = free_broker_port(span=1)
            self._proc = subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
                 "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=self._log.open("ab"), cwd=self.workdir,
                env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TZ")})
            if self._wait_ready(timeout_s):
                return self
            self.stop()
        raise RuntimeError(f"prometheus did not become ready:\n{self.log_tail()}")

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                if httpx.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        return self._log.read_text(errors="replace")[-chars:] if self._log.exists() else ""

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- HTTP API ------------------------------------------------------------------------
    def api(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/api/v1/<path>``; the ``data`` of a successful answer, :class:`PrometheusQueryError` otherwise."""
        resp = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = resp.json()
        if body.get("status") != "success":
            raise PrometheusQueryError(f"{path} {dict(params or {})}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query; the result vector (or scalar/string as one item)."""
        data = self.api("query", {"query": expr, **({"time": at} if at is not None else {})})
        return data["result"] if data["resultType"] in ("vector", "matrix") else [{"value": data["result"]}]

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        return self.api("query_range", {"query": expr, "start": start, "end": end, "step": step_s})["result"]

    def metric_names(self) -> list[str]:
        return list(self.api("label/__name__/values"))

    def targets_health(self) -> dict[str, str]:
        """``job -> health`` ("up", "down", "unknown") of the active targets."""
        return {t["labels"]["job"]: t["health"] for t in self.api("targets")["activeTargets"]}

    def wait_for(self, expr: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll ``expr`` until it returns a non-empty result; the result, or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result for {expr!r} within {timeout_s} s")
            time.sleep(0.25)
