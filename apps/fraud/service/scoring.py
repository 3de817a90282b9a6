"""The live scorer's models: the fraud app's tiered scorer on platform engines that hot-swap.

:class:`LiveScorer` implements the processor's ``BatchScorer`` protocol with
the fraud app's pure :class:`~npusuite.fraud.scorer.TieredScorer` (the same
code offline ``fraud score`` runs) on top of two platform
:class:`~npusuite.platform.engine.ModelEngine` s that follow their aliases.
Rules:

* a wave is scored under one engine lease of the fast model: one forward
  pass (plus its reason-code passes), and every score of the wave names the
  version that produced it;
* hot swap is the engine's: a promoted version is loaded beside the serving
  one in the engine's own thread, built and warmed by
  :class:`~.adapters.FraudFastAdapter` (card, thresholds, feature set, one
  synthetic transaction) and only then switched atomically; a version that
  does not fit is refused there and the old one keeps scoring.  The scorer
  never waits for a load or a drain, and builds nothing per version itself;
* the grey band goes to the LLM verdict model through its engine's own
  :class:`~npusuite.platform.engine.batcher.DynamicBatcher` (bounded queue,
  deadlines; :class:`~.adapters.FraudVerdictAdapter`) and the scorer waits at
  most ``llm_deadline_ms``; a full queue,
  a missed deadline, an LLM error or no LLM at all leaves the fast decision
  with the reason ``llm_unavailable`` (the tiered scorer's fallback), so the
  stream never stalls on the LLM;
* account states are updated in place (copying one costs about as much as
  its features; see :mod:`.account_store` for how an abort restores them):
  :class:`~npusuite.fraud.feature_kernel.KernelState` objects advanced by the
  compiled kernel (``features="kernel"``, the default; bit-identical to the
  reference), or the reference's :class:`~npusuite.fraud.features.AccountState`
  (``features="python"``, ``fraud run --features python``); snapshots are the
  reference's ``to_bytes`` format either way, so a changelog written with one
  restores with the other;
* optional tiers, each on its own alias-following engine (worker
  ``"direct"``) and leased for the batch with the fast model: the novelty
  model (``--novelty-model``, :mod:`.novelty_adapter`) and the analysts'
  rules (``--rules``, :mod:`.rules_adapter`); a promoted rule set or novelty
  model that does not fit is refused by its engine before the switch, so
  scoring never pauses; rule hits and novelty escalations are counted;
* with a challenger (``--shadow``, :mod:`.shadow`), each wave's feature rows
  also go through the challenger's fast model after the champion scored
  them; the challenger changes nothing the champion decided.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Sequence
from contextlib import ExitStack

import numpy as np

from npusuite.fraud import feature_kernel
from npusuite.fraud.feature_kernel import KernelState
from npusuite.fraud.feature_kernel_batch import advance_batch, advance_batch_with_history
from npusuite.fraud.features import AccountState, Features, advance, history_block
from npusuite.fraud.schema import Transaction, parse_transaction
from npusuite.fraud.scorer import ScoredTransaction, TieredScorer, feature_matrix
from npusuite.fraud.service.adapters import FastApp, FraudFastAdapter, FraudVerdictAdapter, card_of
from npusuite.fraud.service.config import ModelConfig
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.fraud.service.novelty_adapter import FraudNoveltyAdapter
from npusuite.fraud.service.processor import ScoreRequest
from npusuite.fraud.service.rules_adapter import FraudRulesAdapter
from npusuite.fraud.service.shadow import ShadowScorer

logger = logging.getLogger(__name__)


class _InPlaceTieredScorer(TieredScorer):
    """The tiered scorer, with features advancing the given state objects in place (the reference)."""

    advance = staticmethod(advance)

    def featurise(self, items):
        step = self.advance
        feats, states, before = [], [], []
        keep_history = self.history > 0
        for tx, state in items:
            if keep_history:
                before.append(state.history)
            feats.append(step(state, tx))
            states.append(state)
        return feats, states, history_block(before) if keep_history else None, feature_matrix(feats)


class _KernelTieredScorer(_InPlaceTieredScorer):
    """The same, on :class:`KernelState` s advanced by the compiled kernel: the whole batch in one call
    (:func:`~npusuite.fraud.feature_kernel_batch.advance_batch`, bit-identical to one call per transaction)."""

    advance = staticmethod(feature_kernel.advance)

    def featurise(self, items):
        states = [state for _, state in items]
        txs = [tx for tx, _ in items]
        history = None
        if self.history > 0:
            matrix, *history = advance_batch_with_history(states, txs)
        else:
            matrix = advance_batch(states, txs)
        # The same float32 values as rebuilding the matrix from the tuples (each is the float64 value, rounded
        # once), without the rebuild (1.3 µs a transaction at 2,000).
        return [Features(row) for row in map(tuple, matrix.tolist())], states, history, matrix.astype(np.float32)


#: features= -> (state type, tiered scorer).
FEATURE_IMPLEMENTATIONS = {"kernel": (KernelState, _KernelTieredScorer), "python": (AccountState, _InPlaceTieredScorer)}


class _InputRecorder:
    """The champion's fast model, keeping the feature matrix of its last pass (what the challenger is fed)."""

    def __init__(self, model) -> None:
        self.model = model
        self.ref = model.ref
        self.card = model.card
        self.x: np.ndarray | None = None

    def contributions(self, x: np.ndarray):
        self.x = x
        return self.model.contributions(x)


