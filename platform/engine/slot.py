"""A loaded version inside the engine, and the typed lease requests hold on it.

Rules:
- A :class:`Slot` owns one version's runtime, the app adapter's object for it
  (``app``) and the one worker the adapter declared (a batcher, an LLM
  scheduler, or none for ``"direct"``).
- Every request holds a lease while it runs; :meth:`Slot.drain_and_free`
  waits for the leases to end (up to a timeout), closes the worker, then the
  runtime.  So a version is never freed under a request.
- A :class:`Lease` is what callers see: ``version``, ``app`` and ``worker``,
  never the runtime (apps go through their adapter's object).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from npusuite.platform.engine.adapter import WorkerKind
from npusuite.platform.engine.batcher import DynamicBatcher
from npusuite.platform.engine.llm_scheduler import LLMScheduler
from npusuite.platform.repository.store import ModelVersion
from npusuite.platform.runtime.protocols import Runtime, TensorRuntime

logger = logging.getLogger(__name__)

AppT = TypeVar("AppT")
Worker = DynamicBatcher | LLMScheduler | None


@dataclass(frozen=True)
class Lease(Generic[AppT]):
    """The version a request runs on, the app's object for it, and its worker (None for ``"direct"``)."""

    version: ModelVersion
    app: AppT
    worker: Worker
    kind: WorkerKind


@dataclass
class Slot:
    """A loaded version with its app object, its worker and the number of requests leasing it."""

    version: ModelVersion
    runtime: Runtime | None
    app: Any
    worker: Worker
    kind: WorkerKind
    leases: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def is_llm(self) -> bool:
        return isinstance(self.worker, LLMScheduler)

    def lease(self) -> Lease:
        return Lease(self.version, self.app, self.worker, self.kind)

    def acquire(self, n: int = 1) -> None:
        with self.cond:
            self.leases += n

    def release(self) -> None:
        with self.cond:
            self.leases -= 1
            self.cond.notify_all()

    def close_worker(self, timeout_s: float) -> None:
        if self.worker is not None:
            self.worker.close(drain=True, timeout_s=timeout_s)

    def drain_and_free(self, timeout_s: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.leases <= 0, timeout_s):
                logger.warning("%s: %d requests still running after %.0f s; freeing anyway",
                               self.version.ref, self.leases, timeout_s)
        self.close_worker(timeout_s)
        self.free_runtime()
        logger.info("freed %s", self.version.ref)

    def free_runtime(self) -> None:
        runtime, self.runtime, self.app = self.runtime, None, None
        if isinstance(runtime, TensorRuntime):
            runtime.close()
