"""The live inspection line: source -> engine -> reject signal, NG archive, review app, results.

Rules:

* Models are served by the platform's :class:`~npusuite.platform.engine.ModelEngine`
  (a repository reference such as ``washer`` = ``washer@production``, or a
  folder) with the :class:`~npusuite.inspection.adapter.InspectionAdapter`.
  Following an alias, the engine loads a new version beside the old one,
  builds and warms its inspector (a version that cannot inspect is refused
  there and the old one keeps inspecting: no part is failed by a bad
  promote) and switches atomically; each batch of frames runs under
  one engine *lease*, so it finishes on the version it started with and no
  frame is lost or inspected twice because of a swap.  Each result names the
  ``name@version`` that produced it.
* Frames are taken from the source's bounded queue (up to ``max_batch`` at a
  time, one forward pass).  A gap in ``seq`` means frames the source dropped;
  they are reported to the reject signaller (which rejects them under
  fail-safe) and counted.
* Per frame, in order: the part is opened with the reject signaller (its
  window starts at the capture time), inspected, its verdict signalled, then,
  for NG only, archived and queued for the review app; finally the result
  goes to the sink (e.g. a JSONL writer).  An exception while inspecting is
  logged and counted, and the frames get no verdict (fail-safe rejects them).
* With :class:`~npusuite.inspection.metrics.LineMetrics`, each batch is counted
  after its verdicts are signalled (see that module for the metrics).
* With a challenger (``--shadow``, :mod:`npusuite.inspection.shadow`), each
  batch is inspected by it too, after all of the above; it changes no
  verdict, reject, archive record or result, and its agreement with the
  champion is logged with the line's progress.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npusuite.inspection.archive import NgArchive
from npusuite.inspection.inspector import Inspector
from npusuite.inspection.metrics import LineMetrics
from npusuite.inspection.records import Frame, Inspection
from npusuite.inspection.reject import RejectSignaller
from npusuite.inspection.review import ReviewPoster
from npusuite.inspection.shadow import ShadowInspector
from npusuite.inspection.source import FrameSource

logger = logging.getLogger(__name__)


class EngineInspectors:
    """Inspectors over whatever version the platform engine serves right now.

    The engine runs :class:`~npusuite.inspection.adapter.InspectionAdapter`: each version's
    :class:`Inspector` (card checked, int8 quantised once, warmed on a calibration image) is built
    BEFORE the engine switches to it, so a version that cannot inspect is refused and never reaches
    a frame."""

    def __init__(self, engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, ref: str | Path, root: Path | None = None, device: str = "cpu", precision: str = "fp32",
             follow_alias: bool = True, min_box_area_px: int = 1) -> EngineInspectors:
        """Open ``ref`` through the platform engine.  Raises UserError (unknown model, bad files, no card,
        an input the net cannot take)."""
        from npusuite.inspection.adapter import InspectionAdapter
        from npusuite.platform.engine import ModelEngine

        adapter = InspectionAdapter(precision, min_box_area_px)
        return cls(ModelEngine.open(ref, root=root, follow_alias=follow_alias, device=device, adapter=adapter))

    @contextlib.contextmanager
    def lease(self) -> Iterator[Inspector]:
        """The current version's inspector, held for the duration of the ``with`` block."""
        with self.engine.lease() as lease:
            yield lease.app

    @property
    def ref(self) -> str | None:
        with self.engine.lease() as lease:
            return lease.app.ref

    def close(self) -> None:
        self.engine.close()


@dataclass(frozen=True)
class LineConfig:
    line: str = "line-1"
    max_batch: int = 1
    log_every_s: float = 10.0


@dataclass
class LineStats:
    frames: int = 0
    ng: int = 0
    errors: int = 0
    dropped_seen: int = 0
    models: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms[-10000:] or [0.0])
        return {"frames": self.frames, "ng": self.ng, "ok": self.frames - self.ng, "errors": self.errors,
                "dropped_before_inspection": self.dropped_seen, "models": dict(self.models),
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 2),
                "latency_ms_p99": round(float(np.percentile(lat, 99)), 2)}


