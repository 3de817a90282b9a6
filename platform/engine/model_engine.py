"""One served model: the version behind it, its app adapter's object and worker, and hot swap.

Rules (hot swap):
- ``load(V)`` (a repository version) and ``load_path(folder)`` (a plain model
  folder, e.g. an edge A/B slot's bundle) are serialised per engine (one load
  at a time).  The version is resolved (checksums verified for repository
  versions) and loaded BESIDE the serving one, then, in this order, the app
  adapter builds its per-version object (``adapter.build``), warms it
  (``adapter.warm``), and the engine creates and warms the one worker the
  adapter declares (see :mod:`.adapter`).  Only then does it switch,
  atomically, under a short lock.
- Any failure before the switch (a corrupt file, an app-level
  incompatibility such as another feature set, a warm-up that raises)
  raises :class:`SwapError` and changes nothing: the old version keeps
  serving, and what was built for the refused version is freed.
- Requests take a :class:`~.slot.Lease` (``version``, ``app``, ``worker``) on
  the version that was current when they arrived and finish on it; after the
  switch the old version drains (waits for its leases to end) in the
  background and is then freed.  So no request fails because of a swap.
- :meth:`follow` watches the alias file's folder (inotify, with a slow poll
  as the fallback; :mod:`.folder_watch`) and swaps when the alias moves (an
  explicit ``load`` of another version stays until the alias moves again); a
  version that was refused is logged as a refusal and not retried until the
  alias moves again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from npusuite.platform.engine.adapter import AppAdapter, ServingAdapter, check_worker_kind, require_generative
from npusuite.platform.engine.batcher import BatcherConfig, DynamicBatcher
from npusuite.platform.engine.errors import ModelNotReadyError, SwapError
from npusuite.platform.engine.folder_watch import FolderWatch
from npusuite.platform.engine.llm_scheduler import GenerationStream, LLMConfig, LLMScheduler
from npusuite.platform.engine.observer import EngineObserver, NullObserver
from npusuite.platform.engine.sampling import SamplingParams
from npusuite.platform.engine.slot import Lease, Slot
from npusuite.platform.errors import UserError
from npusuite.platform.repository.store import ALIASES, ModelRepository, ModelVersion, resolve_reference
from npusuite.platform.runtime.devices import Device, get_device
from npusuite.platform.runtime.servable import load_version

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferResult:
    outputs: dict[str, np.ndarray]
    model: str  # name@version that answered


class ModelEngine:
    """In-process serving of one model name, with hot swap between its versions.

    ``adapter``: the app's :class:`~.adapter.AppAdapter` (default :class:`~.adapter.ServingAdapter`:
    the runtime itself behind a batcher or an LLM scheduler)."""

    def __init__(self, name: str, repository: ModelRepository | None = None, device: str | Device = "cpu",
                 batcher: BatcherConfig | None = None, llm: LLMConfig | None = None,
                 observer: EngineObserver | None = None, drain_timeout_s: float = 120.0,
                 adapter: AppAdapter | None = None):
        self.name = name
        self.repository = repository
        self.device = get_device(device)
        self.batcher_config = batcher or BatcherConfig()
        self.llm_config = llm or LLMConfig()
        self.observer = observer or NullObserver()
        self.drain_timeout_s = drain_timeout_s
        self.adapter: AppAdapter = adapter or ServingAdapter()
        self._slot: Slot | None = None
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
            engine.load_path(path)
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
        """The loaded runtime of the current version, for platform code (e.g. the chat template)."""
        return self._current().runtime

    @property
    def queue_depth(self) -> int:
        slot = self._slot
        return slot.worker.queue_depth if slot and slot.worker is not None else 0

    def _current(self) -> Slot:
        slot = self._slot
        if slot is None:
            raise ModelNotReadyError(f"model {self.name!r} is not loaded")
        return slot

    def _acquire(self) -> Slot:
        with self._lock:
            slot = self._current()
            slot.acquire()
        return slot

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        """Hold the current version for the duration of a request (it will not be freed meanwhile)."""
        slot = self._acquire()
        try:
            yield slot.lease()
        finally:
            slot.release()

    # ---- requests ------------------------------------------------------------------------
    def submit(self, inputs: dict[str, np.ndarray], deadline_ms: float | None = None) -> tuple[Future, str]:
        """Queue one batched inference on the current version without waiting; returns (future, name@version).

        The version stays leased until the future is done (answered, failed or cancelled), so callers
        on an event loop can await it (``asyncio.wrap_future``) and cancel it when their client leaves:
        a request cancelled while queued is never computed.
        Raises ModelNotReadyError, EngineBusyError, ValueError/UserError (bad input, or a version
        whose adapter runs no batcher) at once.
        """
        slot = self._acquire()  # held until the future is done
        try:
            if not isinstance(slot.worker, DynamicBatcher):
                raise UserError(f"{slot.version.ref} is served by {slot.kind!r}, not a batcher"
                                + ("; use generate()" if slot.is_llm else ""))
            future = slot.worker.submit(self.adapter.validate(slot.app, inputs), deadline_ms)
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
        slot = self._acquire()
        try:
            if not isinstance(slot.worker, LLMScheduler):
                raise UserError(f"{slot.version.ref} is not served by an LLM scheduler")
            lm = require_generative(slot.runtime, slot.version)
            ids = [lm.encode(p) if isinstance(p, str) else list(p) for p in prompts]
            streams = slot.worker.submit_many(ids, params or SamplingParams())
            slot.acquire(len(streams))  # one per stream, ended by its done callback
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
                self._refused(f"cannot load {self.name}@{version_or_alias}: {exc}", t0)
            if self._slot is not None and self._slot.version.version == version.version:
                return version
            self._switch(version, t0)
            return version

    def load_path(self, folder: Path | str, label: str | None = None) -> ModelVersion:
        """Swap to a plain model folder (same rules as :meth:`load`).  ``label``: the ``name@version`` the
        version reports (e.g. a signed bundle's), else the folder's manifest or ``<folder>@local``."""
        with self._load_lock:
            t0 = time.monotonic()
            try:
                version = resolve_reference(Path(folder))
            except UserError as exc:
                self._refused(f"cannot load {folder}: {exc}", t0)
            if label:
                name, _, number = label.partition("@")
                version = dataclasses.replace(version, name=name, version=number or "local")
            self._switch(version, t0)
            return version

    def _refused(self, message: str, t0: float) -> NoReturn:
        self.observer.swap(self.name, False, time.monotonic() - t0)
        logger.warning("%s: %s; %s keeps serving", self.name, message, self.ref or "nothing")
        raise SwapError(f"{message}; {self.ref or 'nothing'} keeps serving") from None

    def _build(self, version: ModelVersion) -> Slot:
        """Load ``version`` beside the serving one and run the adapter's build/warm and the worker's warm-up."""
        runtime = load_version(version, self.device)
        slot = Slot(version, runtime, None, None, check_worker_kind(self.adapter.worker(version), version))
        try:
            slot.app = self.adapter.build(version, runtime)
            t_warm = time.monotonic()
            self.adapter.warm(slot.app)
            if slot.kind == "batcher":
                adapter, app = self.adapter, slot.app
                predict = self._layer_sampled(runtime, lambda inputs: adapter.predict(app, inputs))
                # the warm-up's time seeds the batcher's admission estimate until a real batch has run
                slot.worker = DynamicBatcher(predict, self.batcher_config, self.name, self.observer,
                                             batch_seconds_hint=time.monotonic() - t_warm)
            elif slot.kind == "scheduler":
                lm = require_generative(runtime, version)
                slot.worker = LLMScheduler(lm, self.llm_config, self.name, self.observer)
                slot.worker.submit(lm.encode("warm up"), SamplingParams(max_tokens=2)).result(120)
        except BaseException:
            slot.close_worker(5.0)
            slot.free_runtime()
            raise
        return slot

    def _layer_sampled(self, runtime, predict):
        """``predict`` with per-layer forward times sampled on one batch in 100 (torch modules only; see
        :mod:`npusuite.platform.observability.layer_timing`)."""
        from npusuite.platform.observability.layer_timing import LayerSampler, torch_module

        module = torch_module(runtime)
        if module is None:
            return predict
        name, observer = self.name, self.observer
        sampler = LayerSampler(module, lambda layer, seconds: observer.layer(name, layer, seconds))
        return lambda inputs: sampler(predict, inputs)

    def _switch(self, version: ModelVersion, t0: float | None = None) -> None:
        t0 = time.monotonic() if t0 is None else t0
        try:
            new = self._build(version)
        except Exception as exc:
            self._refused(f"cannot load {version.ref}: {exc}", t0)
        with self._lock:
            old, self._slot = self._slot, new
        seconds = time.monotonic() - t0
        self.observer.swap(self.name, True, seconds)
        self.observer.memory(self.name, getattr(new.runtime, "memory_bytes", 0))
        logger.info("%s: now serving %s (was %s; %.2f s, worker %s)", self.name, version.ref,
                    old.version.ref if old else "nothing", seconds, new.kind)
        if old is not None:
            self._retire(old)

    def _retire(self, old: Slot) -> None:
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

    def follow(self, alias: str = "production", fallback_poll_s: float = 30.0, use_inotify: bool = True) -> None:
        """Swap whenever ``alias`` moves: a daemon thread woken by an inotify watch of the alias file's folder,
        re-checking every ``fallback_poll_s`` anyway (the only check where inotify is unavailable)."""
        repo = self.repository
        if repo is None or self._follower is not None:
            return
        self._stop_follow.clear()
        # Armed before the alias is first read, so a promote in between is not missed.
        watch = FolderWatch(repo.model_dir(self.name), self._stop_follow, accept=_is_alias_file,
                            fallback_poll_s=fallback_poll_s, use_inotify=use_inotify)

        def current_target() -> str | None:
            try:
                return repo.alias_target(self.name, alias)
            except UserError:
                return None

        # Act only when the alias MOVES: an explicit load() of another version is not undone.
        seen = current_target()

        def run() -> None:
            nonlocal seen
            try:
                while watch.wait() is not None:
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
                        logger.error("%s@%s -> %s refused: %s", self.name, alias, target, exc)
            finally:
                watch.close()

        self._follower = threading.Thread(target=run, daemon=True, name=f"follow-{self.name}@{alias}")
        self._follower.start()

    def close(self) -> None:
        self._stop_follow.set()
        if self._follower is not None:
            self._follower.join(5)
            self._follower = None
        self.unload()
        self.wait_drained()


def _is_alias_file(name: str) -> bool:
    # The repository writes ``.aliases-XXXX`` then renames it to ``aliases.json``; the rename is the change.
    return name == ALIASES


