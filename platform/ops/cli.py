"""``npusuite ops``: anomaly detection, root cause and scaling advice from Prometheus' HTTP API."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import typer

from npusuite.platform.errors import UserError

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "AIOps over the suite's metrics, read from Prometheus' HTTP API.\n\n"
        "`detect` fits a seasonal forecast (statsmodels ETS) to each key series' history and flags the "
        "points of the judged window outside its prediction interval; the anomalous components are "
        "ranked dependencies first, with the evidence.  `report` does the same and writes a PNG per "
        "flagged series.  `capacity` forecasts the scorer's load against what its replicas sustain and "
        "writes the Helm values / prints the `kubectl scale` command.  `graph` lists the components and "
        "the series each is judged by (platform/ops/topology.py).\n\n"
        "Prometheus: --prometheus, or NPUSUITE_PROMETHEUS_URL (default http://127.0.0.1:9090)."
    ),
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, what: str) -> float:
    """``90s``, ``5m``, ``6h``, ``1d`` (or plain seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"{what}: expected a positive duration like 30s, 5m, 6h or 1d, got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def parse_time(text: str | None) -> float:
    """``now`` (default), unix seconds, or ISO 8601 (UTC if no zone)."""
    if text is None or text == "now":
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--end: expected now, unix seconds or ISO 8601, got {text!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()


def _iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PROM = typer.Option(None, "--prometheus", "-p", help="Prometheus base URL (default: NPUSUITE_PROMETHEUS_URL).")
_END = typer.Option(None, "--end", help="End of the judged window: now, unix seconds or ISO 8601 (UTC).")
_HISTORY = typer.Option("6h", "--history", help="History the forecast is fitted on (before the window).")
_WINDOW = typer.Option("30m", "--window", help="The judged window, ending at --end.")
_STEP = typer.Option("30s", "--step", help="Query resolution (Prometheus step).")
_SEASON = typer.Option("1h", "--season", help="Seasonal period (e.g. 1d in production); 0 for none.")
_CONSEC = typer.Option(2, "--consecutive", min=1, help="Flagged points in a row that make an anomaly.")
_ALPHA = typer.Option(0.01, "--alpha", min=1e-6, max=0.5, help="1 - prediction-interval coverage.")
_METHOD = typer.Option("forecast", "--method", help="forecast (ETS band) or static (the thresholds in the graph).")
_QUERY = typer.Option(None, "--query", help="Also judge this PromQL (one series; high is bad).")
_JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _scan(prometheus, end, history, window, step, season, consecutive, alpha, method, query):
    from npusuite.platform.ops.prometheus_api import PrometheusClient
    from npusuite.platform.ops.scan import ScanSettings, adhoc, scan
    from npusuite.platform.ops.topology import SUITE, Direction
    from npusuite.platform.settings import OpsSettings

    if method not in ("forecast", "static"):
        raise UserError(f"--method: forecast or static, not {method!r}")
    season_s = None if season.strip() in ("0", "0s", "none") else parse_duration(season, "--season")
    try:
        settings = ScanSettings(end=parse_time(end), history_s=parse_duration(history, "--history"),
                                window_s=parse_duration(window, "--window"), step_s=parse_duration(step, "--step"),
                                season_s=season_s, consecutive=consecutive, alpha=alpha, method=method)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    points = (settings.history_s + settings.window_s) / settings.step_s
    if points > 11000:
        raise UserError(f"{points:.0f} points per series: Prometheus answers at most 11000; raise --step")
    extra = [adhoc(query, Direction.UP, float("inf"), 0.0)] if query else None
    with PrometheusClient(prometheus or OpsSettings().prometheus_url) as client:
        return scan(client, SUITE, settings, extra)


def _result_json(result) -> dict:
    return {
        "ranking": [{"rank": r.rank, "component": r.component, "onset": _iso(r.onset), "score": round(r.score, 2),
                     "root_candidate": r.root_candidate, "explained_by": list(r.explained_by),
                     "evidence": [{"series": e.series, "onset": _iso(e.onset), "score": round(e.score, 2),
                                   "method": e.method, "promql": e.promql} for e in r.evidence]}
                    for r in result.ranking],
        "series": [{"component": v.component, "series": v.series.name, "anomalous": v.anomalous,
                    "onset": _iso(v.onset), "flagged_points": int(v.flagged.sum()), "points": int(v.t.size),
                    "method": v.method, **({"note": v.note} if v.note else {})} for v in result.verdicts],
        "missing": result.missing,
    }


def _print(result) -> None:
    flagged = result.anomalous
    typer.echo(f"{len(result.verdicts)} series judged, {len(flagged)} anomalous, {len(result.missing)} without data"
               + (f" ({', '.join(result.missing)})" if result.missing else ""))
    for v in result.verdicts:
        if v.component == "query":
            typer.echo(f"  --query: {'ANOMALOUS from ' + _iso(v.onset) if v.anomalous else 'ok'} "
                       f"({int(v.flagged.sum())}/{v.t.size} points flagged, {v.method})")
    if not result.ranking:
        typer.echo("no anomalous component")
    for r in result.ranking:
        why = "root candidate" if r.root_candidate else f"explained by {', '.join(r.explained_by)}"
        typer.echo(f"{r.rank}. {r.component} (from {_iso(r.onset)}, {why})")
        for e in r.evidence:
            typer.echo(f"     {e.series}: from {_iso(e.onset)}, {e.score:.1f}x beyond; {e.promql}")


@app.command()
def detect(prometheus: str = _PROM, end: str = _END, history: str = _HISTORY, window: str = _WINDOW,
           step: str = _STEP, season: str = _SEASON, consecutive: int = _CONSEC, alpha: float = _ALPHA,
           method: str = _METHOD, query: str = _QUERY, as_json: bool = _JSON) -> None:
    """Flag key series outside their forecast band in the window; rank anomalous components.

    Exit status 0 whether or not something is anomalous (read the output or --json); 2 for bad
    input or an unreachable Prometheus.
    """
    result = _scan(prometheus, end, history, window, step, season, consecutive, alpha, method, query)
    typer.echo(json.dumps(_result_json(result), indent=2)) if as_json else _print(result)


@app.command()
def report(out: Path = typer.Option(Path("ops-report"), "--out", "-o", help="Folder for the PNGs and report.json."),
           prometheus: str = _PROM, end: str = _END, history: str = _HISTORY, window: str = _WINDOW,
           step: str = _STEP, season: str = _SEASON, consecutive: int = _CONSEC, alpha: float = _ALPHA,
           method: str = _METHOD, query: str = _QUERY) -> None:
    """Like detect, and write a PNG of each flagged series (history, forecast band, flagged points)."""
    from npusuite.platform.ops.report import write_report

    result = _scan(prometheus, end, history, window, step, season, consecutive, alpha, method, query)
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = write_report(result.verdicts, out)
        body = _result_json(result) | {"pngs": [p.name for p in paths]}
        (out / "report.json").write_text(json.dumps(body, indent=2))
    except OSError as exc:
        raise UserError(f"cannot write the report into {out}: {exc}") from None
    _print(result)
    typer.echo(f"wrote {len(paths)} PNG(s) and report.json to {out}")


@app.command()
def capacity(replica_capacity: float = typer.Option(..., "--replica-capacity", min=1e-9,
                                                    help="Transactions/s ONE scorer sustains (bench/fraud_stream.py)."),
             replicas: int = typer.Option(..., "--replicas", min=1, help="Scorer replicas running now."),
             prometheus: str = _PROM, end: str = _END, history: str = _HISTORY,
             horizon: str = typer.Option("1h", "--horizon", help="How far ahead to forecast the load."),
             step: str = _STEP, season: str = _SEASON,
             limit: float = typer.Option(0.8, "--limit", min=0.05, max=1.0, help="Utilisation that must not be "
                                         "crossed."),
             max_replicas: int = typer.Option(4, "--max-replicas", min=1, help="Cap (the chart's fraud.partitions)."),
             load_query: str = typer.Option(None, "--load-query", help="PromQL of the load (default: the rate of "
                                            "scored transactions plus the lag's growth)."),
             values_out: Path = typer.Option(None, "--values-out", help="Write a Helm values override here."),
             release: str = typer.Option("npusuite", "--release", help="Helm release name (for kubectl)."),
             namespace: str = typer.Option(None, "--namespace", "-n", help="Kubernetes namespace (for kubectl)."),
             as_json: bool = _JSON) -> None:
    """Forecast the scorer's load; when it will cross --limit of what --replicas sustain, say how many
    replicas are needed and when, write the Helm values (fraud.replicas, fraud.autoscaling.minReplicas)
    and print the `kubectl scale` command.  Nothing is applied: Kubernetes (KEDA) does that."""
    import numpy as np

    from npusuite.platform.observability import names as N
    from npusuite.platform.ops.capacity import advise
    from npusuite.platform.ops.forecast import fit_forecast
    from npusuite.platform.ops.prometheus_api import PrometheusClient, PrometheusError
    from npusuite.platform.ops.scaling import kubectl_command, write_values
    from npusuite.platform.settings import OpsSettings

    step_s, hist_s, hor_s = (parse_duration(step, "--step"), parse_duration(history, "--history"),
                             parse_duration(horizon, "--horizon"))
    season_s = None if season.strip() in ("0", "0s", "none") else parse_duration(season, "--season")
    if hist_s / step_s > 11000 or hist_s < 8 * step_s:
        raise UserError("--history must span 8 to 11000 steps")
    promql = load_query or (f"sum(rate({N.FRAUD_TRANSACTIONS}[2m]))"
                            f" + clamp_min(sum(deriv({N.FRAUD_CONSUMER_LAG}[2m])), 0)")
    t_end = parse_time(end)
    with PrometheusClient(prometheus or OpsSettings().prometheus_url) as client:
        found = [s for s in client.query_range(promql, t_end - hist_s, t_end, step_s) if np.isfinite(s.v).any()]
    if not found:
        raise PrometheusError(f"no load data for {promql!r} in the last {history}")
    y = found[0].on_grid(t_end - hist_s, t_end, step_s)
    h = max(int(hor_s // step_s), 1)
    try:
        fc = fit_forecast(y, h, season=None if not season_s else max(int(season_s // step_s), 2), alpha=0.05)
    except ValueError as exc:
        raise UserError(f"cannot forecast the load: {exc}") from None
    t_future = t_end + step_s * np.arange(1, h + 1)
    advice = advise(t_future, fc.upper, current_replicas=replicas, replica_capacity=replica_capacity, limit=limit,
                    max_replicas=max_replicas)
    kubectl = kubectl_command(advice, release=release, namespace=namespace)
    if values_out is not None:
        try:
            write_values(advice, values_out, current_max_replicas=max_replicas)
        except OSError as exc:
            raise UserError(f"cannot write {values_out}: {exc}") from None
    if as_json:
        typer.echo(json.dumps({"scale_up": advice.scale_up, "crossing_at": _iso(advice.crossing_at),
                               "needed_replicas": advice.needed_replicas, "current_replicas": replicas,
                               "threshold_tps": advice.threshold, "peak_forecast_tps": advice.peak_load,
                               "capped": advice.capped, "model": fc.model, "kubectl": kubectl,
                               "values_out": str(values_out) if values_out else None}, indent=2))
        return
    typer.echo(advice.message() + f" [{fc.model}, upper 95% bound]")
    if advice.scale_up:
        typer.echo(f"apply: {kubectl}" + (f"   or: helm upgrade ... -f {values_out}" if values_out else ""))


@app.command()
def graph() -> None:
    """The components, what each depends on, and the series each is judged by."""
    from npusuite.platform.ops.topology import SUITE

    for name in SUITE.order():
        c = SUITE[name]
        typer.echo(f"{c.name}  <- {', '.join(c.depends_on) or '(nothing)'}   {c.description}")
        for s in c.series:
            bad = {"up": ">", "down": "<", "both": "<>"}[s.direction.value]
            unit = f" {s.unit}" if s.unit else ""
            typer.echo(f"    {s.name}: {s.promql}   [static: {bad} {s.static_threshold:g}{unit}]"
                       + ("   (pending: not exported yet)" if s.pending else ""))
