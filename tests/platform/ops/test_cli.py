"""``npusuite ops`` end to end: a real Prometheus server, the command as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def ops(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "npusuite.platform", "ops", *args], capture_output=True, text=True,
                          timeout=300)


def test_detect_ranks_the_hot_device_first_with_its_evidence(hot_args, hot_device):
    proc = ops("detect", *hot_args, "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    ranking = body["ranking"]
    assert ranking[0]["component"] == "device" and ranking[0]["root_candidate"]
    assert ranking[0]["evidence"][0]["series"] == "temperature"
    llm = next(r for r in ranking if r["component"] == "llm-tier")  # the cascade, explained by the device
    assert llm["explained_by"] == ["device"] and llm["rank"] > 1
    flagged = {s["component"]: s for s in body["series"] if s["anomalous"]}
    assert "review" not in flagged and "fraud-scorer" not in flagged, flagged  # normal series stay quiet
    assert "kafka/aborts" in body["missing"]  # not in this Prometheus


def test_static_method_is_the_baseline_and_misses_the_early_heating(hot_args, hot_device):
    fore = json.loads(ops("detect", *hot_args, "--json").stdout)["ranking"][0]
    proc = ops("detect", *hot_args, "--method", "static", "--json")
    assert proc.returncode == 0, proc.stderr
    static = json.loads(proc.stdout)["ranking"]
    dev = [r for r in static if r["component"] == "device"]
    # 60 + 5 sin + 25 crosses 85 C late in the window, if at all: never before the forecast band does
    assert not dev or dev[0]["onset"] > fore["onset"]


def test_report_writes_a_png_per_flagged_series(hot_args, tmp_path: Path):
    out = tmp_path / "rep"
    proc = ops("report", *hot_args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    body = json.loads((out / "report.json").read_text())
    flagged = [s for s in body["series"] if s["anomalous"]]
    assert len(body["pngs"]) == len(flagged) >= 2
    for name in body["pngs"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / name).stat().st_size > 10_000
    assert "device__temperature.png" in body["pngs"]


def test_capacity_writes_values_the_chart_reads_and_prints_kubectl(hot_device, tmp_path: Path):
    values = tmp_path / "scale.yaml"
    proc = ops("capacity", "--prometheus", hot_device.url, "--end", repr(hot_device.end), "--history", "3h",
               "--horizon", "2h", "--season", "30m", "--replicas", "1", "--replica-capacity", "120",
               "--values-out", str(values), "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    # the rate grows from 100 to 130 tx/s with a 30 % season: beyond 0.8 * 120 = 96 tx/s
    assert body["scale_up"] and body["needed_replicas"] >= 2 and body["crossing_at"]
    assert body["kubectl"] == f"kubectl scale statefulset/npusuite-fraud --replicas={body['needed_replicas']}"
    assert yaml.safe_load(values.read_text())["fraud"]["autoscaling"]["minReplicas"] == body["needed_replicas"]
    quiet = ops("capacity", "--prometheus", hot_device.url, "--end", repr(hot_device.end), "--history", "3h",
                "--season", "30m", "--replicas", "4", "--replica-capacity", "500")
    assert quiet.returncode == 0 and "no scaling needed" in quiet.stdout


def _one_line_error(proc: subprocess.CompletedProcess, text: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and text in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) <= 6  # typer's usage box or one line


HOSTILE = [  # (arguments after `ops`; "{hot}" = the scenario's detect options, "{url}"/"{empty}" = servers), message
    (["detect", "--prometheus", "http://127.0.0.1:1"], "cannot reach Prometheus"),
    (["detect", "--prometheus", "not-a-url"], "must start with http"),
    (["detect", "--prometheus", "{empty}"], "no data for any key series"),
    (["detect", "{hot}", "--query", "sum(rate(x[5m]"], "refused the query"),
    (["detect", "{hot}", "--step", "0s"], "--step"),
    (["detect", "{hot}", "--window", "soon"], "--window"),
    (["detect", "{hot}", "--end", "yesterday"], "--end"),
    (["detect", "{hot}", "--method", "magic"], "--method"),
    (["detect", "--prometheus", "{url}", "--history", "30d", "--step", "1s"], "11000"),
    (["capacity", "--prometheus", "{url}", "--replicas", "0", "--replica-capacity", "1"], "--replicas"),
    (["capacity", "--prometheus", "{empty}", "--replicas", "1", "--replica-capacity", "1"], "no load data"),
]


@pytest.mark.parametrize(("args", "message"), HOSTILE, ids=[m for _, m in HOSTILE])
def test_hostile_input_gives_one_line_and_exit_2(args, message, hot_args, hot_device, empty_prometheus):
    expanded: list[str] = []
    for a in args:
        expanded += hot_args if a == "{hot}" else [a.format(url=hot_device.url, empty=empty_prometheus)]
    _one_line_error(ops(*expanded), message)


def test_adhoc_query_is_judged_and_graph_teaches(hot_args):
    proc = ops("detect", *hot_args, "--query", "max(npusuite_device_temperature_celsius)")
    assert proc.returncode == 0, proc.stderr
    assert "--query: ANOMALOUS from" in proc.stdout
    g = ops("graph")
    assert g.returncode == 0 and "fraud-scorer  <- kafka, transactions, llm-tier" in g.stdout
    assert "npusuite_fraud_consumer_lag_records" in g.stdout