class BatchedVerdict:
    """The tiered scorer's ``VerdictModel``: the LLM engine's own batcher (bounded, deadline-aware).

    The engine runs :class:`~.adapters.FraudVerdictAdapter` (worker ``"batcher"``), so each batch is one
    ``label_probabilities`` call on the version current when it was queued.  ``fraud_probabilities``
    raises (EngineBusyError, TimeoutError, DeadlineExceededError, the model's error) instead of waiting
    longer than ``deadline_ms``; the tiered scorer then falls back."""

    def __init__(self, engine, deadline_ms: float):
        self.engine = engine
        self.deadline_ms = deadline_ms
        self.ref = engine.ref

    @classmethod
    def open(cls, ref: str, root, deadline_ms: float, max_queue: int = 64, max_batch_size: int = 64
             ) -> BatchedVerdict:
        """Open ``ref`` behind a batcher sized for the grey band.  Raises UserError/SwapError."""
        from npusuite.platform.engine import BatcherConfig, ModelEngine

        batcher = BatcherConfig(max_batch_size=max_batch_size, max_queue_delay_ms=1.0, max_queue_size=max_queue,
                                default_deadline_ms=deadline_ms)
        engine = ModelEngine.open(ref, root=root, follow_alias=True, device="cpu", batcher=batcher,
                                  adapter=FraudVerdictAdapter())
        return cls(engine, deadline_ms)

    def fraud_probabilities(self, items: Sequence[tuple[Transaction, Features]]) -> list[float]:
        from npusuite.fraud.llm_verdict import prompt_for

        prompts = np.array([prompt_for(tx, f) for tx, f in items], dtype=object)
        future, self.ref = self.engine.submit({"prompt": prompts}, deadline_ms=self.deadline_ms)
        try:
            return future.result(timeout=self.deadline_ms / 1000.0)["p_fraud"].tolist()
        except concurrent.futures.TimeoutError:
            # Not cancelled: the batcher drops it at its deadline (it does not expect cancelled futures).
            raise TimeoutError(f"LLM verdicts not back within {self.deadline_ms:.0f} ms") from None

    def close(self) -> None:
        self.engine.close()


