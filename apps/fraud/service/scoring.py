"""The live scorer's models: the fast tier on every transaction, hot-swapped through the platform.

:class:`LiveScorer` implements the processor's ``BatchScorer`` protocol on top
of the fraud app's pure feature code (:func:`npusuite.fraud.features.step`)
and the platform engine (:class:`~npusuite.platform.engine.ModelEngine`).
Rules:

* one wave = one forward pass of the fast model, under one engine lease, so
  every score of the wave names the version that produced it;
* the engine follows the model's alias: a promoted version is loaded and
  warmed beside the serving one in the engine's own thread, then switched
  atomically; the scorer never waits for a load and never drains;
* account state objects are :class:`~npusuite.fraud.features.AccountState`,
  updated in place (copying them would cost as much as the features); their
  snapshots are the feature module's own ``to_bytes`` format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from npusuite.fraud.features import AccountState, advance
from npusuite.fraud.schema import parse_transaction
from npusuite.fraud.service.config import ModelConfig
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.processor import ScoreRequest, ScoreResult

logger = logging.getLogger(__name__)

#: Used when the model card names no thresholds.
DEFAULT_REVIEW_AT = 0.5
DEFAULT_DECLINE_AT = 0.9


class LiveScorer:
    def __init__(self, fast_engine, metrics: ServiceMetrics | None = None):
        self.fast = fast_engine
        self.metrics = metrics
        self._last_ref: str | None = None

    def encode_state(self, state: AccountState) -> bytes:
        return state.to_bytes()

    def restore_state(self, snapshot: bytes | None, transactions: Sequence[bytes]) -> AccountState:
        state = AccountState.from_bytes(snapshot) if snapshot else AccountState()
        for raw in transactions:
            advance(state, parse_transaction(raw))
        return state

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        from npusuite.fraud.fast_model import FastModel

        started = time.perf_counter()
        features, states = [], []
        for r in requests:
            state = r.state if r.state is not None else AccountState()
            features.append(advance(state, r.transaction))  # in place: see account_store's rules
            states.append(state)
        x = np.asarray([f.values for f in features], dtype=np.float32)
        with self.fast.lease() as slot:
            ref = slot.version.ref
            model = FastModel(slot.runtime.module, ref, slot.version.manifest.metadata or {})
            probs = model.predict(x)
        if ref != self._last_ref:
            if self._last_ref is not None and self.metrics is not None:
                self.metrics.swaps.labels(ref).inc()
            logger.info("scoring with %s", ref)
            self._last_ref = ref
        card = model.card
        review_at = float(card.get("review_threshold", DEFAULT_REVIEW_AT))
        decline_at = float(card.get("decline_threshold", DEFAULT_DECLINE_AT))
        latency_ms = (time.perf_counter() - started) * 1000.0
        out = []
        for r, f, s, p in zip(requests, features, states, probs, strict=True):
            p = float(p)
            decision = "decline" if p >= decline_at else "review" if p >= review_at else "approve"
            score = {"transaction_id": r.transaction.transaction_id, "score": round(p, 6), "decision": decision,
                     "reasons": [] if decision == "approve" else ["fast_model"], "model": ref,
                     "latency_ms": round(latency_ms, 3)}
            out.append(ScoreResult(score, s, f.as_dict() if decision != "approve" else {}))
        return out

    def close(self) -> None:
        self.fast.close()


def build_live_scorer(config: ModelConfig, metrics: ServiceMetrics | None = None) -> LiveScorer:
    """Open the models (raises UserError on an unknown or corrupt model)."""
    from npusuite.platform.engine import ModelEngine

    engine = ModelEngine.open(config.model, root=config.model_root, follow_alias=True, device="cpu")
    logger.info("fast model %s loaded", engine.ref)
    return LiveScorer(engine, metrics)
