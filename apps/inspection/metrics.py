"""Prometheus metrics of a live inspection line (names: :mod:`npusuite.platform.observability.names`).

Business: frames, verdicts, errors, frames dropped before inspection, capture
to verdict time and the verdicts that came after the reject window closed
(SLA attainment = 1 - late / frames).  Framework: inspector time per batch.
Model: the anomaly score histogram and the PSI of the scores in a sliding
window against the card's ``holdout_scores`` (held-back good images, the
calibration reference); a card with fewer than 20 of them gets no PSI.
Every series carries ``line``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from npusuite.inspection.records import Inspection
from npusuite.platform.observability import names as N
from npusuite.platform.observability.drift import BinnedReference, DriftCollector, DriftWindow
from npusuite.platform.observability.names import counter_base as _c

logger = logging.getLogger(__name__)

_SECONDS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_SCORE = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0)  # multiples of the threshold
MIN_REFERENCE_SCORES = 20


class LineMetrics:
    def __init__(self, registry: CollectorRegistry, line: str, reject_window_s: float, drift_window: int = 2000):
        self.registry = registry
        self.line = line
        self.reject_window_s = reject_window_s
        self.drift_window = drift_window
        r, lbl = registry, ["line"]
        self.frames = Counter(_c(N.INSPECTION_FRAMES), "Frames inspected.", lbl, registry=r).labels(line)
        decisions = Counter(_c(N.INSPECTION_DECISIONS), "Verdicts by decision (ok, ng).", lbl + ["decision"],
                            registry=r)
        self.ok, self.ng = decisions.labels(line, "ok"), decisions.labels(line, "ng")
        errors = Counter(_c(N.INSPECTION_ERRORS), "Failures by stage: inspect (frames with no verdict), archive "
                         "(NG parts not archived), plc (reject signals not sent).", lbl + ["stage"], registry=r)
        self.errors = errors.labels(line, "inspect")
        self.archive_errors = errors.labels(line, "archive")
        self.plc_errors = errors.labels(line, "plc")
        self.dropped = Counter(_c(N.INSPECTION_DROPPED_FRAMES), "Frames the source dropped before inspection.",
                               lbl, registry=r).labels(line)
        self.late = Counter(_c(N.INSPECTION_LATE_DECISIONS), "Verdicts after the part's reject window closed.",
                            lbl, registry=r).labels(line)
        self.decision_seconds = Histogram(N.INSPECTION_DECISION_SECONDS, "Capture to verdict, per frame.", lbl,
                                          buckets=_SECONDS, registry=r).labels(line)
        self.forward_seconds = Histogram(N.INSPECTION_FORWARD_SECONDS, "Inspector time per batch of frames.", lbl,
                                         buckets=_SECONDS, registry=r).labels(line)
        self.score = Histogram(N.INSPECTION_SCORE, "Anomaly score per frame, in multiples of the model's "
                               "threshold (>= 1 is NG).", lbl, buckets=_SCORE, registry=r).labels(line)
        self._ref: str | None = None
        self._window: DriftWindow | None = None
        r.register(DriftCollector(lambda: self._window, N.INSPECTION_SCORE_PSI, constant={"line": line},
                                  help_text="PSI of the window's anomaly scores against the calibration good images."))

    def follow_model(self, ref: str, holdout_scores: Sequence[float]) -> None:
        """A new model version: a new drift window from its card's held-back good-image scores."""
        if ref == self._ref:
            return
        self._ref = ref
        if len(holdout_scores) < MIN_REFERENCE_SCORES:
            logger.warning("model %s has %d held-back scores (< %d): no score PSI", ref, len(holdout_scores),
                           MIN_REFERENCE_SCORES)
            self._window = None
            return
        self._window = DriftWindow({"score": BinnedReference.fit(np.asarray(holdout_scores), bins=10)},
                                   self.drift_window)

    def observe(self, results: Sequence[Inspection], forward_s: float, now: float) -> None:
        """One inspected batch: ``now`` on the frames' clock (wall time) when the verdicts were signalled."""
        self.forward_seconds.observe(forward_s)
        scores = np.fromiter((r.score for r in results), np.float64, len(results))
        for r in results:
            self.frames.inc()
            (self.ng if r.defective else self.ok).inc()
            waited = max(0.0, now - r.frame.timestamp)
            self.decision_seconds.observe(waited)
            if waited > self.reject_window_s:
                self.late.inc()
            if r.threshold > 0:
                self.score.observe(r.score / r.threshold)
        if self._window is not None and len(scores):
            self._window.add(scores)
