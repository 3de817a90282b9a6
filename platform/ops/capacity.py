"""Load against capacity: when will the forecast load cross ``limit`` (0.8) of what the current
scorer replicas sustain, and how many replicas keep it under?

Pure maths on arrays.  ``replica_capacity`` is what ONE scorer sustains (transactions/s; measure
it with bench/fraud_stream.py on the target hardware).  The crossing uses the forecast's upper
bound when given (a prudent plan), else its mean.  Replicas are capped at ``max_replicas`` (the
chart's ``fraud.partitions``: a scorer beyond the partition count owns nothing); the advice says
when the cap binds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScalingAdvice:
    current_replicas: int
    replica_capacity: float
    limit: float
    threshold: float  # limit * current_replicas * replica_capacity
    peak_load: float  # the largest forecast load over the horizon (bound used)
    crossing_at: float | None  # unix time the forecast first crosses `threshold`; None: it does not
    needed_replicas: int  # keeps peak_load <= limit * needed * capacity (>= current when crossing)
    max_replicas: int | None
    capped: bool  # needed replicas were more than max_replicas

    @property
    def scale_up(self) -> bool:
        return self.crossing_at is not None and self.needed_replicas > self.current_replicas

    def message(self) -> str:
        import datetime as dt

        if self.crossing_at is None:
            return (f"no scaling needed: forecast peak {self.peak_load:.1f}/s stays under {self.limit:.0%} of "
                    f"{self.current_replicas} replica(s) x {self.replica_capacity:g}/s = {self.threshold:.1f}/s")
        when = dt.datetime.fromtimestamp(self.crossing_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        text = (f"load crosses {self.limit:.0%} of {self.current_replicas} replica(s) ({self.threshold:.1f}/s) at "
                f"{when}; forecast peak {self.peak_load:.1f}/s needs {self.needed_replicas} replica(s)")
        if self.capped:
            text += f" (capped at max {self.max_replicas}: raise fraud.partitions to go further)"
        return text


def advise(t: np.ndarray, load: np.ndarray, *, current_replicas: int, replica_capacity: float,
           limit: float = 0.8, max_replicas: int | None = None) -> ScalingAdvice:
    """``t``/``load``: the forecast horizon (unix seconds, transactions/s)."""
    if current_replicas < 1:
        raise ValueError("current replicas must be >= 1")
    if not replica_capacity > 0:
        raise ValueError("replica capacity must be > 0")
    if not 0 < limit <= 1:
        raise ValueError("limit must be in (0, 1]")
    load = np.asarray(load, dtype=float)
    if load.size == 0 or not np.isfinite(load).any():
        raise ValueError("no forecast load")
    threshold = limit * current_replicas * replica_capacity
    peak = float(np.nanmax(load))
    over = np.flatnonzero(load > threshold)
    crossing = float(t[over[0]]) if over.size else None
    needed = max(current_replicas, math.ceil(peak / (limit * replica_capacity))) if crossing is not None \
        else current_replicas
    capped = max_replicas is not None and needed > max_replicas
    if capped:
        needed = int(max_replicas)
    return ScalingAdvice(current_replicas, replica_capacity, limit, threshold, peak, crossing, needed,
                         max_replicas, capped)
