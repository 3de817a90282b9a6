"""PNG of each flagged series: history, the forecast band over the judged window, the flagged points."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from npusuite.platform.ops.anomalies import SeriesVerdict


def _times(t: np.ndarray) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(float(x), dt.UTC) for x in t]


def plot_verdict(v: SeriesVerdict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=100)
    if v.history is not None and v.history_t is not None and v.history.size:
        ax.plot(_times(v.history_t), v.history, color="0.55", lw=0.9, label="history (fit)")
    ax.plot(_times(v.t), v.values, color="tab:blue", lw=1.1, label="observed")
    if v.forecast is not None:
        ax.fill_between(_times(v.t), v.forecast.lower, v.forecast.upper, color="tab:orange", alpha=0.25,
                        label=f"forecast band ({v.forecast.model})")
        ax.plot(_times(v.t), v.forecast.mean, color="tab:orange", lw=0.9, ls="--")
    else:
        ax.axhline(v.series.static_threshold, color="tab:red", lw=0.9, ls="--", label="static threshold")
    if v.flagged.any():
        ax.scatter(_times(v.t[v.flagged]), v.values[v.flagged], color="tab:red", s=14, zorder=3, label="flagged")
    if v.onset is not None:
        ax.axvline(_times(np.array([v.onset]))[0], color="tab:red", lw=0.8, alpha=0.6)
    ax.set_title(f"{v.component} / {v.series.name} ({v.method})", fontsize=10)
    ax.set_ylabel(v.series.unit or "value")
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(verdicts: list[SeriesVerdict], out_dir: Path) -> list[Path]:
    """One PNG per flagged series; returns their paths."""
    paths = []
    for v in verdicts:
        if v.anomalous:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{v.component}__{v.series.name}") + ".png"
            paths.append(plot_verdict(v, Path(out_dir) / name))
    return paths
