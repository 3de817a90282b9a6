"""The novelty tier and analysts' rules as methods of the leave-one-typology-out protocol.

The supervised fast model alone is one of them too (``novelty=False``), so the table's "supervised" column
and the tiers built on it come from one trained model per fold.

:class:`TierMethod` plugs into :func:`npusuite.fraud.leave_out.leave_out` (``fit_predict(train, test) ->
scores``), so the table can hold the issue's columns "supervised + novelty" and "supervised + novelty +
rules" beside the supervised model alone.  Rules:

- Per fold, on the training part only: the fast model as ``fraud train`` trains it (its thresholds from
  its own calibration slice, :func:`~npusuite.fraud.training.choose_thresholds`) and the novelty model on
  the part's legitimate rows (:func:`~npusuite.fraud.novelty.train_novelty`: no fraud label is used).
  Both are fitted once per training part and shared by every :class:`TierMethod` of one :class:`Tiers`.
- Scores follow the tiered scorer's rule (:mod:`npusuite.fraud.novelty_rule`): the supervised
  probability, raised by the novelty excess with :func:`~npusuite.fraud.novelty_rule.combined_score` on
  the fast model's review/decline thresholds.  The LLM tier and reasons are left out (they do not move
  a score outside the grey band).
- A rule that fires sends the transaction to review in the scorer, where its score stays the models'.
  The table ranks by score, so a hit is ranked as a review would be queued: at least the ``review``
  threshold, ties broken by the models' score.
- :data:`EXAMPLE_RULES` is a small generic rule set written from the features' documented meaning
  (``docs/fraud-api.md``), before and without looking at any left-out result; a bank's analysts would
  write their own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from npusuite.fraud.boosted_model import GbmTrainConfig, train_fast_gbm
from npusuite.fraud.fast_model import FastTrainConfig, train_fast_model
from npusuite.fraud.leave_out import Part
from npusuite.fraud.novelty import NoveltyModel, NoveltyTrainConfig, train_novelty
from npusuite.fraud.novelty_rule import (  # noqa: F401  (re-exported: the table's helpers)
    TAIL_FLOOR,
    NoveltyConfig,
    combined_score,
    empirical_tail_log_odds,
    tail_log_odds,
)
from npusuite.fraud.novelty_sequence import SequenceTrainConfig, offline_history
from npusuite.fraud.rules import RuleSet, parse_rule_set
from npusuite.fraud.training import choose_thresholds

logger = logging.getLogger(__name__)

#: Generic example rules (see the module rules): each names a behaviour the feature docs describe as risky.
EXAMPLE_RULES: dict = {"rules": [
    {"name": "atm-burst-abroad", "when": 'channel == "atm" and cnt_1h >= 3 and country != "GB"',
     "description": "three or more withdrawals in an hour, abroad"},
    {"name": "card-testing-burst", "when": "small_ecom_10m >= 5 and small_ecom_merchants_10m >= 3",
     "description": "a burst of tiny web payments at several shops within ten minutes"},
    {"name": "impossible-travel", "when": 'channel == "card_present" and geo_speed_log > 1000',
     "description": "in person faster than 1,000 km/h from the last card-present payment"},
    {"name": "large-transfer-new-payee", "when": 'channel == "transfer" and new_merchant and transfer_to_max_log >= 10',
     "description": "a transfer to a new payee ten times the largest before"},
    {"name": "unfamiliar-access-large", "when": "unfamiliar_access and amount_to_median_log >= 5",
     "description": "new device and network, five times the usual amount"},
]}


@dataclass
class _Fitted:
    probability: np.ndarray  # the fast model's, on the test part
    excess: np.ndarray       # the novelty rule's t, on the test part
    review: float
    decline: float
    p_cal: np.ndarray | None = None  # the fast model's, on its calibration slice (the training part's last rows)
    y_cal: np.ndarray | None = None


def with_profile(train: Part, test: Part) -> tuple[np.ndarray, np.ndarray]:
    """Both parts' streaming feature rows with the behavioural profile (:mod:`npusuite.fraud.novelty_profile`)
    appended, float32: the training part first, then the test part continuing its states (past only)."""
    from npusuite.fraud.novelty_profile import ProfileBuilder

    builder = ProfileBuilder()
    return (np.hstack([train.x, builder.matrix(train.transactions)]).astype(np.float32),
            np.hstack([test.x, builder.matrix(test.transactions)]).astype(np.float32))


@dataclass
class Tiers:
    """Fits the fast and novelty models once per training part, for every method built from it.

    ``boosted``: the fast model is the boosted trees of :mod:`npusuite.fraud.boosted_model` (``fraud train
    --learner gbm``) instead of the MLP; ``with_risk``: with learned categorical risk (``--categorical-risk``).
    ``novelty_from``: another :class:`Tiers` whose novelty model (the same for the same training part) is
    reused, so two fast learners share one novelty model per fold.  ``profile_inputs`` (evaluation only): the
    fast model also reads the behavioural profile (:mod:`npusuite.fraud.novelty_profile`, computed from the past
    only: the training part, then the test part continuing its states) as inputs beside the streaming features;
    the novelty model stays on the streaming features.  The live scorer does not carry the profile's state."""

    fast: FastTrainConfig = FastTrainConfig()
    novelty: NoveltyTrainConfig = NoveltyTrainConfig()
    boosted: GbmTrainConfig | None = None
    with_risk: bool = False
    novelty_from: Tiers | None = None
    profile_inputs: bool = False
    _cache: dict[tuple[int, int], _Fitted] = field(default_factory=dict)
    _novelty: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, NoveltyModel]] = field(default_factory=dict)

    def _novelty_scores(self, train: Part, test: Part) -> tuple[np.ndarray, np.ndarray, NoveltyModel]:
        """(``t`` of the documented rule, legitimate tail log-odds :func:`tail_log_odds`) on the test part, and
        the novelty model fitted once per fold."""
        if self.novelty_from is not None:
            return self.novelty_from._novelty_scores(train, test)
        key = (id(train), id(test))
        if key not in self._novelty:
            self._novelty.clear()
            ae, card = train_novelty(train.x, train.y, self.novelty)
            novelty = NoveltyModel(ae, "fraud-novelty@leave-out", card, NoveltyConfig.from_card(card))
            raw = novelty.score(test.x)[0]
            self._novelty[key] = (novelty.config.excess(raw), tail_log_odds(raw, card["calibration"]["quantiles"]),
                                  novelty)
        return self._novelty[key]

    def novelty_model(self, train: Part, test: Part) -> NoveltyModel:
        """The novelty model of this fold (fitted once, shared with :meth:`excess`)."""
        return self._novelty_scores(train, test)[2]

    def excess(self, train: Part, test: Part) -> np.ndarray:
        """The novelty rule's ``t`` on the test part (the novelty model fitted once per fold)."""
        return self._novelty_scores(train, test)[0]

    def tail(self, train: Part, test: Part) -> np.ndarray:
        """:func:`tail_log_odds` of the novelty score on the test part (the same model as :meth:`excess`)."""
        return self._novelty_scores(train, test)[1]

    def fitted(self, train: Part, test: Part) -> _Fitted:
        key = (id(train), id(test))
        if key not in self._cache:
            self._cache.clear()  # one fold at a time
            import torch

            risk = None
            if self.with_risk:
                from npusuite.fraud.categorical import RiskConfig
                from npusuite.fraud.training import Dataset, learn_risk

                risk, _ = learn_risk(Dataset(train.transactions, train.y, list(train.types), train.x), RiskConfig())
            x_train, x_test = with_profile(train, test) if self.profile_inputs else (train.x, test.x)
            if self.boosted is not None:
                module, info = train_fast_gbm(x_train, train.y, self.boosted, risk=risk)
            else:
                module, info = train_fast_model(x_train, train.y, self.fast, progress=False, risk=risk)
            thresholds = choose_thresholds(info["p_cal"], info["y_cal"], 0.01)
            with torch.inference_mode():
                p = module(torch.from_numpy(x_test)).double().numpy()
            excess = self.excess(train, test)
            self._cache[key] = _Fitted(p, excess, thresholds["review"], thresholds["decline"], info["p_cal"],
                                       info["y_cal"])
        return self._cache[key]

    def method(self, name: str, rules: dict | None = None, novelty: bool = True) -> TierMethod:
        """``novelty=False``: the fast model's probability alone (the same model the other columns build on,
        so "supervised" costs no second training)."""
        return TierMethod(name, self, None if rules is None else parse_rule_set(rules), novelty)


