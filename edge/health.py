"""The health check an update must pass before its slot is committed.

Rules, in order (the first failure is the verdict):

1. **load**: the inspector factory loads the model from the slot's bundle
   (``BUNDLE/model/``; any exception fails the check);
2. **score**: every sample frame is inspected; each verdict must have a
   finite score and threshold (NaN/inf mean a broken model);
3. **latency**: the p95 of the per-frame wall time, after ``warmup_frames``,
   must be at most ``max_p95_latency_ms``;
4. **agreement** (optional): with ``expected_ng`` given (one bool per sample
   frame: is this a known defect?), at least ``min_agreement`` of the verdicts
   must match it, so a model that loads and runs but says nonsense is caught.

The inspector is any object with ``inspect(frame) -> Inspection`` (the
inspection pipeline's engine); the factory is injected so the agent and the
tests share this code.

The sample frames are either fixed (a sequence, e.g. ``--health-samples``)
or a :data:`SampleSource` called with the candidate's model folder: by
default the agent checks each bundle on its own calibration images
(:func:`npusuite.edge.pipeline.bundle_samples`: good parts, expected OK).  A
bundle without usable samples fails the check (rule 2's "no samples").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)


class Inspector(Protocol):
    def inspect(self, frame: Any) -> Any: ...


#: Loads an inspector from a model folder (a bundle's ``model/``, or any model directory).
InspectorFactory = Callable[[Path], Inspector]

#: Sample frames (and their expected verdicts, or None) for a model folder; raises when it has none.
SampleSource = Callable[[Path], tuple[Sequence[Any], Sequence[bool] | None]]


@dataclass(frozen=True, slots=True)
class HealthConfig:
    max_p95_latency_ms: float = 2000.0
    warmup_frames: int = 1
    min_agreement: float = 0.75


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    reason: str
    frames: int = 0
    p95_latency_ms: float | None = None
    agreement: float | None = None
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class HealthCheck:
    """Runs the rules above against a bundle folder; never raises for a bad model."""

    def __init__(self, factory: InspectorFactory, frames: Sequence[Any] | SampleSource,
                 config: HealthConfig | None = None, expected_ng: Sequence[bool] | None = None) -> None:
        if not callable(frames):
            if not frames:
                raise ValueError("a health check needs at least one sample frame")
            if expected_ng is not None and len(expected_ng) != len(frames):
                raise ValueError("expected_ng must have one entry per sample frame")
            frames = list(frames)
        self.factory = factory
        #: fixed frames, or a SampleSource asked per candidate
        self.frames = frames
        self.expected_ng = list(expected_ng) if expected_ng is not None else None
        self.config = config or HealthConfig()

    def samples(self, model_dir: Path) -> tuple[list[Any], list[bool] | None]:
        """The frames (and expected verdicts) this check uses for the model at ``model_dir``."""
        if not callable(self.frames):
            return self.frames, self.expected_ng
        frames, expected = self.frames(Path(model_dir))
        if not frames:
            raise ValueError(f"no sample frames for {model_dir}")
        return list(frames), list(expected) if expected is not None else None

    def run(self, bundle_dir: Path) -> tuple[HealthReport, Inspector | None]:
        """Returns the report and, when it passed, the loaded inspector (ready to serve)."""
        try:
            inspector = self.factory(Path(bundle_dir) / "model")
        except Exception as exc:
            logger.warning("health check: model failed to load from %s: %s", bundle_dir, exc)
            return HealthReport(False, f"load failed: {type(exc).__name__}: {exc}"), None
        try:
            frames, expected_ng = self.samples(Path(bundle_dir) / "model")
        except Exception as exc:
            logger.warning("health check: no samples for %s: %s", bundle_dir, exc)
            return HealthReport(False, f"no samples: {type(exc).__name__}: {exc}"), None
        latencies: list[float] = []
        verdicts: list[bool] = []
        model = None
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            try:
                result = inspector.inspect(frame)
            except Exception as exc:
                return HealthReport(False, f"inspect failed on sample {i}: {type(exc).__name__}: {exc}", i), None
            elapsed_ms = (time.perf_counter() - t0) * 1000
            if i >= min(self.config.warmup_frames, len(frames) - 1):
                latencies.append(elapsed_ms)
            score, threshold = float(result.score), float(result.threshold)
            if not (math.isfinite(score) and math.isfinite(threshold)):
                return HealthReport(False, f"non-finite score {score} / threshold {threshold} on sample {i}",
                                    i, model=result.model), None
            verdicts.append(bool(result.defective))
            model = result.model
        p95 = float(np.percentile(latencies, 95))
        if p95 > self.config.max_p95_latency_ms:
            return HealthReport(False, f"p95 latency {p95:.1f} ms > {self.config.max_p95_latency_ms:.1f} ms",
                                len(verdicts), p95, model=model), None
        agreement = None
        if expected_ng is not None:
            agreement = sum(v == e for v, e in zip(verdicts, expected_ng, strict=True)) / len(verdicts)
            if agreement < self.config.min_agreement:
                return HealthReport(False, f"verdicts agree with known samples {agreement:.0%} < "
                                    f"{self.config.min_agreement:.0%}", len(verdicts), p95, agreement, model), None
        return HealthReport(True, "ok", len(verdicts), p95, agreement, model), inspector