class LiveScorer:
    """The processor's ``BatchScorer`` over the fast engine (run with :class:`~.adapters.FraudFastAdapter`)."""

    def __init__(self, fast_engine, llm: BatchedVerdict | None = None, metrics: ServiceMetrics | None = None,
                 shadow: ShadowScorer | None = None, novelty_engine=None, rules_engine=None,
                 features: str = "kernel"):
        self._state_type, self._tiered = FEATURE_IMPLEMENTATIONS[features]
        self.fast = fast_engine
        self.llm = llm
        self.metrics = metrics
        self.shadow = shadow
        self.novelty = novelty_engine
        self.rules = rules_engine
        self._last_ref: str | None = None
        self._last_tiers: tuple[str | None, str | None] = (None, None)

    def encode_state(self, state: AccountState | KernelState) -> bytes:
        return state.to_bytes()

    def restore_state(self, snapshot: bytes | None, transactions: Sequence[bytes]) -> AccountState | KernelState:
        state = self._state_type.from_bytes(snapshot) if snapshot else self._state_type()
        step = self._tiered.advance
        for raw in transactions:
            step(state, parse_transaction(raw))
        return state

    def score_batch(self, requests: Sequence[ScoreRequest]) -> list[ScoredTransaction]:
        items = [(r.transaction, r.state if r.state is not None else self._state_type()) for r in requests]
        with ExitStack() as leases:
            app: FastApp = leases.enter_context(self.fast.lease()).app  # built, checked and warmed before the switch
            novelty = leases.enter_context(self.novelty.lease()).app if self.novelty is not None else None
            rules = leases.enter_context(self.rules.lease()).app if self.rules is not None else None
            watch = self.shadow is not None or (self.metrics is not None and self.metrics.monitoring)
            recorder = _InputRecorder(app.model) if watch else None  # the feature matrix: shadow, drift
            scored = self._tiered(recorder or app.model, self.llm, app.config, novelty=novelty,
                                  rules=rules).score_batch(items)
        self._observe_tiers(novelty, rules, scored)
        ref = app.ref
        if self.metrics is not None and self.metrics.monitoring:
            self.metrics.observe_model(ref, app.model.card, recorder.x,
                                       np.fromiter((s.fast_probability for s in scored), np.float64, len(scored)))
        if ref != self._last_ref:
            if self._last_ref is not None and self.metrics is not None:
                self.metrics.swaps.labels(ref).inc()
            logger.info("scoring with %s (thresholds %s)", ref, app.config)
            self._last_ref = ref
        if self.shadow is not None and recorder is not None:
            self.shadow.score(scored, recorder.x)  # the champion's own feature matrix; never raises
        return scored  # ScoredTransaction has every attribute of the processor's ScoreResult

    def _observe_tiers(self, novelty, rules, scored: Sequence[ScoredTransaction]) -> None:
        tiers = (novelty.ref if novelty is not None else None, rules.ref if rules is not None else None)
        if tiers != self._last_tiers:
            logger.info("scoring with novelty %s and rules %s (%d rules)", tiers[0], tiers[1],
                        len(rules.rules) if rules is not None else 0)
            self._last_tiers = tiers
        if self.metrics is None or (novelty is None and rules is None):
            return
        escalated = 0
        for s in scored:
            for name in s.fields["rules_fired"]:
                self.metrics.rule_hits.labels(name).inc()
            escalated += "novelty" in s.fields["reason_codes"]
        if escalated:
            self.metrics.novelty_escalations.inc(escalated)

    def close(self) -> None:
        self.fast.close()
        for engine in (self.novelty, self.rules):
            if engine is not None:
                engine.close()
        if self.llm is not None:
            self.llm.close()
        if self.shadow is not None:
            self.shadow.close()


def _llm_reference(fast_engine, config: ModelConfig) -> str | None:
    """--llm-model, else the LLM the fast model's card names, followed through its production alias."""
    if config.llm_model:
        return config.llm_model
    named = card_of(fast_engine.version).get("llm")
    return named.split("@")[0] if named and config.model_root is not None else None


def build_live_scorer(config: ModelConfig, metrics: ServiceMetrics | None = None) -> LiveScorer:
    """Open the models.  Raises UserError on an unknown or corrupt fast model; an LLM that cannot be
    opened is logged and the grey band then falls back with ``llm_unavailable``."""
    import torch

    from npusuite.platform.engine import ModelEngine

    # Batches are small (tens to hundreds of rows); intra-op threads only add synchronisation and
    # fight the Kafka client and the broker for the cores.
    torch.set_num_threads(config.torch_threads)
    adapter = FraudFastAdapter(grey_low=config.grey_low, grey_high=config.grey_high)
    # A version without thresholds or of another feature set is refused here (SwapError, a UserError).
    fast = ModelEngine.open(config.model, root=config.model_root, follow_alias=True, device="cpu", adapter=adapter)
    llm = None
    llm_ref = _llm_reference(fast, config)
    if llm_ref:
        try:
            llm = BatchedVerdict.open(llm_ref, config.model_root, config.llm_deadline_ms)
        except Exception as exc:  # the fast tier must run without it
            logger.error("LLM verdict model %s unavailable, grey band falls back to the fast score: %s", llm_ref, exc)
    shadow = novelty = rules = None
    try:
        if config.shadow:
            shadow = ShadowScorer.open(config.shadow, config.model_root, fast.name)
        # A version that does not fit is refused here (SwapError, a UserError): start-up fails, not silently.
        if config.novelty_model:
            novelty = ModelEngine.open(config.novelty_model, root=config.model_root, follow_alias=True,
                                       device="cpu", adapter=FraudNoveltyAdapter())
        if config.rules:
            rules = ModelEngine.open(config.rules, root=config.model_root, follow_alias=True, device="cpu",
                                     adapter=FraudRulesAdapter())
    except BaseException:
        for opened in (fast, llm, shadow, novelty):
            if opened is not None:
                opened.close()
        raise
    if config.features == "kernel":
        feature_kernel.warm_up()  # compiled (or loaded from numba's cache) before the first batch
    logger.info("fast model %s, LLM %s, challenger %s, novelty %s, rules %s, features %s", fast.ref,
                llm.ref if llm else None, shadow.ref if shadow else None, novelty.ref if novelty else None,
                rules.ref if rules else None, config.features)
    return LiveScorer(fast, llm, metrics, shadow, novelty, rules, features=config.features)