class InspectionLine:
    """Runs one line until the source ends or :meth:`stop` is called."""

    def __init__(self, source: FrameSource, inspectors: EngineInspectors, cfg: LineConfig = LineConfig(),
                 reject: RejectSignaller | None = None, archive: NgArchive | None = None,
                 review: ReviewPoster | None = None, sink: Callable[[Inspection], None] | None = None,
                 shadow: ShadowInspector | None = None, metrics: LineMetrics | None = None) -> None:
        self.source = source
        self.inspectors = inspectors
        self.cfg = cfg
        self.reject = reject
        self.archive = archive
        self.review = review
        self.sink = sink
        self.shadow = shadow
        self.metrics = metrics
        if metrics is not None and reject is not None:
            reject.on_send_error = metrics.plc_errors.inc
        self.stats = LineStats()
        self._stop = threading.Event()
        self._last_seq: int | None = None

    def stop(self) -> None:
        self._stop.set()

    def _take(self) -> list[Frame]:
        first = self.source.get(timeout_s=0.5)
        if first is None:
            return []
        frames = [first]
        while len(frames) < self.cfg.max_batch:
            nxt = self.source.get(timeout_s=0)
            if nxt is None:
                break
            frames.append(nxt)
        return frames

    def _note_gaps(self, frames: list[Frame]) -> None:
        for f in frames:
            if self._last_seq is not None and f.seq > self._last_seq + 1:
                missing = list(range(self._last_seq + 1, f.seq))
                self.stats.dropped_seen += len(missing)
                if self.metrics is not None:
                    self.metrics.dropped.inc(len(missing))
                if self.reject is not None:
                    self.reject.dropped(missing, f.timestamp)
            self._last_seq = f.seq

    def process(self, frames: list[Frame]) -> list[Inspection]:
        """Inspect and act on one batch (see the module rules)."""
        self._note_gaps(frames)
        if self.reject is not None:
            for f in frames:
                self.reject.open_part(f.seq, f.timestamp)
        started = time.perf_counter()
        try:
            with self.inspectors.lease() as inspector:
                results = inspector.inspect_batch(frames)
                if self.metrics is not None:
                    self.metrics.follow_model(inspector.ref, inspector.model.card.holdout_scores)
        except Exception:
            self.stats.errors += len(frames)
            if self.metrics is not None:
                self.metrics.errors.inc(len(frames))
            logger.exception("inspecting frames %s failed; no verdict for them", [f.seq for f in frames])
            return []
        forward_s = time.perf_counter() - started
        for r in results:
            if self.reject is not None:
                self.reject.verdict(r)
            self.stats.frames += 1
            self.stats.models[r.model] += 1
            self.stats.latencies_ms.append(r.latency_ms)
            if r.defective:
                self.stats.ng += 1
                if self.archive is not None:
                    try:
                        self.archive.save(r)
                    except OSError as exc:
                        logger.error("archiving NG part %d failed: %s", r.frame.seq, exc)
                        if self.metrics is not None:
                            self.metrics.archive_errors.inc()
                if self.review is not None:
                    self.review.submit(r)
            if self.sink is not None:
                self.sink(r)
        del self.stats.latencies_ms[:-10000]
        if self.metrics is not None:  # verdicts are signalled: capture-to-verdict time is known
            self.metrics.observe(results, forward_s, time.time())
        if self.shadow is not None:  # after every action: the challenger never delays or changes a verdict
            self.shadow.compare(frames, results)
        return results

    def run(self, max_frames: int | None = None) -> LineStats:
        """Inspect until the source finishes, ``max_frames`` are done, or :meth:`stop`."""
        last_log = time.monotonic()
        while not self._stop.is_set():
            frames = self._take()
            if not frames:
                if self.source.stats().finished:
                    break
                continue
            self.process(frames)
            if time.monotonic() - last_log >= self.cfg.log_every_s:
                last_log = time.monotonic()
                logger.info("line %s: %s; source %s%s", self.cfg.line, self.stats.summary(), self.source.stats(),
                            f"; shadow {self.shadow.agreement.summary()}" if self.shadow is not None else "")
            if max_frames is not None and self.stats.frames >= max_frames:
                break
        return self.stats
