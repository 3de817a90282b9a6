"""One served model: the version behind it, its batcher or LLM scheduler, and hot swap.

Rules (hot swap):
- ``load(V)`` is serialised per engine (one load at a time).  It resolves V in
  the repository (checksums verified), loads it BESIDE the serving version,
  warms it up, and only then switches, atomically, under a short lock.
- Any failure before the switch raises :class:`SwapError` and changes nothing:
  the old version keeps serving.
- Requests take a lease on the version that was current when they arrived and
  finish on it; after the switch the old version drains (waits for its leases
  to end) in the background and is then freed.  So no request fails because
  of a swap.
- :meth:`follow` polls an alias file and swaps when the alias moves (an
  explicit ``load`` of another version stays until the alias moves again); a
  version that failed to load is not retried until the alias moves again.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npusuite.platform.engine.batcher import BatcherConfig, DynamicBatcher
from npusuite.platform.engine.errors import ModelNotReadyError, SwapError
from npusuite.platform.engine.llm_scheduler import GenerationStream, LLMConfig, LLMScheduler
from npusuite.platform.engine.observer import EngineObserver, NullObserver
from npusuite.platform.engine.sampling import SamplingParams
from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ModelRepository, ModelVersion, resolve_reference
from npusuite.platform.runtime.devices import Device, get_device
from npusuite.platform.runtime.servable import load_version

logger = logging.getLogger(__name__)


@dataclass
class _Slot:
    """A loaded version with its worker and the number of requests leasing it."""

    version: ModelVersion
    runtime: object
    worker: DynamicBatcher | LLMScheduler
    leases: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def is_llm(self) -> bool:
        return isinstance(self.worker, LLMScheduler)

    def release(self) -> None:
        with self.cond:
            self.leases -= 1
            self.cond.notify_all()

    def drain_and_free(self, timeout_s: float) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.leases <= 0, timeout_s):
                logger.warning("%s: %d requests still running after %.0f s; freeing anyway",
                               self.version.ref, self.leases, timeout_s)
        self.worker.close(drain=True, timeout_s=timeout_s)
        close = getattr(self.runtime, "close", None)
        if close:
            close()
        self.runtime = None
        logger.info("freed %s", self.version.ref)


@dataclass(frozen=True)
class InferResult:
    outputs: dict[str, np.ndarray]
    model: str  # name@version that answered


class ModelEngine:
    """In-process serving of one model name, with hot swap between its versions."""

    def __init__(self, name: str, repository: ModelRepository | None = None, device: str | Device = "cpu",
                 batcher: BatcherConfig | None = None, llm: LLMConfig | None = None,
                 observer: EngineObserver | None = None, drain_timeout_s: float = 120.0):
        self.name = name
        self.repository = repository
        self.device = get_device(device)
        self.batcher_config = batcher or BatcherConfig()
        self.llm_config = llm or LLMConfig()
        self.observer = observer or NullObserver()
        self.drain_timeout_s = drain_timeout_s
        self._slot: _Slot | None = None
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._drainers: list[threading.Thread] = []
        self._follower: threading.Thread | None = None
        self._stop_follow = threading.Event()

    @classmethod
    def open(cls, ref: str | Path, root: Path | str | None = None, follow_alias: bool = True, **kwargs) -> ModelEngine:
        """Serve ``name[@version|@alias]`` from ``root`` (or a plain model folder) and return the engine.

        With ``follow_alias`` and a reference by alias (``name`` = ``name@production``),
        the engine swaps whenever the alias moves.  Raises UserError/SwapError.
        """
        path = Path(ref)
        if path.is_dir():
            engine = cls(path.name, None, **kwargs)
            engine._switch(resolve_reference(path))
            return engine
        if root is None:
            raise UserError(f"{ref}: no model repository given (and not a model folder)")
        repo = ModelRepository(root)
        name, _, tag = str(ref).partition("@")
        engine = cls(name, repo, **kwargs)
        engine.load(tag or "production")
        if follow_alias and (tag or "production") in repo.aliases(name):
            engine.follow(tag or "production")
        return engine

    # ---- state ---------------------------------------------------------------------------
    @property
    def version(self) -> ModelVersion | None:
        slot = self._slot
        return slot.version if slot else None

    @property
    def ref(self) -> str | None:
        v = self.version
        return v.ref if v else None

    @property
    def ready(self) -> bool:
        return self._slot is not None

    @property
    def is_llm(self) -> bool:
        slot = self._slot
        return bool(slot and slot.is_llm)

    @property
    def runtime(self):
        """The loaded runtime of the current version (TensorServable or CausalLM); for direct, unbatched use."""
        slot = self._slot
        if slot is None:
            raise ModelNotReadyError(f"model {self.name!r} is not loaded")
        return slot.runtime

    @property
    def queue_depth(self) -> int:
        slot = self._slot
        return slot.worker.queue_depth if slot else 0

    @contextmanager
    def lease(self):
        """Hold the current version for the duration of a request (it will not be freed meanwhile)."""
        with self._lock:
            slot = self._slot
            if slot is None:
                raise ModelNotReadyError(f"model {self.name!r} is not loaded")
            with slot.cond:
                slot.leases += 1
        try:
            yield slot
        finally:
            slot.release()

    # ---- requests ------------------------------------------------------------------------
    def submit(self, inputs: dict[str, np.ndarray], deadline_ms: float | None = None) -> tuple[Future, str]:
        """Queue one batched inference on the current version without waiting; returns (future, name@version).

        The version stays leased until the future is done (answered, failed or cancelled), so callers
        on an event loop can await it (``asyncio.wrap_future``) and cancel it when their client leaves:
        a request cancelled while queued is never computed.
        Raises ModelNotReadyError, EngineBusyError, ValueError/UserError (bad input) at once.
        """
        with self.lease() as slot:
            if slot.is_llm:
                raise UserError(f"{slot.version.ref} is a causal LM; use generate()")
            validate = getattr(slot.runtime, "validate", None)
            if validate is not None:
                inputs = validate(inputs)
            with slot.cond:
                slot.leases += 1  # held until the future is done; the context's own lease ends now
            try:
                future = slot.worker.submit(inputs, deadline_ms)
            except BaseException:
                slot.release()
                raise
            future.add_done_callback(lambda _f: slot.release())
            return future, slot.version.ref

    def infer(self, inputs: dict[str, np.ndarray], timeout_s: float | None = 60.0,
              deadline_ms: float | None = None) -> InferResult:
        """Batched inference on the current version.

        Raises ModelNotReadyError, EngineBusyError, DeadlineExceededError, ValueError/UserError (bad input).
        """
        future, ref = self.submit(inputs, deadline_ms)
        return InferResult(future.result(timeout_s), ref)

    def generate(self, prompt: str | list[int], params: SamplingParams | None = None) -> GenerationStream:
        """Start a generation on the current LLM version; the lease ends when the stream finishes.

        Raises ModelNotReadyError, EngineBusyError, UserError/ValueError (InvalidParameterError).
        """
        return self.generate_many([prompt], params)[0]

    def generate_many(self, prompts: list[str | list[int]],
                      params: SamplingParams | None = None) -> list[GenerationStream]:
        """Start several generations, all or none (a refusal leaves none of them running)."""
        with self._lock:
            slot = self._slot
            if slot is None:
                raise ModelNotReadyError(f"model {self.name!r} is not loaded")
            if not slot.is_llm:
                raise UserError(f"{slot.version.ref} is not a causal LM")
            with slot.cond:
                slot.leases += 1
        try:
            ids = [slot.runtime.encode(p) if isinstance(p, str) else list(p) for p in prompts]
            streams = slot.worker.submit_many(ids, params or SamplingParams())
            with slot.cond:
                slot.leases += len(streams)  # one per stream, ended by its done callback
        finally:
            slot.release()
        for stream in streams:
            stream.add_done_callback(lambda _s: slot.release())
        return streams

    # ---- versions ------------------------------------------------------------------------
    def load(self, version_or_alias: str = "production") -> ModelVersion:
        """Swap to a repository version (see module rules).  Raises SwapError; the old version keeps serving."""
        if self.repository is None:
            raise SwapError(f"model {self.name!r} was opened from a folder; there are no versions to swap to")
        with self._load_lock:
            t0 = time.monotonic()
            try:
                version = self.repository.resolve(self.name, version_or_alias)
                logger.debug("%s: resolved and verified %s in %.2f s", self.name, version.ref, time.monotonic() - t0)
            except UserError as exc:
                self.observer.swap(self.name, False, time.monotonic() - t0)
                raise SwapError(f"cannot load {self.name}@{version_or_alias}: {exc}; "
                                f"{self.ref or 'nothing'} keeps serving") from None
            if self._slot is not None and self._slot.version.version == version.version:
                return version
            self._switch(version, t0)
            return version

    def _switch(self, version: ModelVersion, t0: float | None = None) -> None:
        t0 = time.monotonic() if t0 is None else t0
        try:
            t_load = time.monotonic()
            runtime = load_version(version, self.device)
            t_warm = time.monotonic()
            if hasattr(runtime, "predict"):
                runtime.warmup()
                # the warm-up's time seeds the batcher's admission estimate until a real batch has run
                worker = DynamicBatcher(runtime.predict, self.batcher_config, self.name, self.observer,
                                        batch_seconds_hint=time.monotonic() - t_warm)
            else:
                worker = LLMScheduler(runtime, self.llm_config, self.name, self.observer)
                worker.submit(runtime.encode("warm up"), SamplingParams(max_tokens=2)).result(120)
        except Exception as exc:
            self.observer.swap(self.name, False, time.monotonic() - t0)
            logger.warning("%s: load of %s failed (%s); %s keeps serving", self.name, version.ref, exc,
                           self.ref or "nothing")
            raise SwapError(f"cannot load {version.ref}: {exc}; {self.ref or 'nothing'} keeps serving") from None
        new = _Slot(version, runtime, worker)
        with self._lock:
            old, self._slot = self._slot, new
        seconds = time.monotonic() - t0
        self.observer.swap(self.name, True, seconds)
        self.observer.memory(self.name, getattr(runtime, "memory_bytes", 0))
        logger.info("%s: now serving %s (was %s; %.2f s: verify %.2f, load %.2f, warm %.2f)", self.name,
                    version.ref, old.version.ref if old else "nothing", seconds, t_load - t0, t_warm - t_load,
                    time.monotonic() - t_warm)
        if old is not None:
            self._retire(old)

    def _retire(self, old: _Slot) -> None:
        t = threading.Thread(target=old.drain_and_free, args=(self.drain_timeout_s,), daemon=True,
                             name=f"drain-{old.version.ref}")
        t.start()
        self._drainers = [d for d in self._drainers if d.is_alive()] + [t]

    def wait_drained(self, timeout_s: float = 60.0) -> None:
        """Block until every retired version has been freed (tests, shutdown)."""
        for t in list(self._drainers):
            t.join(timeout_s)

    def unload(self) -> None:
        with self._load_lock:
            with self._lock:
                old, self._slot = self._slot, None
            if old is not None:
                self._retire(old)

    def follow(self, alias: str = "production", poll_interval_s: float = 1.0) -> None:
        """Swap whenever ``alias`` moves (polls the alias file in a daemon thread)."""
        if self.repository is None or self._follower is not None:
            return
        self._stop_follow.clear()

        def current_target() -> str | None:
            try:
                return self.repository.alias_target(self.name, alias)
            except UserError:
                return None

        def run() -> None:
            # Act only when the alias MOVES: an explicit load() of another version is not undone.
            seen = current_target()
            while not self._stop_follow.wait(poll_interval_s):
                target = current_target()
                if target is None or target == seen:
                    continue
                seen = target
                if self.version and self.version.version == target:
                    continue
                try:
                    self.load(target)
                    self.observer.version(self.name, alias, target)
                except SwapError as exc:  # not retried until the alias moves again
                    logger.error("%s", exc)

        self._follower = threading.Thread(target=run, daemon=True, name=f"follow-{self.name}@{alias}")
        self._follower.start()

    def close(self) -> None:
        self._stop_follow.set()
        if self._follower is not None:
            self._follower.join(5)
            self._follower = None
        self.unload()
        self.wait_drained()
