"""The pure tiered scorer, shared by offline ``fraud score`` and the live Kafka service.

Given a loaded fast model (and optionally an LLM verdict model), it turns a
batch of (transaction, account state) into scores with a decision, reason
codes and the model's ``name@version``.

Rules:
- A fast model whose card lists other features than this code computes is
  refused (UserError) when the scorer is built: retrain it.
- Pure: no I/O.  Input states are never changed; every result carries the
  account's *new* state.  If one account appears more than once in a batch,
  its later transactions see the state left by its earlier ones (batch order
  = time order).
- One batched forward pass of the fast model per batch (plus its occlusion
  passes for reasons, in the same call).
- Tiers: ``p >= decline`` declines; ``p`` in the grey band
  ``[grey_low, grey_high)`` goes to the LLM in one batched call, whose
  verdict decides review vs approve, and whose probability re-orders scores
  *within* the band only (the band's bounds are kept, so the ranking against
  transactions outside the band never changes); otherwise ``p >= review``
  reviews and the rest approve.
- If the band is non-empty but no LLM is loaded, or the LLM call raises, the
  fast model's decision stands and the reason ``llm_unavailable`` is added.
- ``model`` is the fast model's ``name@version``; when the LLM decided, its
  reference is added after a ``+`` (``fraud-fast@3+fraud-llm@2``).
- Novelty tier (optional, :mod:`npusuite.fraud.novelty`): one forward pass
  per batch on the same feature rows; a novelty model with a sequence
  detector also reads each transaction's previous feature rows, gathered
  from the account states as the batch advances them (only then).  Where novelty exceeds the card's
  ``review_quantile`` of legitimate behaviour, the decision is at least
  ``review``, the score is raised per the card's combination rule
  (:class:`~npusuite.fraud.novelty.NoveltyRule`), the reason ``novelty``
  says which behaviour is unusual, and ``+<novelty ref>`` is added to
  ``model`` when it raised the score.  If the novelty model raises, the batch
  is scored without it (logged), like the LLM tier.
- Rules (optional, :mod:`npusuite.fraud.rules`): evaluated on every batch;
  each rule that fires raises the decision to at least its action, adds the
  reason ``rule_hit`` (``rule <name>: <condition>``) and its name to
  ``rules_fired``.  Rules change decisions, never the score (the ranking
  stays the models').
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from npusuite.fraud import reasons as rs
from npusuite.fraud.features import FEATURE_NAMES, AccountState, Features, advance, history_block
from npusuite.fraud.novelty_rule import NoveltyConfig, combined_score
from npusuite.fraud.rules import Rule
from npusuite.fraud.schema import Transaction
from npusuite.platform.contracts.labels import ReasonCode
from npusuite.platform.contracts.score import MAX_RULES_FIRED, FraudScore, ScoreFields, score_fields
from npusuite.platform.errors import UserError

if TYPE_CHECKING:  # the novelty model's module imports torch; this one stays pure
    from npusuite.fraud.novelty import NoveltyScores

#: Each transaction's previous feature rows (B, H, W) and their presence (B, H):
#: :func:`~npusuite.fraud.features.history_block`.
History = tuple[np.ndarray, np.ndarray]

logger = logging.getLogger(__name__)


def feature_matrix(feats: Sequence[Features]) -> np.ndarray:
    """The models' input: the feature vectors as one float32 matrix."""
    return np.array([f.values for f in feats], dtype=np.float32)


class VerdictModel(Protocol):
    """What the scorer needs from the LLM tier (see :mod:`npusuite.fraud.llm_verdict`)."""

    ref: str

    def fraud_probabilities(self, items: Sequence[tuple[Transaction, Features]]) -> list[float]:
        """P(fraud) per item, in one batched call.  May raise; the scorer then falls back."""
        ...


class FastScorer(Protocol):
    ref: str
    card: dict

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...


class NoveltyScorer(Protocol):
    """What the scorer needs from the novelty tier (see :class:`~npusuite.fraud.novelty.NoveltyModel`)."""

    ref: str
    config: NoveltyConfig
    #: Previous feature rows per transaction it reads (0: the transaction alone).
    history: int

    def score(self, x: np.ndarray, history: History | None = None) -> NoveltyScores: ...

    def reason(self, tx: Transaction, f: Features, scores: NoveltyScores, i: int) -> rs.Reason: ...


class RuleEvaluator(Protocol):
    """What the scorer needs from analysts' rules (see :class:`~npusuite.fraud.rules.RuleSet`)."""

    ref: str
    rules: tuple[Rule, ...]

    def evaluate(self, transactions: Sequence[Transaction], x: np.ndarray) -> np.ndarray: ...