@dataclass(frozen=True)
class TierMethod:
    """Supervised + novelty (+ rules when given): a :class:`npusuite.fraud.leave_out.Method`."""

    name: str
    tiers: Tiers
    rules: RuleSet | None = None
    novelty: bool = True

    def fit_predict(self, train: Part, test: Part) -> np.ndarray:
        f = self.tiers.fitted(train, test)
        if not self.novelty:
            return f.probability.copy()
        score = np.array([combined_score(p, t, f.review, f.decline)
                          for p, t in zip(f.probability.tolist(), f.excess.tolist(), strict=True)])
        if self.rules is not None:
            hit = self.rules.evaluate(test.transactions, test.x).any(axis=1)
            logger.info("%s: rules fired on %d of %d test transactions", self.name, int(hit.sum()), len(hit))
            score = np.where(hit & (score < f.review), f.review + 1e-6 * score, score)
        return score


@dataclass
class ProfileNovelty:
    """The profile forest's excess ``t`` on the test part, fitted once per fold (see :class:`ProfileTierMethod`)."""

    tiers: Tiers
    _cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def excess(self, train: Part, test: Part) -> np.ndarray:
        key = (id(train), id(test))
        if key not in self._cache:
            self._cache.clear()
            import torch

            from npusuite.fraud.features import FEATURE_NAMES, KEY_FEATURES
            from npusuite.fraud.novelty_forest import fit_forest
            from npusuite.fraud.novelty_rule import NoveltyRule

            cfg = self.tiers.novelty
            x_train, x_test = with_profile(train, test)
            columns = [j for j in range(x_train.shape[1]) if j >= len(FEATURE_NAMES)
                       or FEATURE_NAMES[j] not in KEY_FEATURES]
            legit = x_train[~train.y].astype(np.float32)
            cut = int(len(legit) * (1.0 - cfg.calibration_fraction))
            forest = fit_forest(legit[:cut], columns, cfg.trees, cfg.tree_rows, cfg.seed)
            rule = NoveltyRule()
            with torch.inference_mode():
                cal = forest(torch.from_numpy(legit[cut:])).double().numpy()
                novelty = forest(torch.from_numpy(x_test.astype(np.float32))).double().numpy()
            review_q, scale_q = np.quantile(cal, [rule.review_quantile, rule.scale_quantile])
            self._cache[key] = np.nan_to_num((novelty - review_q) / max(1e-12, scale_q - review_q), nan=0.0)
        return self._cache[key]


