"""The edge agent: frames -> inspector -> durable outbox -> actions, with sync and updates beside it.

Rules, per frame, in this order:

1. compute the result id (:func:`npusuite.edge.results.result_id`); for a
   replayable source an id the outbox already knows is skipped *before*
   inspection (a restarted agent does not redo or re-signal old frames);
2. inspect under a *lease* of the current inspector (an update swaps it
   atomically between two frames, never during one: the frame finishes on
   the version it started with) and build the result record; if
   either raises (a broken model, a NaN score the record refuses), the frame
   is counted in ``inspect_errors`` and gets no verdict, like a part the
   inspection line could not inspect (a fail-safe reject signaller rejects
   it when its window closes); the line never stops for it;
3. ``outbox.put`` commits the result durably;
4. only then run the actions (reject signal, archive, ...), and nudge the
   syncer.  A crash between 3 and 4 can lose an action, never a result.

The agent's boot number (a durable counter) keeps ids of live sources unique
across restarts.  Models come and go through an :class:`Inspectors` (one
swap mechanism for the first load and every update): ``install(model_dir,
label, check)`` builds the candidate, runs ``check`` (the update's health
check) on it and switches only when both pass.  ``--pipeline inspection``
uses :class:`~npusuite.edge.pipeline.EngineInspectors` (a platform
``ModelEngine`` with the ``InspectionAdapter``); :class:`InspectorHolder` is
the plain holder for inspectors that are no platform model (``--pipeline
sim``).  The agent takes its collaborators through the constructor:
the inspection pipeline, the outbox, the syncer, the update manager and the
fleet client are all optional parts around one loop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from npusuite.edge.health import HealthReport, Inspector, InspectorFactory
from npusuite.edge.outbox import Outbox, PutOutcome
from npusuite.edge.results import ingest_payload, result_id

logger = logging.getLogger(__name__)


#: The update's health check of a built candidate (rules 2-4 of :mod:`npusuite.edge.health`).
CandidateCheck = Callable[[Inspector], HealthReport]


class Inspectors(Protocol):
    """Where the agent's inspector comes from; ``ready`` is set once one is installed."""

    ready: threading.Event

    def lease(self) -> AbstractContextManager[tuple[Inspector | None, str | None]]:
        """The current inspector (None: none yet) and the ``name@version`` its results report (None: its own),
        held for one frame."""
        ...

    def install(self, model_dir: Path, label: str | None = None, check: CandidateCheck | None = None) -> HealthReport:
        """Build the candidate from ``model_dir``, run ``check`` on it, switch to it only if both pass.  Never
        raises for a bad model: a failed report says why, and the current inspector stays."""
        ...

    def close(self) -> None:
        """Free the models (at shutdown)."""
        ...


class InspectorHolder:
    """The plain holder: the inspector the line runs now; ``swap``/``install`` replace it between frames."""

    def __init__(self, inspector: Inspector | None = None, label: str | None = None,
                 factory: InspectorFactory | None = None) -> None:
        self._inspector = inspector
        self.label = label
        self.factory = factory
        self._lock = threading.Lock()
        self.ready = threading.Event()
        if inspector is not None:
            self.ready.set()

    def get(self) -> tuple[Inspector | None, str | None]:
        with self._lock:
            return self._inspector, self.label

    @contextlib.contextmanager
    def lease(self) -> Iterator[tuple[Inspector | None, str | None]]:
        yield self.get()  # a swap replaces the reference; the frame keeps the inspector it was given

    def install(self, model_dir: Path, label: str | None = None, check: CandidateCheck | None = None) -> HealthReport:
        if self.factory is None:
            raise RuntimeError("this InspectorHolder has no factory to build inspectors with")
        try:
            candidate = self.factory(Path(model_dir))
        except Exception as exc:
            logger.warning("model failed to load from %s: %s", model_dir, exc)
            return HealthReport(False, f"load failed: {type(exc).__name__}: {exc}")
        report = check(candidate) if check is not None else HealthReport(True, "ok")
        if report.ok:
            self.swap(candidate, label)
        return report

    def close(self) -> None:
        """Nothing to free: a plain inspector is garbage like any object."""

    def swap(self, inspector: Inspector, label: str | None = None) -> None:
        """``label``: the ``name@version`` results report (e.g. the signed bundle's), else the inspector's own."""
        with self._lock:
            self._inspector = inspector
            self.label = label
        self.ready.set()
        logger.info("now inspecting with %s", label or getattr(inspector, "ref", None) or inspector)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str
    line: str = "line-1"
    product: str | None = None
    #: folder or video sources: ids are deterministic and a restart skips frames already recorded
    replayable_source: bool = False
    #: wait this long between frames (simulating a line's takt time); 0 = as fast as frames come
    frame_interval_ms: float = 0.0


