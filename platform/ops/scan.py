"""One pass over the suite: query every key series from Prometheus, detect, rank.

The history ``[end - history - window, end - window)`` trains the forecast; the window
``[end - window, end]`` is judged.  Series that return nothing are listed as missing (a pending
metric, or a component that is not running); when *no* series returns data the scan fails with
one line, since there is then nothing to judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npusuite.platform.ops.anomalies import SeriesVerdict, detect_forecast, detect_static
from npusuite.platform.ops.prometheus_api import PrometheusClient, PrometheusError
from npusuite.platform.ops.root_cause import RankedComponent, rank
from npusuite.platform.ops.topology import Component, Direction, KeySeries, Topology


@dataclass(frozen=True)
class ScanSettings:
    end: float
    history_s: float
    window_s: float
    step_s: float
    season_s: float | None  # None: no season
    consecutive: int = 2
    alpha: float = 0.01
    method: str = "forecast"  # or "static"

    def __post_init__(self) -> None:
        if self.step_s <= 0 or self.window_s < self.step_s or self.history_s < 8 * self.step_s:
            raise ValueError("need step > 0, window >= step and history >= 8 steps")
        if self.method not in ("forecast", "static"):
            raise ValueError(f"method must be forecast or static, not {self.method!r}")

    @property
    def season_steps(self) -> int | None:
        return None if not self.season_s else max(int(round(self.season_s / self.step_s)), 2)


@dataclass(frozen=True)
class ScanResult:
    verdicts: list[SeriesVerdict]
    ranking: list[RankedComponent]
    missing: list[str] = field(default_factory=list)  # "component/series" with no data

    @property
    def anomalous(self) -> list[SeriesVerdict]:
        return [v for v in self.verdicts if v.anomalous]


def grid(settings: ScanSettings) -> tuple[np.ndarray, int]:
    start = settings.end - settings.window_s - settings.history_s
    n = int(np.floor((settings.end - start) / settings.step_s + 1e-9)) + 1
    t = start + settings.step_s * np.arange(n)
    split = int(np.searchsorted(t, settings.end - settings.window_s))
    return t, split


def judge(component: str, key: KeySeries, t: np.ndarray, y: np.ndarray, split: int,
          settings: ScanSettings) -> SeriesVerdict:
    if settings.method == "static":
        return detect_static(component, key, t, y, split, consecutive=settings.consecutive)
    return detect_forecast(component, key, t, y, split, season=settings.season_steps,
                           consecutive=settings.consecutive, alpha=settings.alpha)


def scan(client: PrometheusClient, topology: Topology, settings: ScanSettings,
         extra: list[tuple[Component, KeySeries]] | None = None) -> ScanResult:
    t, split = grid(settings)
    verdicts, missing = [], []
    for comp, key in [*topology.all_series(), *(extra or [])]:
        found = client.query_range(key.promql, float(t[0]), float(t[-1]), settings.step_s)
        finite = [s for s in found if np.isfinite(s.v).any()]
        if not finite:
            missing.append(f"{comp.name}/{key.name}")
            continue
        y = finite[0].on_grid(float(t[0]), float(t[-1]), settings.step_s)
        if not np.isfinite(y[split:]).any():
            missing.append(f"{comp.name}/{key.name}")
            continue
        verdicts.append(judge(comp.name, key, t, y, split, settings))
    if not verdicts:
        raise PrometheusError(
            f"no data for any key series between {t[0]:.0f} and {t[-1]:.0f} (is Prometheus scraping the suite? "
            f"`npusuite ops graph` lists the series)")
    names = {c.name for c in topology.components}
    ranking = rank(topology, [v for v in verdicts if v.component in names])
    return ScanResult(verdicts, ranking, missing)


def adhoc(promql: str, direction: Direction, threshold: float, min_band: float) -> tuple[Component, KeySeries]:
    """An ad-hoc series (``--query``) judged like the declared ones; it takes no part in the ranking."""
    key = KeySeries("query", promql, direction, threshold, min_band)
    return Component("query", (), (key,)), key
