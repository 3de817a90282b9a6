"""Known series into a Prometheus TSDB: OpenMetrics text -> ``promtool tsdb create-blocks-from openmetrics``.

For tests and bench/aiops.py: the real Prometheus server then serves them over its HTTP API
(:class:`npusuite.platform.observability.prometheus_server.PrometheusServer` with the same
work folder; its TSDB is ``<workdir>/tsdb``).  Keep timestamps within the server's retention
(1 day back from now), or Prometheus drops the blocks at start.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npusuite.platform.errors import UserError


@dataclass(frozen=True)
class Sample:
    """One series: sample name as exposed (``x_total``, ``x_bucket``...), labels, times (s), values."""

    name: str
    labels: dict[str, str]
    t: np.ndarray = field(repr=False)
    v: np.ndarray = field(repr=False)


def _family(name: str) -> tuple[str, str]:
    for suffix, kind in (("_total", "counter"), ("_bucket", "histogram"), ("_count", "histogram"),
                         ("_sum", "histogram")):
        if name.endswith(suffix):
            return name.removesuffix(suffix), kind
    return name, "gauge"


def write_openmetrics(series: Iterable[Sample], path: Path) -> Path:
    """Group by metric family, write every sample with its timestamp, end with ``# EOF``."""
    families: dict[str, tuple[str, list[Sample]]] = {}
    for s in series:
        fam, kind = _family(s.name)
        families.setdefault(fam, (kind, []))[1].append(s)
    path = Path(path)
    with path.open("w") as f:
        for fam, (kind, members) in families.items():
            f.write(f"# TYPE {fam} {kind}\n")
            for s in members:
                lab = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                head = f"{s.name}{{{lab}}}" if lab else s.name
                for t, v in zip(s.t.tolist(), s.v.tolist(), strict=True):
                    if np.isfinite(v):
                        f.write(f"{head} {v!r} {t:.3f}\n")
        f.write("# EOF\n")
    return path


def create_blocks(openmetrics: Path, tsdb_dir: Path, *, promtool: str | None = None) -> None:
    binary = promtool or shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(binary).is_file():
        raise UserError(f"no promtool at {binary} (deploy/system-deps.sh installs Debian's prometheus)")
    Path(tsdb_dir).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([binary, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb_dir)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise UserError(f"promtool could not backfill {openmetrics}: {(proc.stderr or proc.stdout).strip()[-800:]}")
