"""Demo step: a real Prometheus scraping every ``/metrics`` endpoint the demo started, with the suite's rules.

The earlier steps declare their endpoints with ``ctx.expose_metrics``; this step, the last one, writes a
``prometheus.yml`` for them under ``WORKDIR/prometheus/``, loads the recording and alerting rules from
``deploy/prometheus/rules/`` (when the suite runs from its repository), starts Debian's ``prometheus`` on
127.0.0.1:9090 (or a free port) and waits for the first scrape of each target.  The summary then says where
the UI is and how to ask ``npusuite ops detect`` what is going wrong.

Without a ``prometheus`` binary (``deploy/system-deps.sh`` installs it; ``make demo`` runs that) the step
says so in one line and the rest of the demo runs on.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from npusuite.platform.demo import DemoContext, Service
from npusuite.platform.kafka.broker import free_port, port_is_free
from npusuite.platform.observability.prometheus_server import PrometheusServer

logger = logging.getLogger(__name__)

PROMETHEUS_PORT = 9090
SCRAPE_INTERVAL_S = 5.0
FIRST_SCRAPE_TIMEOUT_S = 20.0


def rule_files(repo_root: Path | None = None) -> list[Path]:
    """The suite's rule files, when ``deploy/`` is beside the package (a checkout); else none."""
    root = repo_root or Path(__file__).resolve().parents[2]
    return sorted((root / "deploy" / "prometheus" / "rules").glob("*.yml"))


def find_binary() -> str | None:
    """Debian's ``prometheus`` on PATH or in /usr/bin; None when it is not installed."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    return binary if Path(binary).is_file() else None


def step(ctx: DemoContext) -> None:
    if not ctx.scrape_targets:
        return
    binary = find_binary()
    if binary is None:
        ctx.notes.append("prometheus   not installed (deploy/system-deps.sh installs it): no scraping, no alerts")
        return
    rules = rule_files()
    port = PROMETHEUS_PORT if port_is_free(PROMETHEUS_PORT) else free_port()
    prom = PrometheusServer(ctx.workdir / "prometheus", ctx.scrape_targets, scrape_interval_s=SCRAPE_INTERVAL_S,
                            rule_files=rules, port=port, binary=binary).start()
    ctx.services.append(Service("prometheus", prom.process, prom.url, prom.log_path))  # stopped with the others
    jobs = sorted({t.job for t in ctx.scrape_targets})
    health: dict[str, str] = {}
    deadline = time.monotonic() + FIRST_SCRAPE_TIMEOUT_S
    while time.monotonic() < deadline:
        health = prom.targets_health()
        if all(health.get(job) in ("up", "down") for job in jobs):
            break
        time.sleep(0.5)
    down = [job for job in jobs if health.get(job) != "up"]
    logger.info("prometheus at %s scrapes %s; %d rule file(s)%s", prom.url, ", ".join(jobs), len(rules),
                f"; not up yet: {', '.join(down)}" if down else "")
    ctx.notes.append(f"prometheus   {prom.url} scrapes {len(jobs)} jobs every {SCRAPE_INTERVAL_S:g} s "
                     f"({len(jobs) - len(down)} up), {len(rules)} rule files; alerts at {prom.url}/alerts")
    ctx.notes.append(f"ops          npusuite ops detect -p {prom.url} --history 20m --window 5m --step 15s "
                     "(after a while: what is outside its forecast band, and which component is the root)")
