"""Prometheus metrics for the platform: the engine's observer plus HTTP request counters.

Each server gets its own ``CollectorRegistry`` (so tests and several apps in
one process do not collide).  Names follow Prometheus conventions (base units,
``_total`` counters).  Tokens/s is ``rate(npusuite_llm_generated_tokens_total[1m])``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from npusuite.platform.engine.observer import EngineObserver
from npusuite.platform.observability import names as N
from npusuite.platform.observability.names import counter_base as _c

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128)
_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_BITS = (0.01, 0.1, 0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16)


class PlatformMetrics(EngineObserver):
    wants_token_entropy = True

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(_c(N.PLATFORM_REQUESTS), "HTTP inference requests by model, endpoint and status",
                                ["model", "endpoint", "status"], registry=r)
        self.errors = Counter(_c(N.PLATFORM_REQUEST_ERRORS), "Requests answered with status >= 400",
                              ["model", "endpoint", "status"], registry=r)
        self.queue = Gauge(N.PLATFORM_QUEUE_LENGTH, "Requests waiting in the model's queue", ["model"], registry=r)
        self.rows_computed = Counter(_c(N.PLATFORM_ROWS_COMPUTED), "Rows actually run by the model (tensor "
                                     "batches, LLM prefill and decode rows); cancelled or refused requests add "
                                     "none", ["model"], registry=r)
        self.batch_size = Histogram(N.PLATFORM_BATCH_SIZE, "Rows per executed batch (decode-step rows for LLMs)",
                                    ["model"], buckets=_BATCH, registry=r)
        self.queue_wait = Histogram(N.PLATFORM_QUEUE_WAIT_SECONDS, "Time a request waited before its batch ran",
                                    ["model"], buckets=_LATENCY, registry=r)
        self.compute = Histogram(N.PLATFORM_FORWARD_SECONDS, "Model forward time per executed batch", ["model"],
                                 buckets=_LATENCY, registry=r)
        self.ttft = Histogram(N.LLM_TIME_TO_FIRST_TOKEN_SECONDS, "Submit to first generated token",
                              ["model"], buckets=_LATENCY, registry=r)
        self.itl = Histogram(N.LLM_INTER_TOKEN_SECONDS, "Time between consecutive tokens of a request",
                             ["model"], buckets=_LATENCY, registry=r)
        self.tokens_total = Counter(_c(N.LLM_GENERATED_TOKENS), "Generated tokens", ["model"], registry=r)
        self.memory_bytes = Gauge(N.PLATFORM_MODEL_MEMORY_BYTES, "Bytes of weights of the serving version", ["model"],
                            registry=r)
        self.swaps = Counter(_c(N.PLATFORM_MODEL_SWAPS), "Version loads/swaps by result", ["model", "result"],
                             registry=r)
        self.swap_seconds = Histogram(N.PLATFORM_MODEL_SWAP_SECONDS, "Load + warm-up + switch time", ["model"],
                                      buckets=_LATENCY, registry=r)
        self.alias = Gauge(N.PLATFORM_MODEL_ALIAS_INFO, "1 for the version behind each alias",
                           ["model", "alias", "version"], registry=r)
        self.layer_seconds = Histogram(N.PLATFORM_LAYER_SECONDS, "Forward time of each top-level layer, on a "
                                       "sampled batch in 100", ["model", "layer"], buckets=_LATENCY, registry=r)
        self.iteration_tokens = Histogram(N.LLM_ITERATION_TOKENS, "Tokens computed per scheduler iteration "
                                          "(prefill + decode rows)", ["model"], buckets=_TOKENS, registry=r)
        self.kv_used = Gauge(N.LLM_KV_CACHE_USED_TOKENS, "KV-cache positions held by running sequences",
                             ["model"], registry=r)
        self.kv_capacity = Gauge(N.LLM_KV_CACHE_CAPACITY_TOKENS, "KV-cache positions the scheduler may hold "
                                 "(max_running x the model's context)", ["model"], registry=r)
        self.entropy = Histogram(N.LLM_TOKEN_ENTROPY_BITS, "Entropy of sampled next-token distributions (one "
                                 "sampling step in 8)", ["model"], buckets=_BITS, registry=r)
        self._alias_seen: dict[tuple[str, str], str] = {}

    def add_infrastructure(self, folders=None, device: str | None = None) -> None:
        """Process, host, disk (``folders``: role -> path) and device metrics on this registry (once)."""
        from npusuite.platform.observability.infrastructure import register_infrastructure

        if getattr(self, "_gc", None) is None:
            self._gc = register_infrastructure(self.registry, folders, device)

    # ---- EngineObserver ------------------------------------------------------------------
    def batch(self, model: str, size: int, queue_waits_s: list[float], compute_s: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.rows_computed.labels(model).inc(size)
        for w in queue_waits_s:
            self.queue_wait.labels(model).observe(w)
        if compute_s:
            self.compute.labels(model).observe(compute_s)

    def queue_depth(self, model: str, depth: int) -> None:
        self.queue.labels(model).set(depth)

    def swap(self, model: str, ok: bool, seconds: float) -> None:
        self.swaps.labels(model, "ok" if ok else "failed").inc()
        if ok:
            self.swap_seconds.labels(model).observe(seconds)

    def version(self, model: str, alias: str, version: str) -> None:
        old = self._alias_seen.get((model, alias))
        if old is not None and old != version:
            self.alias.remove(model, alias, old)
        self._alias_seen[(model, alias)] = version
        self.alias.labels(model, alias, version).set(1)

    def memory(self, model: str, nbytes: int) -> None:
        self.memory_bytes.labels(model).set(nbytes)

    def first_token(self, model: str, seconds: float) -> None:
        self.ttft.labels(model).observe(seconds)

    def inter_token(self, model: str, seconds: float) -> None:
        self.itl.labels(model).observe(seconds)

    def tokens(self, model: str, count: int) -> None:
        self.tokens_total.labels(model).inc(count)

    def layer(self, model: str, layer: str, seconds: float) -> None:
        self.layer_seconds.labels(model, layer).observe(seconds)

    def iteration(self, model: str, tokens: int) -> None:
        self.iteration_tokens.labels(model).observe(tokens)

    def kv_cache(self, model: str, used_tokens: int, capacity_tokens: int) -> None:
        self.kv_used.labels(model).set(used_tokens)
        if capacity_tokens:
            self.kv_capacity.labels(model).set(capacity_tokens)

    def token_entropy(self, model: str, bits: list[float]) -> None:
        child = self.entropy.labels(model)
        for b in bits:
            child.observe(b)

    # ---- HTTP ----------------------------------------------------------------------------
    def request(self, model: str, endpoint: str, status: int) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(model, endpoint, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
