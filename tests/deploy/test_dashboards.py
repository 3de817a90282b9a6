"""The Grafana dashboards (deploy/prometheus/dashboards): one per level, well-formed dashboard JSON,
every query valid PromQL for the real Prometheus server, every metric it reads one the suite exports.

promtool cannot parse a bare expression, so each query is evaluated through a real ``prometheus``
(no targets: parse and type errors show, data does not matter here; the scrape test,
tests/platform/observability/test_prometheus_scrape.py, evaluates them on live data)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from npusuite.platform.observability import dashboards
from npusuite.platform.observability import names as N
from npusuite.platform.observability.prometheus_server import PrometheusServer

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
FOLDER = PROM / "dashboards"
LEVELS = ("infrastructure", "framework", "model", "business")
#: Series prometheus-client's ProcessCollector writes besides the ones names.py lists.
PROCESS_EXTRAS = {"npusuite_process_max_fds", "npusuite_process_virtual_memory_bytes",
                  "npusuite_process_start_time_seconds"}


def exported_names() -> set[str]:
    """Every series name the suite can expose: names.py's, histogram parts, process extras, recorded rules."""
    base = {v for k, v in vars(N).items() if k.isupper() and isinstance(v, str) and v.startswith("npusuite_")}
    parts = {f"{b}_{s}" for b in base for s in ("bucket", "sum", "count")}
    recorded = {r["record"] for f in (PROM / "rules").glob("*.yml")
                for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"] if "record" in r}
    return base | parts | PROCESS_EXTRAS | recorded


def test_one_dashboard_per_level():
    assert sorted(p.stem for p in FOLDER.glob("*.json")) == sorted(LEVELS)
    uids = [dashboards.load(FOLDER / f"{level}.json")["uid"] for level in LEVELS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("level", LEVELS)
def test_dashboard_json_model(level: str):
    dash = dashboards.load(FOLDER / f"{level}.json")
    assert dash["title"] and dash["uid"] and level in dash["tags"] and "npusuite" in dash["tags"]
    assert dash["schemaVersion"] >= 36
    (var,) = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert var["name"] == "datasource" and var["query"] == "prometheus"
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 4
    for p in graphs:
        assert p["title"], p
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        assert p["targets"], f"{p['title']}: no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_every_dashboard_and_rule_reads_only_exported_metrics():
    """Names drift when metrics are renamed: every ``npusuite_*`` series a dashboard or a rule reads is one
    platform/observability/names.py declares (or a recording rule of deploy/prometheus/rules)."""
    known = exported_names()
    unknown = {(q.level, q.panel, n) for q in dashboards.all_queries(FOLDER) for n in q.metric_names() - known}
    for f in sorted((PROM / "rules").glob("*.yml")):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                names = set(re.findall(r"\bnpusuite_[a-z0-9_:]+", rule["expr"]))
                unknown |= {(f.name, rule.get("alert") or rule["record"], n) for n in names - known}
    assert not unknown, f"not in platform/observability/names.py: {sorted(unknown)}"


def test_the_levels_cover_what_the_issue_lists():
    """Issue 14's four levels, each a named panel on its dashboard."""
    titles = {level: " | ".join(q.panel for q in dashboards.queries(FOLDER / f"{level}.json")).lower()
              for level in LEVELS}
    wanted = {
        "infrastructure": ["cpu", "memory", "open files", "disk", "gc pause", "device"],
        "framework": ["queue length", "batch size", "queue wait", "forward latency", "per-layer", "kv cache",
                      "tokens per iteration"],
        "model": ["feature psi", "score psi", "score histogram", "decisions", "token entropy", "grey band"],
        "business": ["transactions / s", "requests / s", "error rate", "sla attainment", "reject window",
                     "review backlog", "past their sla", "false-reject"],
    }
    missing = {level: [w for w in words if w not in titles[level]] for level, words in wanted.items()}
    assert not any(missing.values()), missing


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus with the suite's rules loaded and nothing to scrape."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), [], scrape_interval_s=1,
                          rule_files=sorted((PROM / "rules").glob("*.yml"))) as prom:
        yield prom


def test_every_dashboard_query_is_valid_promql(prometheus: PrometheusServer):
    queries = dashboards.all_queries(FOLDER)
    assert Counter(q.level for q in queries).keys() == set(LEVELS)
    errors = []
    for q in queries:
        try:
            prometheus.query(q.promql("1m"))
        except Exception as exc:  # every failure is collected and reported
            errors.append(f"{q.level} / {q.panel} / {q.ref}: {exc}")
    assert not errors, "\n".join(errors)


def test_an_invalid_query_is_reported(prometheus: PrometheusServer):
    """The check above can fail: a broken expression is an error, not an empty answer."""
    from npusuite.platform.observability.prometheus_server import PrometheusQueryError

    bad = dashboards.DashboardQuery("x", "x", "x", "A",
                                    "sum by (job) (rate(npusuite_fraud_transactions_total[$__rate_interval])")
    with pytest.raises(PrometheusQueryError, match="parse error"):
        prometheus.query(bad.promql())
