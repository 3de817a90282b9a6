"""Prometheus metrics of the live scorer (names: :mod:`npusuite.platform.observability.names`).

Each :class:`ServiceMetrics` owns its registry, so several scorers can run in
one process (tests) without clashing; :meth:`ServiceMetrics.serve` exposes it
with ``/healthz`` and ``/readyz`` (:class:`~npusuite.platform.observability.http.HealthServer`)
and adds the infrastructure collectors.

Model level: :meth:`ServiceMetrics.observe_model` takes each batch's feature
matrix and fast probabilities: the score histogram and, when the model card
carries a ``reference_profile``, the sliding-window PSI per feature and of the
score (computed at scrape).  ``monitoring=False`` leaves the model level out
(the overhead benchmark's baseline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from npusuite.fraud.service.processor import BatchOutcome
from npusuite.platform.batch_histogram import BatchHistogram
from npusuite.platform.observability import names as N
from npusuite.platform.observability.drift import DEFAULT_WINDOW, DriftCollector, DriftWindow
from npusuite.platform.observability.http import HealthServer, Readiness
from npusuite.platform.observability.names import counter_base as _c

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.035, 0.05, 0.08, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
assert N.FRAUD_SLA_SECONDS in _LATENCY_BUCKETS_S  # SLA attainment is read off that bucket
_SCORE_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99)


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, monitoring: bool = True,
                 drift_window: int = DEFAULT_WINDOW):
        self.registry = registry or CollectorRegistry()
        self.monitoring = monitoring
        self.drift_window = drift_window
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
        self.producer_replacements = Counter(
            _c(N.FRAUD_KAFKA_PRODUCER_REPLACEMENTS), "Transactional producers replaced by a new one with the same "
            "transactional id, by reason: broken (a fatal error or a failed abort), fenced (an epoch bump), stalled "
            "(a commit that did not return within commit_stall_ms).", ["reason"], registry=r)
        self.kafka_client_errors = Counter(_c(N.FRAUD_KAFKA_CLIENT_ERRORS), "Errors the Kafka clients reported "
                                           "(librdkafka's error callback and consume errors), by error name: "
                                           "_TRANSPORT and _ALL_BROKERS_DOWN while a broker is unreachable.",
                                           ["error"], registry=r)
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
        self.partitions = Gauge(N.FRAUD_PARTITIONS_ASSIGNED, "Partitions this scorer owns.", registry=r)
        self.score = BatchHistogram(N.FRAUD_SCORE, "The fast model's fraud probability per scored transaction.",
                                    _SCORE_BUCKETS, r) if monitoring else None
        self._drift_ref: str | None = None
        self._features: DriftWindow | None = None
        self._scores: DriftWindow | None = None
        if monitoring:
            r.register(DriftCollector(lambda: self._features, N.FRAUD_FEATURE_PSI, N.FRAUD_DRIFT_WINDOW_RECORDS,
                                      label="feature", help_text="PSI of each feature over the sliding window "
                                      "against the training reference."))
            r.register(DriftCollector(lambda: self._scores, N.FRAUD_SCORE_PSI, help_text="PSI of the fast "
                                      "score over the sliding window against the training reference."))
        self._gc = None
        self.server: HealthServer | None = None

    def observe_model(self, ref: str, card: Mapping, x: np.ndarray | None, scores: np.ndarray) -> None:
        """One scored batch: its fast probabilities and (when known) its feature matrix.  The drift windows
        follow the model: a new ``ref`` starts new windows from its card's reference profile."""
        if not self.monitoring:
            return
        self.score.observe_many(scores)
        if ref != self._drift_ref:
            from npusuite.fraud.reference_profile import windows

            self._drift_ref = ref
            pair = windows(card, self.drift_window)
            if pair is None:
                logger.warning("model %s has no reference_profile in its card: no drift (PSI) metrics", ref)
            self._features, self._scores = pair or (None, None)
        if self._scores is None:
            return
        self._scores.add(scores)
        if x is not None and x.shape[1] == len(self._features.names):
            self._features.add(x)

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

    def set_partitions(self, n: int) -> None:
        self.partitions.set(n)

    def serve(self, port: int, host: str = "127.0.0.1", ready: Readiness = lambda: {},
              folders: Mapping[str, Path] | None = None, device: str | None = None) -> HealthServer:
        """Serve /metrics, /healthz and /readyz on ``host:port`` (loopback unless told otherwise: the metrics
        name topics and partitions, which are nobody else's business), with the infrastructure metrics."""
        from npusuite.platform.observability.infrastructure import register_infrastructure

        if self._gc is None:
            self._gc = register_infrastructure(self.registry, folders, device)
        self.server = HealthServer(self.registry, ready, host, port).start()
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._gc is not None:
            self._gc.close()
