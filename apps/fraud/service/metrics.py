"""Prometheus metrics of the live scorer.

Each :class:`ServiceMetrics` owns its registry, so several scorers can run in
one process (tests) without clashing; ``serve(port)`` exposes it over HTTP in
the Prometheus text format.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from npusuite.fraud.service.processor import BatchOutcome
from npusuite.platform.batch_histogram import BatchHistogram
from npusuite.platform.observability import names as N
from npusuite.platform.observability.names import counter_base as _c

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.035, 0.05, 0.08, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.transactions = Counter(_c(N.FRAUD_TRANSACTIONS), "Transactions scored (committed).", registry=r)
        self.decisions = Counter(_c(N.FRAUD_DECISIONS), "Committed decisions by type.", ["decision"], registry=r)
        self.dead_letters = Counter(_c(N.FRAUD_DEAD_LETTERS), "Messages sent to the dead-letter topic.", ["kind"],
                                    registry=r)
        self.escalations = Counter(_c(N.FRAUD_LLM_ESCALATIONS), "Grey-band transactions sent to the LLM.", registry=r)
        self.llm_fallbacks = Counter(_c(N.FRAUD_LLM_FALLBACKS),
                                     "Escalations answered by the fast score (llm_unavailable).", registry=r)
        self.latency = BatchHistogram(N.FRAUD_SCORE_LATENCY_SECONDS,
                                      "Producer timestamp to scored, per transaction (before the commit).",
                                      _LATENCY_BUCKETS_S, r)
        self.commit_seconds = Histogram(N.FRAUD_KAFKA_COMMIT_SECONDS, "Kafka transaction commit time.",
                                        buckets=_LATENCY_BUCKETS_S, registry=r)
        self.batch_phase_seconds = Histogram(
            N.FRAUD_BATCH_PHASE_SECONDS, "Time per batch in each phase: score (validation, features, models, "
            "messages), produce, offsets (send_offsets_to_transaction), commit.", ["phase"],
            buckets=_LATENCY_BUCKETS_S, registry=r)
        self.lag = Gauge(N.FRAUD_CONSUMER_LAG, "Records behind the high watermark.", ["partition"], registry=r)
        self.aborts = Counter(_c(N.FRAUD_KAFKA_ABORTS), "Kafka transactions aborted.", registry=r)
        self.swaps = Counter(_c(N.FRAUD_MODEL_SWAPS), "Model versions swapped in while consuming.", ["model"],
                             registry=r)
        self.shadow_scores = Counter(_c(N.FRAUD_SHADOW_SCORES), "Challenger scores committed to the shadow topic.",
                                     registry=r)
        self.shadow_skipped = Counter(_c(N.FRAUD_SHADOW_SKIPPED), "Shadow scores skipped because the challenger failed "
                                      "(the champion's scores committed).", registry=r)
        self.rule_hits = Counter(_c(N.FRAUD_RULE_HITS), "Analysts' rules that fired, by rule name (counted "
                                 "when a batch is scored; a batch retried after an abort counts again).", ["rule"],
                                 registry=r)
        self.novelty_escalations = Counter(_c(N.FRAUD_NOVELTY_ESCALATIONS), "Transactions the novelty tier "
                                           "raised to at least review (counted when scored).", registry=r)
        self.restore_seconds = Histogram(N.FRAUD_STATE_RESTORE_SECONDS,
                                         "Changelog restore time when partitions are gained.", registry=r)

    def observe_committed(self, outcome: BatchOutcome) -> None:
        scored = sum(outcome.decisions.values())
        self.transactions.inc(scored)
        for decision, n in outcome.decisions.items():
            self.decisions.labels(decision).inc(n)
        for kind, n in outcome.dead_letters.items():
            self.dead_letters.labels(kind).inc(n)
        if outcome.escalations:
            self.escalations.inc(outcome.escalations)
        if outcome.llm_fallbacks:
            self.llm_fallbacks.inc(outcome.llm_fallbacks)
        self.latency.observe_many(outcome.latencies_s)
        if outcome.shadow:
            self.shadow_scores.inc(outcome.shadow["scored"])
            self.shadow_skipped.inc(outcome.shadow["skipped"])

    def set_lag(self, lag_by_partition: dict[int, int]) -> None:
        for partition, lag in lag_by_partition.items():
            self.lag.labels(str(partition)).set(lag)

    def forget_partition(self, partition: int) -> None:
        try:
            self.lag.remove(str(partition))
        except KeyError:
            pass

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on ``host:port`` (loopback unless told otherwise: the metrics name topics and
        partitions, which are nobody else's business)."""
        start_http_server(port, addr=host, registry=self.registry)
        logger.info("metrics at http://%s:%d/metrics", host, port)