@dataclass
class AgentCounters:
    frames: int = 0
    skipped_known: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    ng: int = 0
    no_model: int = 0
    #: frames whose inspection or result record failed (no verdict: fail-safe rejects the part)
    inspect_errors: int = 0
    errors: int = 0
    last_model: str | None = None
    started_at_s: float = field(default_factory=time.time)


Action = Callable[[Any], None]


class EdgeAgent:
    def __init__(self, config: AgentConfig, outbox: Outbox, inspectors: Inspectors,
                 actions: Iterable[Action] = (), on_stored: Callable[[], None] | None = None,
                 on_frame: Callable[[Any], None] | None = None,
                 on_dropped: Callable[[list[int], float], None] | None = None) -> None:
        """``on_frame(frame)`` runs when a frame is taken for inspection (a reject window opens);
        ``actions(inspection)`` run after the result is stored; ``on_dropped(seqs, ts)`` hears of frames
        the source dropped (gaps in ``seq``)."""
        self.config = config
        self.outbox = outbox
        self.inspectors = inspectors
        self.actions = list(actions)
        self.on_stored = on_stored
        self.on_frame = on_frame
        self.on_dropped = on_dropped
        self._last_seq: int | None = None
        self.boot = outbox.next_boot()
        self.counters = AgentCounters()
        logger.info("edge agent %s boot %d", config.device_id, self.boot)

    def handle(self, frame: Any) -> PutOutcome | None:
        """Process one frame by the module rules; returns the outbox outcome (None if skipped)."""
        self.counters.frames += 1
        if self._last_seq is not None and frame.seq > self._last_seq + 1 and self.on_dropped is not None:
            self.on_dropped(list(range(self._last_seq + 1, frame.seq)), frame.timestamp)
        self._last_seq = frame.seq
        rid = result_id(self.config.device_id, frame.source, self.config.replayable_source, self.boot,
                        frame.seq, frame.name)
        if self.config.replayable_source and self.outbox.known(rid):
            self.counters.skipped_known += 1
            return None
        with self.inspectors.lease() as (inspector, label):
            if inspector is None:
                self.counters.no_model += 1
                return None
            if self.on_frame is not None:
                self.on_frame(frame)
            try:
                result = inspector.inspect(frame)
                # Building the record validates it: a broken model's NaN score fails here (pydantic ValidationError).
                payload = ingest_payload(result, rid, self.config.line, self.config.product, model=label)
            except Exception:  # this frame gets no verdict (fail-safe rejects its part); the line goes on
                self.counters.inspect_errors += 1
                logger.exception("inspecting frame %s (%s) failed; no verdict for it", frame.seq, rid)
                return None
        outcome = self.outbox.put(rid, result.defective, payload)
        self.counters.last_model = payload["model"]
        if outcome is PutOutcome.STORED:
            self.counters.stored += 1
            self.counters.ng += int(result.defective)
            for action in self.actions:
                try:
                    action(result)
                except Exception:  # one failing actuator must not stop the line's record keeping
                    self.counters.errors += 1
                    logger.exception("action %r failed for %s", action, rid)
            if self.on_stored is not None:
                self.on_stored()
        elif outcome is PutOutcome.DUPLICATE:
            self.counters.duplicates += 1
        else:
            self.counters.dropped += 1
        return outcome

    def run(self, frames: Iterable[Any], stop: threading.Event) -> AgentCounters:
        """Handle frames until the source ends or ``stop`` is set."""
        interval_s = self.config.frame_interval_ms / 1000
        for frame in frames:
            if not self.inspectors.ready.is_set():
                logger.warning("no model yet: the line waits for the first update to commit")
                while not self.inspectors.ready.wait(0.5) and not stop.is_set():
                    pass
            if stop.is_set():
                break
            self.handle(frame)
            if interval_s:
                stop.wait(interval_s)
        return self.counters

    def status(self) -> dict[str, Any]:
        c = self.counters
        return {"device_id": self.config.device_id, "boot": self.boot, "frames": c.frames, "stored": c.stored,
                "ng": c.ng, "skipped_known": c.skipped_known, "duplicates": c.duplicates, "dropped": c.dropped,
                "no_model": c.no_model, "inspect_errors": c.inspect_errors, "action_errors": c.errors,
                "model": c.last_model,
                "outbox": self.outbox.stats().to_json()}
