"""Flag the points of a key series that fall outside its forecast band (or, the baseline, beyond
its static threshold), and say when the anomaly began.

A series is anomalous when ``consecutive`` points in a row are flagged (default 2: one stray
scrape does not page anybody); its onset is the first point of that run.  Only the bad side
counts (``Direction``): a latency *below* its band is not an incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npusuite.platform.ops.forecast import Forecast, fit_forecast
from npusuite.platform.ops.topology import Direction, KeySeries


@dataclass(frozen=True)
class SeriesVerdict:
    """One key series over the evaluated window: its values, band (None for static), flags, onset."""

    component: str
    series: KeySeries
    t: np.ndarray = field(repr=False)  # evaluated timestamps (unix s)
    values: np.ndarray = field(repr=False)
    flagged: np.ndarray = field(repr=False)  # bool per point
    onset: float | None  # first point of the first run of `consecutive` flags
    score: float  # largest excess beyond the band, in band half-widths (static: in thresholds)
    method: str  # "forecast ETS(...)" or "static"
    forecast: Forecast | None = field(default=None, repr=False)
    history_t: np.ndarray | None = field(default=None, repr=False)
    history: np.ndarray | None = field(default=None, repr=False)
    note: str = ""

    @property
    def anomalous(self) -> bool:
        return self.onset is not None


def outside(values: np.ndarray, lower: np.ndarray, upper: np.ndarray, direction: Direction) -> np.ndarray:
    """Points beyond the band on the bad side (NaN never flagged)."""
    v = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        hi = v > upper
        lo = v < lower
    bad = hi if direction is Direction.UP else lo if direction is Direction.DOWN else hi | lo
    return bad & np.isfinite(v)


def first_run(flags: np.ndarray, consecutive: int) -> int | None:
    """Index where the first run of ``consecutive`` True values starts."""
    if consecutive < 1:
        raise ValueError("consecutive must be >= 1")
    run = 0
    for i, f in enumerate(np.asarray(flags, dtype=bool)):
        run = run + 1 if f else 0
        if run >= consecutive:
            return i - consecutive + 1
    return None


def detect_forecast(component: str, key: KeySeries, t: np.ndarray, y: np.ndarray, split: int, *,
                    season: int | None, consecutive: int = 2, alpha: float = 0.01) -> SeriesVerdict:
    """Fit on ``y[:split]``, forecast ``y[split:]``, flag the points outside the band."""
    hist, ev, tev = y[:split], y[split:], t[split:]
    if ev.size == 0:
        raise ValueError("nothing to evaluate (the evaluated window is empty)")
    try:
        fc = fit_forecast(hist, ev.size, season=season, alpha=alpha, min_band=key.min_band)
    except ValueError as exc:
        return SeriesVerdict(component, key, tev, ev, np.zeros(ev.size, bool), None, 0.0, "forecast",
                             history_t=t[:split], history=hist, note=str(exc))
    flags = outside(ev, fc.lower, fc.upper, key.direction)
    start = first_run(flags, consecutive)
    half = np.maximum((fc.upper - fc.lower) / 2.0, 1e-12)
    excess = np.where(flags, np.abs(ev - fc.mean) / half, 0.0)
    return SeriesVerdict(component, key, tev, ev, flags, None if start is None else float(tev[start]),
                         float(np.nanmax(excess)) if flags.any() else 0.0, f"forecast {fc.model}", fc,
                         t[:split], hist)


def detect_static(component: str, key: KeySeries, t: np.ndarray, y: np.ndarray, split: int, *,
                  consecutive: int = 2) -> SeriesVerdict:
    """The baseline: flag the points of ``y[split:]`` beyond the series' static threshold."""
    ev, tev = y[split:], t[split:]
    thr = np.full(ev.size, key.static_threshold)
    if key.direction is Direction.DOWN:
        flags = outside(ev, thr, np.full(ev.size, np.inf), Direction.DOWN)
    else:
        flags = outside(ev, np.full(ev.size, -np.inf), thr, Direction.UP)
    start = first_run(flags, consecutive)
    denom = abs(key.static_threshold) or 1.0
    score = float(np.nanmax(np.where(flags, np.abs(ev - key.static_threshold) / denom, 0.0))) if flags.any() else 0.0
    return SeriesVerdict(component, key, tev, ev, flags, None if start is None else float(tev[start]), score,
                         "static", history_t=t[:split], history=y[:split])
