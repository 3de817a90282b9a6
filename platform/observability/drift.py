"""Level c: distribution drift against a training reference, as PSI over a sliding window.

Pure core.  A :class:`BinnedReference` is one variable's bin edges and the
share of the training data in each bin (stored in the model card at training
time).  :class:`DriftWindow` keeps, per batch, the count of live values in
each bin (one ``searchsorted`` + ``bincount`` per variable per batch) and
drops whole batches once the window holds more than ``window`` records (with
``sample_every``, every k-th row of the stream is counted, across batch
boundaries, so the sampled share does not depend on how rows were batched), so the hot
path adds well under a millisecond per batch; PSI itself is computed when
Prometheus scrapes (:class:`DriftCollector`).

PSI = sum over bins of (a - e) * ln(a / e), with ``a`` the live share and
``e`` the reference share, both floored at 1e-4 (an empty bin would be
infinite).  Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.core import GaugeMetricFamily

SHARE_FLOOR = 1e-4
DEFAULT_WINDOW = 10_000
MIN_RECORDS = 500  # below this many records in the window, PSI is noise: not exported


@dataclass(frozen=True)
class BinnedReference:
    """Interior bin edges (k-1 of them, increasing) and the reference share of each of the k bins."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 1} shares, got {len(self.shares)}")
        if list(self.edges) != sorted(set(self.edges)):
            raise ValueError("edges must be distinct and increasing")

    @classmethod
    def fit(cls, values: np.ndarray, bins: int = 10) -> BinnedReference:
        """Quantile bins of ``values`` (ties merged, so a constant feature has one bin)."""
        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return cls((), (1.0,))
        edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)
        return cls(tuple(float(e) for e in edges), tuple(float(c) for c in counts / counts.sum()))

    def to_json(self) -> dict:
        return {"edges": [round(e, 6) for e in self.edges], "shares": [round(s, 6) for s in self.shares]}

    @classmethod
    def from_json(cls, data: Mapping) -> BinnedReference:
        return cls(tuple(float(e) for e in data["edges"]), tuple(float(s) for s in data["shares"]))


def psi(reference_shares: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray) -> float:
    """Population stability index of live ``counts`` per bin against ``reference_shares``."""
    c = np.asarray(counts, dtype=np.float64)
    if c.sum() <= 0:
        return float("nan")
    a = np.maximum(c / c.sum(), SHARE_FLOOR)
    e = np.maximum(np.asarray(reference_shares, dtype=np.float64), SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftWindow:
    """Bin counts of the last ``window`` records (whole batches) for each named variable."""

    def __init__(self, references: Mapping[str, BinnedReference], window: int = DEFAULT_WINDOW,
                 sample_every: int = 1) -> None:
        """``sample_every``: count every k-th row of the stream (a fixed rate, phase carried across batches),
        to bound the cost per row on wide inputs; the window then holds sampled rows.  A per-batch cap was
        tried first: with large batches it left too few rows in the window for PSI to be exported."""
        if sample_every < 1:
            raise ValueError(f"sample_every must be >= 1, got {sample_every}")
        self.sample_every = sample_every
        self._phase = 0  # rows to skip at the start of the next batch
        self.names = list(references)
        self.references = [references[n] for n in self.names]
        self._edges = [np.asarray(r.edges, dtype=np.float64) for r in self.references]
        self._sizes = [len(r.shares) for r in self.references]
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)[:-1]]).astype(np.int64)
        width = max((len(e) for e in self._edges), default=0)
        self._padded = np.full((len(self._edges), max(width, 1)), np.inf)
        for j, edges in enumerate(self._edges):
            self._padded[j, :len(edges)] = edges
        self.window = window
        self._total = np.zeros(sum(self._sizes), dtype=np.int64)
        self._batches: deque[tuple[int, np.ndarray]] = deque()
        self._records = 0
        self._lock = threading.Lock()

    def add(self, columns: np.ndarray) -> None:
        """Count one batch: ``columns`` is (n, variables) in the order of ``names`` (or (n,) for one)."""
        x = np.asarray(columns)
        if x.ndim == 1:
            x = x[:, None]
        n = x.shape[0]
        if n == 0:
            return
        if x.shape[1] != len(self.names):
            raise ValueError(f"batch has {x.shape[1]} columns, the reference {len(self.names)}")
        if self.sample_every > 1:  # every k-th row of the stream
            k, start = self.sample_every, self._phase
            self._phase = (start - n) % k
            x = x[start::k]
            n = x.shape[0]
            if n == 0:
                return
        x = x.astype(np.float64, copy=False)
        # bin = number of edges <= value (searchsorted side="right"), every variable at once: edges are padded
        # with +inf to a (variables, max edges) matrix; one vectorised comparison per edge rank (<= 9)
        idx = np.broadcast_to(self._offsets, x.shape).copy()
        for k in range(self._padded.shape[1]):
            idx += x >= self._padded[:, k]
        counts = np.bincount(idx.ravel(), minlength=len(self._total))
        with self._lock:
            self._total += counts
            self._batches.append((n, counts))
            self._records += n
            while self._batches and self._records - self._batches[0][0] >= self.window:
                old_n, old = self._batches.popleft()
                self._total -= old
                self._records -= old_n

    @property
    def records(self) -> int:
        return self._records

    def psi(self) -> dict[str, float]:
        """PSI per variable over the window (empty below :data:`MIN_RECORDS` records)."""
        with self._lock:
            if self._records < MIN_RECORDS:
                return {}
            total = self._total.copy()
        out = {}
        for name, ref, off, size in zip(self.names, self.references, self._offsets, self._sizes, strict=True):
            out[name] = psi(ref.shares, total[off:off + size])
        return out


class DriftCollector:
    """Exports the PSI of one window: a per-variable gauge (``label`` = variable) or, for one variable, a
    plain gauge; plus the window's record count.  ``constant`` labels (e.g. ``line``) go on every series."""

    def __init__(self, window_of, psi_name: str, records_name: str | None = None, label: str | None = None,
                 constant: Mapping[str, str] | None = None, help_text: str = "PSI against the training reference."):
        self.window_of = window_of  # a callable: the current DriftWindow, or None (no reference)
        self.psi_name = psi_name
        self.records_name = records_name
        self.label = label
        self.constant = dict(constant or {})
        self.help_text = help_text

    def collect(self) -> Iterator[GaugeMetricFamily]:
        window: DriftWindow | None = self.window_of()
        if window is None:
            return
        keys = list(self.constant)
        values = [self.constant[k] for k in keys]
        if self.records_name:
            fam = GaugeMetricFamily(self.records_name, "Records in the drift window.", labels=keys)
            fam.add_metric(values, window.records)
            yield fam
        psis = window.psi()
        if not psis:
            return
        fam = GaugeMetricFamily(self.psi_name, self.help_text, labels=keys + ([self.label] if self.label else []))
        for name, value in psis.items():
            fam.add_metric(values + ([name] if self.label else []), value)
        yield fam
