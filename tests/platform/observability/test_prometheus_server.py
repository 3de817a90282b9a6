"""The Prometheus launcher (platform/observability/prometheus_server.py) with the real binaries: the
config it writes passes ``promtool check config``, and the server it starts scrapes a live /metrics
endpoint (with a bearer token), answers queries and reports bad PromQL as an error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from npusuite.platform.observability.prometheus_server import (
    PrometheusQueryError,
    PrometheusServer,
    ScrapeTarget,
    prometheus_config,
)

REPO = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-token"


def test_written_config_passes_promtool(tmp_path: Path):
    server = PrometheusServer(tmp_path, [ScrapeTarget("a", "127.0.0.1:1"), ScrapeTarget("a", "127.0.0.1:2"),
                                         ScrapeTarget("edge", "127.0.0.1:3", bearer_token=TOKEN)],
                              scrape_interval_s=1, rule_files=sorted((REPO / "deploy/prometheus/rules").glob("*.yml")))
    path = server.write_config()
    assert TOKEN not in path.read_text()  # the token lives in a 0600 file, not in the config
    assert (tmp_path / "token-edge").stat().st_mode & 0o777 == 0o600
    proc = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = prometheus_config([ScrapeTarget("a", "h:1"), ScrapeTarget("a", "h:2")], scrape_interval_s=0.5)
    assert config["global"]["scrape_interval"] == "500ms"
    assert [c["job_name"] for c in config["scrape_configs"]] == ["a"]


def test_server_scrapes_a_live_endpoint_with_its_token(tmp_path: Path, endpoint: str, metrics_token: str):
    with PrometheusServer(tmp_path, [ScrapeTarget("things", endpoint, bearer_token=metrics_token)],
                          scrape_interval_s=1) as prom:
        result = prom.wait_for('npusuite_test_things_total{job="things"}', timeout_s=30)
        assert float(result[0]["value"][1]) == 42
        assert prom.targets_health() == {"things": "up"}
        assert "npusuite_test_things_total" in prom.metric_names()
        with pytest.raises(PrometheusQueryError, match="parse error"):
            prom.query("sum(rate(npusuite_test_things_total[1m])")
    assert not prom.running
