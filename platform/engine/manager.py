"""All served models of one repository: load, unload, index (Triton's repository extension).

Rules:
- One :class:`ModelEngine` per model name, created on first load and reused
  for later swaps; loads of different models run independently.
- ``start()`` loads every model that has a ``production`` alias; a model that
  fails to load is logged and left unloaded, the rest are served.
- With ``follow_aliases`` the repository is watched (inotify on the whole
  tree, filtered to alias files, with a slow poll as the fallback; see
  :mod:`.folder_watch`): a model that gains a ``production`` alias is loaded
  within a fraction of a second, and each loaded engine follows its alias.
"""

from __future__ import annotations

import logging
import threading

from npusuite.platform.engine.batcher import BatcherConfig
from npusuite.platform.engine.errors import ModelNotReadyError, SwapError
from npusuite.platform.engine.folder_watch import FolderWatch
from npusuite.platform.engine.llm_scheduler import LLMConfig
from npusuite.platform.engine.model_engine import ModelEngine
from npusuite.platform.engine.observer import EngineObserver, NullObserver
from npusuite.platform.errors import NotFoundError
from npusuite.platform.repository.store import ALIASES, ModelRepository, ModelVersion
from npusuite.platform.runtime.devices import Device, get_device

logger = logging.getLogger(__name__)


class ModelManager:
    def __init__(self, repository: ModelRepository, device: str | Device = "cpu",
                 batcher: BatcherConfig | None = None, llm: LLMConfig | None = None,
                 observer: EngineObserver | None = None, follow_aliases: bool = False):
        self.repository = repository
        self.device = get_device(device)
        self.batcher = batcher or BatcherConfig()
        self.llm = llm or LLMConfig()
        self.observer = observer or NullObserver()
        self.follow_aliases = follow_aliases
        self._engines: dict[str, ModelEngine] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failed: set[tuple[str, str]] = set()
        self._watcher: threading.Thread | None = None

    def _engine(self, name: str) -> ModelEngine:
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = ModelEngine(name, self.repository, self.device, self.batcher, self.llm, self.observer)
                self._engines[name] = engine
            return engine

    def start(self, fallback_poll_s: float = 30.0) -> None:
        """Load every model with a production alias; with ``follow_aliases``, keep watching for new ones."""
        watch = None
        if self.follow_aliases and self._watcher is None:
            # Armed before the first scan, so a model published in between is not missed.
            watch = FolderWatch(self.repository.root, self._stop, accept=lambda name: name == ALIASES,
                                fallback_poll_s=fallback_poll_s, recursive=True)
        self._load_new()
        if watch is not None:
            def run() -> None:
                try:
                    while watch.wait() is not None:
                        self._load_new()
                finally:
                    watch.close()

            self._watcher = threading.Thread(target=run, daemon=True, name="repository-watch")
            self._watcher.start()

    def _load_new(self) -> None:
        for name in self.repository.models():
            if name in self._engines:
                continue
            try:
                target = self.repository.aliases(name).get("production")
            except (NotFoundError, ValueError):
                continue
            if target is None or (name, target) in self._failed:
                continue
            try:
                self.load(name)
            except SwapError as exc:
                self._failed.add((name, target))
                self._engines.pop(name, None)
                logger.error("not serving %s: %s", name, exc)

    def load(self, name: str, version: str | None = None) -> ModelVersion:
        """Load or swap ``name`` to ``version`` (default: the production alias).  Raises SwapError/NotFoundError."""
        self.repository.versions(name)  # NotFoundError for an unknown model
        engine = self._engine(name)
        loaded = engine.load(version or "production")
        for alias, target in self.repository.aliases(name).items():
            self.observer.version(name, alias, target)
        if self.follow_aliases and version is None:
            engine.follow("production")
        return loaded

    def unload(self, name: str) -> None:
        engine = self._engines.get(name)
        if engine is None or not engine.ready:
            raise NotFoundError(f"model {name!r} is not loaded")
        engine.unload()

    def get(self, name: str) -> ModelEngine:
        """The engine serving ``name``.  Raises ModelNotReadyError when it is not loaded."""
        engine = self._engines.get(name)
        if engine is None or not engine.ready:
            raise ModelNotReadyError(f"model {name!r} is not loaded")
        return engine

    def loaded(self) -> list[ModelEngine]:
        return [e for e in self._engines.values() if e.ready]

    def index(self) -> list[dict]:
        """Every model in the repository with its state, as Triton's repository index."""
        out = []
        for name in self.repository.models():
            engine = self._engines.get(name)
            for version in self.repository.versions(name):
                serving = engine is not None and engine.version is not None and engine.version.version == version
                out.append({"name": name, "version": version, "state": "READY" if serving else "UNAVAILABLE",
                            "reason": "" if serving else "not loaded"})
        return out

    def close(self) -> None:
        self._stop.set()
        for engine in list(self._engines.values()):
            engine.close()
