"""Prometheus metrics for the platform: the engine's observer plus HTTP request counters.

Each server gets its own ``CollectorRegistry`` (so tests and several apps in
one process do not collide).  Names follow Prometheus conventions (base units,
``_total`` counters).  Tokens/s is ``rate(npusuite_llm_generated_tokens_total[1m])``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from npusuite.platform.engine.observer import EngineObserver

_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128)


class PlatformMetrics(EngineObserver):
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("npusuite_requests_total", "HTTP inference requests by model, endpoint and status",
                                ["model", "endpoint", "status"], registry=r)
        self.errors = Counter("npusuite_request_errors_total", "Requests answered with status >= 400",
                              ["model", "endpoint", "status"], registry=r)
        self.queue = Gauge("npusuite_queue_length", "Requests waiting in the model's queue", ["model"], registry=r)
        self.rows_computed = Counter("npusuite_rows_computed_total", "Rows actually run by the model (tensor "
                                     "batches, LLM prefill and decode rows); cancelled or refused requests add "
                                     "none", ["model"], registry=r)
        self.batch_size = Histogram("npusuite_batch_size", "Rows per executed batch (decode-step rows for LLMs)",
                                    ["model"], buckets=_BATCH, registry=r)
        self.queue_wait = Histogram("npusuite_queue_wait_seconds", "Time a request waited before its batch ran",
                                    ["model"], buckets=_LATENCY, registry=r)
        self.compute = Histogram("npusuite_compute_seconds", "Model time per executed batch", ["model"],
                                 buckets=_LATENCY, registry=r)
        self.ttft = Histogram("npusuite_llm_time_to_first_token_seconds", "Submit to first generated token",
                              ["model"], buckets=_LATENCY, registry=r)
        self.itl = Histogram("npusuite_llm_inter_token_seconds", "Time between consecutive tokens of a request",
                             ["model"], buckets=_LATENCY, registry=r)
        self.tokens_total = Counter("npusuite_llm_generated_tokens_total", "Generated tokens", ["model"], registry=r)
        self.memory_bytes = Gauge("npusuite_model_memory_bytes", "Bytes of weights of the serving version", ["model"],
                            registry=r)
        self.swaps = Counter("npusuite_model_swaps_total", "Version loads/swaps by result", ["model", "result"],
                             registry=r)
        self.swap_seconds = Histogram("npusuite_model_swap_seconds", "Load + warm-up + switch time", ["model"],
                                      buckets=_LATENCY, registry=r)
        self.alias = Gauge("npusuite_model_alias_version", "1 for the version behind each alias",
                           ["model", "alias", "version"], registry=r)
        self._alias_seen: dict[tuple[str, str], str] = {}

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

    # ---- HTTP ----------------------------------------------------------------------------
    def request(self, model: str, endpoint: str, status: int) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(model, endpoint, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