_RANK = {"approve": 0, "review": 1, "decline": 2}


@dataclass(frozen=True)
class ScorerConfig:
    """Decision thresholds on the fast model's calibrated probability."""

    review: float
    decline: float
    grey_low: float
    grey_high: float
    max_reasons: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.grey_low <= self.grey_high <= 1.0:
            raise ValueError("need 0 <= grey_low <= grey_high <= 1")
        if not 0.0 < self.review <= self.decline <= 1.0:
            raise ValueError("need 0 < review <= decline <= 1")

    @classmethod
    def from_card(cls, card: dict, **overrides: float) -> ScorerConfig:
        """Thresholds from a fast model's card, with optional overrides (None = keep)."""
        t = dict(card.get("thresholds") or {})
        t.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(review=float(t["review"]), decline=float(t["decline"]), grey_low=float(t["grey_low"]),
                       grey_high=float(t["grey_high"]))
        except KeyError as exc:
            raise ValueError(f"model card has no threshold {exc}") from None


@dataclass
class ScoredTransaction:
    #: The ``fraud-scores`` record's fields (see :mod:`npusuite.platform.contracts.score`), built by
    #: ``score_fields``; validated only when ``score`` is read (the live path encodes them as they are).
    fields: ScoreFields
    state: AccountState
    features: Features
    llm_rationale: str | None = None
    escalated: bool = False
    llm_fallback: bool = False
    fast_probability: float = 0.0
    extras: dict = field(default_factory=dict)
    #: The config's ``{review, decline}`` thresholds that made ``decision``; alerts carry them.
    thresholds: dict[str, float] | None = None

    @property
    def score(self) -> FraudScore:
        """The ``fraud-scores`` record, validated (built on use: the live scorer only needs ``fields``)."""
        return FraudScore.model_validate(self.fields)


