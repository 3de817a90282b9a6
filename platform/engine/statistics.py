"""Per model and version inference statistics in the shape of Triton's statistics extension.

Rules:
- Only counters and sums under one short lock: no per-request allocation,
  no histogram.  Durations are kept in nanoseconds, as the extension reports them.
- ``execution`` is counted from the engine's observer (:class:`VersionedObserver`):
  one executed batch (an LLM scheduler step) is one execution, its rows are
  inferences, and each request in it adds its queue wait and the batch's
  compute time (Triton accounts a batch's compute to every request in it).
- ``success``/``fail`` (with their end-to-end time) and ``last_inference``
  (ms since the epoch) are counted where a request is answered (the HTTP
  route), keyed by the version that actually answered.
- ``compute_input`` and ``compute_output`` stay zero: tensors are converted
  in the HTTP layer, outside the engine, so there is no separate step to time.
- A version's statistics live from its first request until the process
  ends, like Triton's (which counts since the server started).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from npusuite.platform.engine.observer import EngineObserver

_STAT_NAMES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass
class _Stats:
    inference_count: int = 0
    execution_count: int = 0
    last_inference: int = 0
    counts: dict[str, list[int]] = field(default_factory=lambda: {k: [0, 0] for k in _STAT_NAMES})

    def add(self, key: str, count: int, ns: int) -> None:
        c = self.counts[key]
        c[0] += count
        c[1] += ns


class InferenceStatistics:
    """Thread-safe counters keyed by (model, version)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], _Stats] = {}

    def _get(self, model: str, version: str) -> _Stats:
        stats = self._stats.get((model, version))
        if stats is None:
            stats = self._stats[(model, version)] = _Stats()
        return stats

    def execution(self, model: str, version: str, rows: int, queue_waits_s: list[float], compute_s: float) -> None:
        with self._lock:
            s = self._get(model, version)
            s.execution_count += 1
            s.inference_count += rows
            n = len(queue_waits_s)
            if n:
                s.add("queue", n, int(sum(queue_waits_s) * 1e9))
                s.add("compute_infer", n, int(compute_s * 1e9) * n)

    def request(self, model: str, version: str, ok: bool, seconds: float) -> None:
        with self._lock:
            s = self._get(model, version)
            s.add("success" if ok else "fail", 1, int(seconds * 1e9))
            if ok:
                s.last_inference = int(time.time() * 1000)

    def model_stats(self, served: list[tuple[str, str]]) -> list[dict]:
        """Triton's ``model_stats`` list for ``served`` (model, version) pairs, zeros where nothing ran yet."""
        with self._lock:
            out = []
            for model, version in served:
                s = self._stats.get((model, version)) or _Stats()
                out.append({"name": model, "version": version, "last_inference": s.last_inference,
                            "inference_count": s.inference_count, "execution_count": s.execution_count,
                            "inference_stats": {k: {"count": c, "ns": ns} for k, (c, ns) in s.counts.items()},
                            "batch_stats": []})
            return out


class VersionedObserver(EngineObserver):
    """Forwards every event to ``inner`` and counts executions into ``statistics`` under the version that
    ``current_version()`` names (the engine's serving version; during a swap's drain the old version's last
    batches count for the new one, the only imprecision)."""

    def __init__(self, inner: EngineObserver, statistics: InferenceStatistics,
                 current_version: Callable[[], str | None]):
        self.inner = inner
        self.statistics = statistics
        self.current_version = current_version

    def batch(self, model: str, size: int, queue_waits_s: list[float], compute_s: float) -> None:
        self.inner.batch(model, size, queue_waits_s, compute_s)
        version = self.current_version()
        if version is not None:
            self.statistics.execution(model, version, size, queue_waits_s, compute_s)

    def queue_depth(self, model: str, depth: int) -> None:
        self.inner.queue_depth(model, depth)

    def swap(self, model: str, ok: bool, seconds: float) -> None:
        self.inner.swap(model, ok, seconds)

    def version(self, model: str, alias: str, version: str) -> None:
        self.inner.version(model, alias, version)

    def memory(self, model: str, nbytes: int) -> None:
        self.inner.memory(model, nbytes)

    def first_token(self, model: str, seconds: float) -> None:
        self.inner.first_token(model, seconds)

    def inter_token(self, model: str, seconds: float) -> None:
        self.inner.inter_token(model, seconds)

    def tokens(self, model: str, count: int) -> None:
        self.inner.tokens(model, count)

    @property
    def wants_token_entropy(self) -> bool:
        return self.inner.wants_token_entropy

    def layer(self, model: str, layer: str, seconds: float) -> None:
        self.inner.layer(model, layer, seconds)

    def iteration(self, model: str, tokens: int) -> None:
        self.inner.iteration(model, tokens)

    def kv_cache(self, model: str, used_tokens: int, capacity_tokens: int) -> None:
        self.inner.kv_cache(model, used_tokens, capacity_tokens)

    def token_entropy(self, model: str, bits: list[float]) -> None:
        self.inner.token_entropy(model, bits)
