"""Shadow scoring (champion / challenger): ``npusuite fraud run --shadow ALIAS``.

A second platform :class:`~npusuite.platform.engine.ModelEngine` serves the
challenger (``NAME@ALIAS``, e.g. ``fraud-fast@challenger``) with the same
:class:`~.adapters.FraudFastAdapter` as the champion and follows that alias,
so a new challenger hot-swaps too and is refused by the same rules (card,
thresholds, feature set, warm-up).  Rules:

* **Same input, state advanced once.**  The champion's tiered scorer advances
  each account's state in place while it featurises; the challenger never
  featurises.  It runs its fast model on the champion's own feature matrix
  (recorded from the champion's fast-model pass), computed from the state
  *before* each transaction.  Both versions
  compute the same vector because the adapter refuses any version whose card
  lists another feature set than this code's ``FEATURE_NAMES`` (a challenger
  trained on other features cannot be shadowed; retrain it).
* **Fast tier only.**  The challenger's decision is its own card's
  thresholds on its probability (``decline`` >= decline, ``review`` >=
  review, else ``approve``); it never calls the LLM tier (nor the novelty or
  rules tiers, which stay the champion's), and its records
  carry no reasons (the occlusion passes that explain a score would cost
  more than the score itself; ``fraud compare`` needs score and decision).
  ``latency_ms`` is the challenger's own forward pass over the batch.
* **Never changes anything.**  Decisions, alerts, account state and the
  champion's scores are the champion's; the challenger's record is an extra
  ``fraud-scores-shadow`` message (a
  :class:`~npusuite.platform.contracts.score.FraudScore` whose ``model`` names
  the challenger) produced by the processor in the SAME Kafka transaction as
  the champion's score, so exactly one shadow score per committed score.
* **Best-effort.**  If the challenger fails on a batch (or gives a non-finite
  probability for a row), the champion's scores still commit; the shadow
  scores of those rows are skipped and counted
  (``npusuite_fraud_shadow_skipped_total``); never a dead letter.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from npusuite.platform.contracts.score import Decision, score_fields
from npusuite.platform.errors import UserError

if TYPE_CHECKING:  # the processor imports this module's keys; it stays free of torch
    from npusuite.fraud.service.adapters import FastApp

logger = logging.getLogger(__name__)

#: Key of a scored transaction's ``extras`` holding the challenger's ``ScoreFields``.
SHADOW = "shadow"
#: Key of a scored transaction's ``extras`` set when its shadow score was skipped (challenger failed).
SHADOW_SKIPPED = "shadow_skipped"


def challenger_reference(shadow: str, champion_name: str) -> str:
    """``ALIAS`` -> ``<champion name>@ALIAS``; a full ``NAME@TAG`` stays as it is."""
    return shadow if "@" in shadow else f"{champion_name}@{shadow}"


def decide(p: float, review: float, decline: float) -> Decision:
    return "decline" if p >= decline else "review" if p >= review else "approve"


class ShadowScorer:
    """The challenger's engine; :meth:`score` adds a shadow score to each champion result's ``extras``."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._last_ref: str | None = None

    @classmethod
    def open(cls, reference: str, root, champion_name: str) -> ShadowScorer:
        """Open the challenger, following its alias.  Raises UserError (unknown alias, a version the adapter
        refuses: SwapError) so ``fraud run --shadow`` fails at start-up, not silently."""
        from npusuite.fraud.service.adapters import FraudFastAdapter
        from npusuite.platform.engine import ModelEngine

        if root is None:
            raise UserError("--shadow needs --model-root (the challenger is an alias in the model repository)")
        ref = challenger_reference(reference, champion_name)
        engine = ModelEngine.open(ref, root=root, follow_alias=True, device="cpu", adapter=FraudFastAdapter())
        logger.info("shadow scoring with challenger %s (%s)", ref, engine.ref)
        return cls(engine)

    @property
    def ref(self) -> str | None:
        return self.engine.ref

    def score(self, scored: Sequence[Any], x: np.ndarray | None = None) -> None:
        """Put the challenger's ``ScoreFields`` in ``extras[SHADOW]`` of each champion result (``features``,
        ``fields``, ``extras`` attributes), or mark it ``extras[SHADOW_SKIPPED]``.  ``x``: the champion's own
        feature matrix of these rows (else rebuilt from each result's ``features``).  Never raises."""
        if not scored:
            return
        started = time.perf_counter()
        try:
            if x is None or len(x) != len(scored):
                x = np.array([s.features.values for s in scored], dtype=np.float32)
            with self.engine.lease() as lease:
                app: FastApp = lease.app
                probs = np.asarray(app.model.predict(x)).reshape(-1).tolist()
            if len(probs) != len(scored):
                raise RuntimeError(f"challenger returned {len(probs)} probabilities for {len(scored)} rows")
        except Exception as exc:  # best-effort: the champion's batch must commit regardless
            logger.warning("challenger failed on a batch of %d transactions; their shadow scores are skipped: "
                           "%s: %s", len(scored), type(exc).__name__, exc)
            for s in scored:
                s.extras[SHADOW_SKIPPED] = True
            return
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        cfg, ref = app.config, app.ref
        if ref != self._last_ref:
            logger.info("shadow scoring with %s (review %.4f, decline %.4f)", ref, cfg.review, cfg.decline)
            self._last_ref = ref
        bad = 0
        for s, p in zip(scored, probs, strict=True):
            if not math.isfinite(p):
                s.extras[SHADOW_SKIPPED] = True
                bad += 1
                continue
            p = min(1.0, max(0.0, p))
            s.extras[SHADOW] = score_fields(s.fields["transaction_id"], p, decide(p, cfg.review, cfg.decline), [],
                                            [], ref, latency_ms)
        if bad:
            logger.warning("challenger %s gave %d non-finite probabilities; those shadow scores are skipped", ref,
                           bad)

    def close(self) -> None:
        self.engine.close()


def ensure_shadow_topic(config) -> None:
    """Create ``config.topics.shadow_scores`` (as many partitions as the transactions topic) when missing.

    Shadow records go through the key partitioner, so an existing topic of any size is fine."""
    from npusuite.fraud.service.topics import ensure_topics
    from npusuite.platform.kafka.topics import TopicSpec, bootstrap_create_missing

    partitions, _ = ensure_topics(config)
    bootstrap_create_missing(config.bootstrap, {config.topics.shadow_scores: TopicSpec(partitions)})
