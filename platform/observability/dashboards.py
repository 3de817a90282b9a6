"""The queries of Grafana dashboards (deploy/prometheus/dashboards/*.json), as typed records.

Pure: reads the dashboard JSON model (``panels[].targets[].expr``, rows' nested ``panels`` too) and turns
Grafana's query variables into what a plain Prometheus accepts (``$__rate_interval`` -> a duration), so
each query can be evaluated against a real server (tests/deploy/test_dashboards.py,
tests/platform/observability/test_prometheus_scrape.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Grafana's built-in interval variables (``$__rate_interval``, ``${__interval}``, ``$__range``).
_GRAFANA_INTERVAL = re.compile(r"\$\{?__(rate_interval|interval|range)\}?")
#: Metric names of the suite in an expression (recording rules' ``level:metric:op`` included).
_NAME = re.compile(r"\bnpusuite_[a-z0-9_:]+")


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str  # the dashboard's uid
    level: str  # its file stem: infrastructure, framework, model, business
    panel: str  # the panel's title
    ref: str  # the target's refId
    expr: str  # as written in the dashboard (Grafana variables included)

    def promql(self, interval: str = "1m") -> str:
        """The expression with Grafana's interval variables replaced by ``interval``."""
        return _GRAFANA_INTERVAL.sub(interval, self.expr)

    def metric_names(self) -> set[str]:
        return set(_NAME.findall(self.expr))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))  # collapsed rows keep their panels inside


def load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def queries(path: Path) -> list[DashboardQuery]:
    """Every Prometheus query of the dashboard at ``path``."""
    dash = load(path)
    return [DashboardQuery(dash["uid"], Path(path).stem, p["title"], t["refId"], t["expr"])
            for p in _panels(dash["panels"]) for t in p.get("targets", []) if t.get("expr")]


def all_queries(folder: Path) -> list[DashboardQuery]:
    return [q for f in sorted(Path(folder).glob("*.json")) for q in queries(f)]