@dataclass(frozen=True)
class ProfileTierMethod:
    """Supervised + novelty where the forest also reads the behavioural profile
    (:mod:`npusuite.fraud.novelty_profile`): a forest fitted on the legitimate training rows of [streaming
    features without the key hash buckets, profile], calibrated on the last 20% of them, combined by the same
    documented rule (:class:`~npusuite.fraud.novelty_rule.NoveltyRule`) with the fast model of ``tiers``
    (``with_risk=False``) or the fast model with learned categorical risk (``with_risk=True``, trained here,
    thresholds from its own calibration slice).  Evaluation only: the live scorer does not carry the profile's
    state yet."""

    name: str
    profile: ProfileNovelty
    with_risk: bool = False

    def fit_predict(self, train: Part, test: Part) -> np.ndarray:
        t = self.profile.excess(train, test)
        if self.with_risk:
            import torch

            from npusuite.fraud.categorical import RiskConfig
            from npusuite.fraud.training import Dataset, learn_risk

            risk, _ = learn_risk(Dataset(train.transactions, train.y, list(train.types), train.x), RiskConfig())
            module, info = train_fast_model(train.x, train.y, self.profile.tiers.fast, progress=False, risk=risk)
            thresholds = choose_thresholds(info["p_cal"], info["y_cal"], 0.01)
            review, decline = thresholds["review"], thresholds["decline"]
            with torch.inference_mode():
                p = module(torch.from_numpy(test.x)).double().numpy()
        else:
            f = self.profile.tiers.fitted(train, test)
            p, review, decline = f.probability, f.review, f.decline
        return np.array([combined_score(pi, e, review, decline) for pi, e in zip(p.tolist(), t.tolist(), strict=True)])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class BlendTierMethod:
    """Evaluation only: two fast models as one (e.g. the MLP and the boosted trees, each with learned categorical
    risk), its review/decline thresholds chosen on the same combination of their calibration slices (both
    learners calibrate on the same last rows of the training part), then the novelty tier of ``a`` by the
    documented rule, as :class:`TierMethod` does.  The live scorer serves one fast model.

    ``rule``: ``"mean-logit"``, the mean of the two calibrated logits (written down before its first leave-out
    run, on seed 42); ``"max"``, the larger of the two calibrated probabilities, so a transaction either learner
    finds risky ranks as that learner ranks it (chosen on the development seed 7 among the combinations in
    docs/fraud-models.md, "A second seed", then run on seed 42)."""

    name: str
    a: Tiers
    b: Tiers
    novelty: bool = True
    rule: str = "mean-logit"

    def __post_init__(self) -> None:
        if self.rule not in ("mean-logit", "max"):
            raise ValueError(f"unknown blend rule {self.rule!r} (mean-logit, max)")

    def _combine(self, pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
        if self.rule == "max":
            return np.maximum(pa, pb)
        return 1 / (1 + np.exp(-(_logit(pa) + _logit(pb)) / 2))

    def fit_predict(self, train: Part, test: Part) -> np.ndarray:
        fa, fb = self.a.fitted(train, test), self.b.fitted(train, test)
        if not np.array_equal(fa.y_cal, fb.y_cal):
            raise ValueError("the two fast models calibrated on different rows")
        p = self._combine(fa.probability, fb.probability)
        if not self.novelty:
            return p
        p_cal = self._combine(fa.p_cal, fb.p_cal)
        thresholds = choose_thresholds(p_cal, fa.y_cal, 0.01)
        return np.array([combined_score(pi, t, thresholds["review"], thresholds["decline"])
                         for pi, t in zip(p.tolist(), self.a.excess(train, test).tolist(), strict=True)])


@dataclass
class SequenceTierMethod:
    """The novelty tier with the account's recent sequence (:mod:`npusuite.fraud.novelty_sequence`) beside the
    forest, as served: ``fraud train-novelty --sequence``.

    Per fold, on the training part only: :func:`~npusuite.fraud.novelty.train_novelty` with ``config`` as its
    sequence detector (the forest's settings are ``tiers``' novelty model's, so its forest is the same one), then
    :meth:`~npusuite.fraud.novelty.NoveltyModel.score` on the test part with each row's previous rows as a live
    account state keeps them (:func:`~npusuite.fraud.novelty_sequence.offline_history`, the training part's rows
    before the test part's).  The novelty is the larger of the forest's and the sequence's legitimate tail
    evidence, gated by the card's rule (its own 99.8% and 99.99% on the calibration rows), then
    :func:`~npusuite.fraud.novelty_rule.combined_score` with the fast model of ``tiers``.  The settings and the
    rule were fixed before the first run (docs/fraud-models.md, "A learned sequence model")."""

    name: str
    tiers: Tiers
    config: SequenceTrainConfig = SequenceTrainConfig()
    #: Another method whose novelty model (the same for the same fold) is reused: two fast learners, one
    #: sequence model per fold.
    sequence_from: SequenceTierMethod | None = None
    _cache: dict[tuple[int, int], tuple[NoveltyModel, np.ndarray]] = field(default_factory=dict)

    def _fitted(self, train: Part, test: Part) -> tuple[NoveltyModel, np.ndarray]:
        if self.sequence_from is not None:
            return self.sequence_from._fitted(train, test)
        key = (id(train), id(test))
        if key not in self._cache:
            self._cache.clear()
            source = self.tiers
            while source.novelty_from is not None:
                source = source.novelty_from
            ae, card = train_novelty(train.x, train.y, replace(source.novelty, sequence=self.config),
                                     transactions=train.transactions)
            model = NoveltyModel(ae, "fraud-novelty@leave-out", card, NoveltyConfig.from_card(card))
            transactions = [*train.transactions, *test.transactions]
            rows = len(train.y) + np.arange(len(test.y))
            history = offline_history(transactions, np.vstack([train.x, test.x]), rows)
            self._cache[key] = (model, model.config.excess(model.score(test.x, history).novelty))
        return self._cache[key]

    def novelty_model(self, train: Part, test: Part) -> NoveltyModel:
        """The fold's novelty model with its sequence detector (fitted once per fold)."""
        return self._fitted(train, test)[0]

    def excess(self, train: Part, test: Part) -> np.ndarray:
        """The card rule's ``t`` on the test part."""
        return self._fitted(train, test)[1]

    def fit_predict(self, train: Part, test: Part) -> np.ndarray:
        f = self.tiers.fitted(train, test)
        return np.array([combined_score(p, t, f.review, f.decline)
                         for p, t in zip(f.probability.tolist(), self.excess(train, test).tolist(), strict=True)])


@dataclass(frozen=True)
class EvidenceTierMethod:
    """Evaluation only: novelty as evidence added to the supervised log-odds, not as a gate.

    ``score = logit(p) + weight * tail_log_odds(novelty)``, ranked as is (the table measures ranking).  Where the
    documented rule (:class:`~npusuite.fraud.novelty_rule.NoveltyRule`) lifts a transaction only above the
    99.8% legitimate quantile, this lets moderately unusual behaviour add to a moderate supervised score.  The
    argument for the form: against a fraud whose legitimate tail share ``u`` has density ``a u^(a-1)``, the
    likelihood ratio is ``a u^(a-1)``, whose log is ``(1 - a) log(1/u)`` plus a constant; ``weight = 0.5``
    (``a = 0.5``) was fixed before the first leave-out run (session 11, on the development seed 7), halfway
    between ignoring novelty (``a = 1``) and trusting it fully (``a -> 0``).  ``p`` is ``a``'s fast model, or
    with ``b`` the :class:`BlendTierMethod` combination ``rule`` of the two.

    ``gate=True`` (added after the first run on seed 7, where the evidence alone lost card testing: a strong
    "legitimate" logit outweighs even the largest novelty evidence): the evidence-adjusted probability then goes
    through the documented gate, so novelty above the 99.8% legitimate quantile still means at least a review,
    on ``a``'s thresholds.  Not served."""

    name: str
    a: Tiers
    b: Tiers | None = None
    rule: str = "mean-logit"
    weight: float = 0.5
    gate: bool = False

    def fit_predict(self, train: Part, test: Part) -> np.ndarray:
        fa = self.a.fitted(train, test)
        p = fa.probability
        if self.b is not None:
            p = BlendTierMethod("", self.a, self.b, rule=self.rule)._combine(p, self.b.fitted(train, test).probability)
        evidence = _logit(p) + self.weight * self.a.tail(train, test)
        if not self.gate:
            return evidence
        q = 1.0 / (1.0 + np.exp(-evidence))
        return np.array([combined_score(pi, t, fa.review, fa.decline)
                         for pi, t in zip(q.tolist(), self.a.excess(train, test).tolist(), strict=True)])