class TieredScorer:
    """Fast model for everything, the LLM for the grey band."""

    def __init__(self, fast: FastScorer, llm: VerdictModel | None = None, config: ScorerConfig | None = None,
                 clock: Callable[[], float] = time.perf_counter, novelty: NoveltyScorer | None = None,
                 rules: RuleEvaluator | None = None):
        trained_on = fast.card.get("features")
        if trained_on is not None and list(trained_on) != list(FEATURE_NAMES):
            raise UserError(f"{fast.ref} was trained on a different feature set ({len(trained_on)} features, "
                            f"this code computes {len(FEATURE_NAMES)}): retrain it with `npusuite fraud train`")
        self.fast = fast
        self.llm = llm
        self.config = config or ScorerConfig.from_card(fast.card)
        self.clock = clock
        self.novelty = novelty
        self.rules = rules

    @property
    def ref(self) -> str:
        return self.fast.ref

    @property
    def history(self) -> int:
        """Previous feature rows per transaction the novelty tier reads (0: none, so none are gathered)."""
        return getattr(self.novelty, "history", 0) if self.novelty is not None else 0

    def featurise(self, items: Sequence[tuple[Transaction, AccountState | None]]
                  ) -> tuple[list[Features], list[AccountState], History | None, np.ndarray]:
        """Features and new states, chaining states for repeated accounts; with a sequence novelty tier also
        each transaction's previous feature rows (:func:`~npusuite.fraud.features.history_block`); and the
        features as a float32 matrix (the models' input: an implementation that computes one returns it
        rather than rebuilding it from the tuples)."""
        latest: dict[str, AccountState] = {}
        feats, states, before = [], [], []
        keep_history = self.history > 0
        for tx, state in items:
            prior = latest.get(tx.account_id, state)
            new_state = prior.copy() if prior is not None else AccountState()
            if keep_history:
                before.append(new_state.history)
            feats.append(advance(new_state, tx))
            latest[tx.account_id] = new_state
            states.append(new_state)
        return feats, states, history_block(before) if keep_history else None, feature_matrix(feats)

    def score_batch(self, items: Sequence[tuple[Transaction, AccountState | None]]) -> list[ScoredTransaction]:
        """Score a batch in order.  Never raises on an LLM failure (falls back)."""
        if not items:
            return []
        started = self.clock()
        feats, states, history, x = self.featurise(items)
        probs, contrib = self.fast.contributions(x)
        txs = [tx for tx, _ in items]
        novelty = self._novelty(x, history)
        hits = self._rule_hits(txs, x)
        cfg = self.config
        probs_list = np.asarray(probs).tolist()
        grey = [i for i, p in enumerate(probs_list) if cfg.grey_low <= p < cfg.grey_high and p < cfg.decline]
        llm_p: dict[int, float] = {}
        fallback = False
        if grey:
            if self.llm is None:
                fallback = True
            else:
                try:
                    values = self.llm.fraud_probabilities([(items[i][0], feats[i]) for i in grey])
                    llm_p = {i: float(v) for i, v in zip(grey, values, strict=True)}
                except Exception as exc:  # the LLM tier must never stop scoring
                    logger.warning("LLM verdict model failed on %d transactions, using the fast model: %s",
                                   len(grey), exc)
                    fallback = True
        latency_ms = (self.clock() - started) * 1000.0
        groups = list(contrib)
        matrix = (np.stack([np.asarray(contrib[g]) for g in groups], axis=1) if groups
                  else np.zeros((len(items), 0)))
        reasons = rs.explain_batch_coded(txs, feats, groups, matrix, cfg.max_reasons)
        grey_set = set(grey)
        excess = self.novelty.config.excess(novelty.novelty) if novelty is not None else None
        thresholds = {"review": cfg.review, "decline": cfg.decline}
        out = []
        for i, tx in enumerate(txs):
            p = float(probs_list[i])
            why = reasons[i]
            model, rationale, score = self.fast.ref, None, p
            if i in llm_p:
                q = llm_p[i]
                width = cfg.grey_high - cfg.grey_low
                pos = (p - cfg.grey_low) / width if width > 0 else 0.5
                score = cfg.grey_low + width * min(0.999999, 0.5 * pos + 0.5 * q)
                decision = "review" if q >= 0.5 else "approve"
                verdict = "fraud" if q >= 0.5 else "legitimate"
                rationale = f"LLM verdict {verdict} (p_fraud={q:.2f}) on a grey-band fast score {p:.3f}"
                why = [*why, rs.llm_verdict(verdict, q)]
                model = f"{self.fast.ref}+{self.llm.ref}"
            else:
                decision = "decline" if p >= cfg.decline else "review" if p >= cfg.review else "approve"
                if fallback and i in grey_set:
                    why = [*why, rs.LLM_FALLBACK]
            fired: list[str] = []
            if novelty is not None and excess[i] >= 0:
                raised = combined_score(score, float(excess[i]), cfg.review, cfg.decline)
                if raised > score:
                    score, model = raised, f"{model}+{self.novelty.ref}"
                decision = decision if _RANK[decision] else "review"
                why = [*(w for w in why if w.code is not ReasonCode.NO_RISK),
                       self.novelty.reason(tx, feats[i], novelty, i)]
            if hits is not None and hits[i].any():
                rules = [r for r, hit in zip(self.rules.rules, hits[i].tolist(), strict=True) if hit]
                decision = max([decision, *(r.action for r in rules)], key=_RANK.__getitem__)
                fired = [r.name for r in rules[:MAX_RULES_FIRED]]
                why = [*(w for w in why if w.code is not ReasonCode.NO_RISK),
                       *(rs.rule_hit(r.name, r.when) for r in rules[:cfg.max_reasons])]
            fields = score_fields(tx.transaction_id, min(1.0, max(0.0, score)), decision, rs.phrases(why),
                                  rs.codes(why), model, round(latency_ms, 3), fired)
            escalated = i in grey_set
            out.append(ScoredTransaction(fields, states[i], feats[i], rationale, escalated=escalated,
                                         llm_fallback=fallback and escalated, fast_probability=p,
                                         thresholds=thresholds))
        return out

    def _novelty(self, x: np.ndarray, history: History | None) -> NoveltyScores | None:
        """The novelty tier's scores of the batch, or None without a novelty tier or when it failed."""
        if self.novelty is None:
            return None
        try:
            return self.novelty.score(x, history)
        except Exception as exc:  # like the LLM tier, the novelty tier must never stop scoring
            logger.warning("novelty model %s failed on %d transactions, scoring without it: %s", self.novelty.ref,
                           len(x), exc)
            return None

    def _rule_hits(self, txs: Sequence[Transaction], x: np.ndarray) -> np.ndarray | None:
        if self.rules is None or not self.rules.rules:
            return None
        try:
            return self.rules.evaluate(txs, x)
        except Exception as exc:  # evaluation is total by design; a bug there must not stop scoring either
            logger.warning("rules %s failed on %d transactions, scoring without them: %s", self.rules.ref, len(txs),
                           exc)
            return None
