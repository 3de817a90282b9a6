"""The chart's optional ConfigMap of the suite's Prometheus rules (templates/prometheus-rules.yaml), with
the real helm: off by default; on, it holds every file of deploy/prometheus/rules byte for byte (the
chart reaches them through its prometheus-rules link, so there is no second copy to drift) and passes
the Kubernetes schema."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules"


def _configmaps(chart, *extra: str) -> list[dict]:
    proc = chart.template("cpu", *extra)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "ConfigMap"
            and d["metadata"]["labels"]["app.kubernetes.io/component"] == "prometheus-rules"]


def test_rules_configmap_is_off_by_default(chart):
    assert _configmaps(chart) == []


def test_rules_configmap_carries_every_rule_file(chart):
    (cm,) = _configmaps(chart, "--set", "prometheusRules.enabled=true")
    assert cm["metadata"]["name"] == "npusuite-prometheus-rules"
    files = {p.name: p.read_text() for p in sorted(RULES.glob("*.yml"))}
    assert cm["data"] == files
    kubernetes_validate.validate(cm, chart.kube_version, strict=True)
    for text in cm["data"].values():
        assert yaml.safe_load(text)["groups"]
