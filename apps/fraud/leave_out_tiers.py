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
from dataclasses import dataclass, field

import numpy as np

from npusuite.fraud.fast_model import FastTrainConfig, train_fast_model
from npusuite.fraud.leave_out import Part
from npusuite.fraud.novelty import NoveltyModel, NoveltyTrainConfig, train_novelty
from npusuite.fraud.novelty_rule import NoveltyConfig, combined_score
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


@dataclass
class Tiers:
    """Fits the fast and novelty models once per training part, for every method built from it."""

    fast: FastTrainConfig = FastTrainConfig()
    novelty: NoveltyTrainConfig = NoveltyTrainConfig()
    _cache: dict[tuple[int, int], _Fitted] = field(default_factory=dict)

    def fitted(self, train: Part, test: Part) -> _Fitted:
        key = (id(train), id(test))
        if key not in self._cache:
            self._cache.clear()  # one fold at a time
            import torch

            module, info = train_fast_model(train.x, train.y, self.fast, progress=False)
            thresholds = choose_thresholds(info["p_cal"], info["y_cal"], 0.01)
            ae, card = train_novelty(train.x, train.y, self.novelty)
            novelty = NoveltyModel(ae, "fraud-novelty@leave-out", card, NoveltyConfig.from_card(card))
            with torch.inference_mode():
                p = module(torch.from_numpy(test.x)).double().numpy()
            excess = novelty.config.excess(novelty.score(test.x)[0])
            self._cache[key] = _Fitted(p, excess, thresholds["review"], thresholds["decline"])
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
