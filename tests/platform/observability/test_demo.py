"""The demo's observability step (platform/observability/demo.py) with the real ``prometheus`` binary: it
scrapes what the earlier steps exposed (a bearer token where one is needed), loads the suite's rules, says
which targets are down, and is stopped with the demo's other services."""

from __future__ import annotations

from pathlib import Path

import httpx

from npusuite.platform.demo import DemoContext
from npusuite.platform.observability import demo


def test_prometheus_scrapes_the_exposed_endpoints_with_the_rules_and_stops_with_the_demo(
        tmp_path: Path, endpoint: str, metrics_token: str):
    ctx = DemoContext(tmp_path, "127.0.0.1:1", metrics_token)
    ctx.expose_metrics("npusuite-things", f"http://{endpoint}/metrics", bearer_token=metrics_token)
    ctx.expose_metrics("npusuite-gone", "http://127.0.0.1:1/metrics")
    try:
        demo.step(ctx)
        [svc] = [s for s in ctx.services if s.name == "prometheus"]
        assert svc.proc.poll() is None
        assert any("2 jobs" in n and "(1 up)" in n and "3 rule files" in n for n in ctx.notes), ctx.notes
        assert any(n.startswith("ops") and svc.url in n for n in ctx.notes), ctx.notes
        health = {t["labels"]["job"]: t["health"]
                  for t in httpx.get(f"{svc.url}/api/v1/targets").json()["data"]["activeTargets"]}
        assert health == {"npusuite-things": "up", "npusuite-gone": "down"}
        groups = httpx.get(f"{svc.url}/api/v1/rules").json()["data"]["groups"]
        assert groups and all(r["health"] != "err" for g in groups for r in g["rules"])
        assert metrics_token not in (tmp_path / "prometheus" / "prometheus.yml").read_text()  # a credentials file
    finally:
        ctx.stop_all()
    assert svc.proc.poll() is not None


def test_without_a_prometheus_binary_the_demo_says_so_and_goes_on(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(demo, "find_binary", lambda: None)
    ctx = DemoContext(tmp_path, "127.0.0.1:1", "admin-token")
    ctx.expose_metrics("npusuite-things", "http://127.0.0.1:1/metrics")
    demo.step(ctx)
    assert not ctx.services
    assert any("not installed" in n for n in ctx.notes)


def test_nothing_exposed_starts_nothing(tmp_path: Path):
    ctx = DemoContext(tmp_path, "127.0.0.1:1", "admin-token")
    demo.step(ctx)
    assert not ctx.services and not ctx.notes
