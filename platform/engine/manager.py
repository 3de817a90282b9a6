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
- A per-model :class:`~.version_policy.VersionPolicy` serves more versions:
  each selected version gets its own pinned engine (no alias following),
  loaded after the production one; :meth:`get` with a version answers from
  the production engine when it serves that version, else from the pinned
  one.  Without a version, :meth:`get` is always the production engine, so
  hot swap (and its zero-failed-requests rule) is unchanged.  A pinned
  version that fails to load is logged and left out.
- Every engine reports through a :class:`~.statistics.VersionedObserver`, so
  :attr:`statistics` counts executions per (model, version).
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
from npusuite.platform.engine.statistics import InferenceStatistics, VersionedObserver
from npusuite.platform.engine.version_policy import VersionPolicy
from npusuite.platform.errors import NotFoundError
from npusuite.platform.repository.store import ALIASES, ModelRepository, ModelVersion
from npusuite.platform.runtime.devices import Device, get_device

logger = logging.getLogger(__name__)


class ModelManager:
    def __init__(self, repository: ModelRepository, device: str | Device = "cpu",
                 batcher: BatcherConfig | None = None, llm: LLMConfig | None = None,
                 observer: EngineObserver | None = None, follow_aliases: bool = False,
                 version_policies: dict[str, VersionPolicy] | None = None):
        self.repository = repository
        self.device = get_device(device)
        self.batcher = batcher or BatcherConfig()
        self.llm = llm or LLMConfig()
        self.observer = observer or NullObserver()
        self.follow_aliases = follow_aliases
        self.version_policies = dict(version_policies or {})
        self.statistics = InferenceStatistics()
        self._engines: dict[str, ModelEngine] = {}
        self._pinned: dict[tuple[str, str], ModelEngine] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failed: set[tuple[str, str]] = set()
        self._watcher: threading.Thread | None = None

    def _new_engine(self, name: str) -> ModelEngine:
        engine: ModelEngine | None = None

        def serving_version() -> str | None:
            v = engine.version if engine is not None else None
            return v.version if v is not None else None

        observer = VersionedObserver(self.observer, self.statistics, serving_version)
        engine = ModelEngine(name, self.repository, self.device, self.batcher, self.llm, observer)
        return engine

    def _engine(self, name: str) -> ModelEngine:
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._engines[name] = self._new_engine(name)
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
        self._load_pinned(name)
        return loaded

    def _load_pinned(self, name: str) -> None:
        """Load the versions the model's policy selects that have no pinned engine yet (see module rules)."""
        policy = self.version_policies.get(name)
        if policy is None:
            return
        available = self.repository.versions(name)
        for missing in (v for v in policy.versions if v not in available):
            logger.error("version policy of %s: version %s does not exist; skipped", name, missing)
        for version in policy.select(available):
            if (name, version) in self._pinned:
                continue
            engine = self._new_engine(name)
            try:
                engine.load(version)
            except SwapError as exc:
                logger.error("not serving %s@%s (version policy): %s", name, version, exc)
                continue
            with self._lock:
                self._pinned[(name, version)] = engine

    def unload(self, name: str) -> None:
        """Unload every served version of ``name`` (Triton's unload: the model, not one version)."""
        engine = self._engines.get(name)
        if engine is None or not engine.ready:
            raise NotFoundError(f"model {name!r} is not loaded")
        engine.unload()
        with self._lock:
            pinned = [self._pinned.pop(key) for key in [k for k in self._pinned if k[0] == name]]
        for p in pinned:
            p.close()

    def get(self, name: str, version: str | None = None) -> ModelEngine:
        """The engine serving ``name`` (its production engine), or serving exactly ``version``.

        Raises ModelNotReadyError when the model is not loaded, NotFoundError when ``version`` is not served."""
        engine = self._engines.get(name)
        if engine is None or not engine.ready:
            raise ModelNotReadyError(f"model {name!r} is not loaded")
        if version is None or (engine.version is not None and engine.version.version == version):
            return engine
        pinned = self._pinned.get((name, version))
        if pinned is None or not pinned.ready:
            served = ", ".join(self.served_versions(name))
            raise NotFoundError(f"model {name!r} version {version!r} is not served (serving {served}); "
                                f"serve more versions with --version-policy")
        return pinned

    def served_versions(self, name: str) -> list[str]:
        """Every version of ``name`` that answers now, in repository order."""
        engines = [self._engines.get(name)] + [e for (n, _v), e in list(self._pinned.items()) if n == name]
        found = {e.version.version for e in engines if e is not None and e.ready and e.version is not None}
        try:
            order = self.repository.versions(name)
        except NotFoundError:
            order = sorted(found)
        return [v for v in order if v in found]

    def served(self) -> list[tuple[str, str]]:
        """(model, version) of everything served, production and pinned engines alike."""
        return [(name, v) for name in sorted(self._engines) for v in self.served_versions(name)]

    def loaded(self) -> list[ModelEngine]:
        return [e for e in self._engines.values() if e.ready]

    def index(self) -> list[dict]:
        """Every model in the repository with its state, as Triton's repository index."""
        out = []
        for name in self.repository.models():
            served = set(self.served_versions(name))
            for version in self.repository.versions(name):
                serving = version in served
                out.append({"name": name, "version": version, "state": "READY" if serving else "UNAVAILABLE",
                            "reason": "" if serving else "not loaded"})
        return out

    def close(self) -> None:
        self._stop.set()
        for engine in list(self._engines.values()) + list(self._pinned.values()):
            engine.close()
