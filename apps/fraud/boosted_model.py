"""The boosted fast model: gradient-boosted trees over the streaming features, served as a torch module.

Why a second learner for the fast model's slot: on the leave-one-typology-out
protocol the MLP learns each known typology's signature (a new device, a burst
of tiny payments) so well that a typology it never saw ranks below the 1%
alert budget, while trees over the same features split on several weaker,
general signals at once (``docs/fraud-models.md``, "Boosted fast model").

Rules:

- :class:`FraudGBM` (architecture ``fraud-gbm``) is a
  :class:`~npusuite.fraud.fast_model.FastModule`: the same risk table,
  standardisation and Platt calibration as the MLP, so the tiered scorer, the
  reasons (occlusion over the same groups), the adapters and the repository
  treat it like the MLP.  Its :meth:`raw` logit is scikit-learn's
  :class:`~sklearn.ensemble.HistGradientBoostingClassifier` decision function
  on the standardised features, copied into tree tables and walked by
  :class:`~npusuite.fraud.novelty_forest.ForestTensors` (the novelty forest's
  compiled walk): no pickled estimator is saved or loaded.
- The trees are fitted on the standardised rows (trees are invariant to that
  monotone map; it keeps occlusion's "set a group to the population average"
  equal to 0, as for the MLP) with the key columns as time-safe categorical
  risk, or held at 0 without learned risk: no hash bucket is split on.
- Class imbalance: ``class_weight="balanced"``; the probability is then
  re-calibrated by Platt scaling on the last ``calibration_fraction`` of the
  time-ordered training rows, as for the MLP.
- ``forward`` equals the fitted classifier's decision function (up to float32
  threshold rounding, which :func:`~npusuite.fraud.novelty_forest` makes
  exact) followed by the calibration (``tests/fraud/test_boosted_model.py``).
- Reasons: per reason group, the group's share of the logit along each
  tree's decision path (each split moves the row from a node's expected
  value to its child's; the move is the split feature's group's), summed over
  trees and scaled by the calibration: one compiled walk, where the MLP's
  occlusion needs a forward pass per group (13 tree walks).  The shares and
  the trees' expected values add up to the calibrated logit exactly.
- :func:`train_fast_gbm` is deterministic for a given seed and data.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numba
import numpy as np
import torch

from npusuite.fraud.fast_model import (
    REASON_GROUPS,
    FastModule,
    RiskInputs,
    calibrate,
    prepare_rows,
    set_standardisation,
)
from npusuite.fraud.features import FEATURE_NAMES, N_FEATURES
from npusuite.fraud.novelty_forest import ForestTensors, float32_thresholds
from npusuite.platform.runtime.modules import register_architecture

logger = logging.getLogger(__name__)

ARCH = "fraud-gbm"


@numba.njit(cache=False, nogil=True)
def _attribute(z: np.ndarray, feature: np.ndarray, threshold: np.ndarray, children: np.ndarray,
               node_value: np.ndarray, depths: np.ndarray, group_of: np.ndarray, n_groups: int
               ) -> np.ndarray:  # pragma: no cover - compiled
    """(B, n_groups + 1): per row, each group's share of the path moves, and in the last column the sum of the
    trees' root values (a split on a feature in no group counts there too)."""
    out = np.zeros((z.shape[0], n_groups + 1))
    for t in range(feature.shape[0]):
        depth = depths[t]
        for b in range(z.shape[0]):
            node = 0
            out[b, n_groups] += node_value[t, 0]
            for _ in range(depth):
                f = feature[t, node]
                child = children[t, node, np.int32(z[b, f] > threshold[t, node])]
                g = group_of[f]
                out[b, g if g >= 0 else n_groups] += node_value[t, child] - node_value[t, node]
                node = child
    return out


@functools.cache  # per feature count, not per batch: read on the scoring path
def _group_of(n_features: int) -> np.ndarray:
    group_of = np.full(n_features, -1, dtype=np.int64)
    for g, names in enumerate(REASON_GROUPS.values()):
        for name in names:
            group_of[FEATURE_NAMES.index(name)] = g
    return group_of


@register_architecture(ARCH)
class FraudGBM(FastModule):
    """features (B, F) -> calibrated fraud probability (B,), by boosted trees."""

    architecture = ARCH

    def __init__(self, n_features: int = N_FEATURES, risk_columns: list[int] | None = None,
                 risk_sizes: list[int] | None = None, n_trees: int = 1, n_nodes: int = 1, depth: int = 1):
        super().__init__(n_features, risk_columns, risk_sizes)
        self.trees = ForestTensors(n_trees, n_nodes, n_features, depth)
        self.register_buffer("baseline", torch.zeros((), dtype=torch.float64))
        # Every node's expected value (the count-weighted mean of its leaves), for the reasons' path shares.
        self.register_buffer("node_value", torch.zeros(n_trees, n_nodes, dtype=torch.float64))

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        return (self.trees.leaf_sum(z) + self.baseline).to(torch.float32)

    def group_contributions(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The calibrated logit and each reason group's path share of it (module rules), in one walk."""
        if z.device.type != "cpu" or len(z) == 0:  # the compiled walk is CPU-only; occlusion elsewhere
            return super().group_contributions(z)
        trees = self.trees
        feature, threshold, children, _, depths = trees.compact()
        shares = torch.from_numpy(_attribute(np.ascontiguousarray(z.to(torch.float32).numpy()), feature, threshold,
                                             children, self.node_value.numpy(), depths,
                                             _group_of(z.shape[1]), len(REASON_GROUPS)))
        a, b = (float(v) for v in self.calibration)
        logit = (a * (shares.sum(dim=1) + float(self.baseline)) + b).to(torch.float32)
        return logit, [a * shares[:, g] for g in range(len(REASON_GROUPS))]

    def config(self) -> dict:
        return {**super().config(), **{k: v for k, v in self.trees.config.items() if k != "n_columns"}}


@dataclass(frozen=True)
class GbmTrainConfig:
    """scikit-learn's HistGradientBoostingClassifier settings (its defaults, balanced classes)."""

    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    l2_regularization: float = 0.0
    calibration_fraction: float = 0.2
    seed: int = 0


def _copy_trees(module: FraudGBM, predictors: list) -> None:
    for i, nodes in enumerate(predictors):
        n = len(nodes)
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(n)
        module.trees.feature[i, :n] = torch.from_numpy(np.where(leaf, 0, nodes["feature_idx"]))
        threshold = float32_thresholds(nodes["num_threshold"])
        module.trees.threshold[i, :n] = torch.from_numpy(np.where(leaf, np.inf, threshold).astype(np.float32))
        module.trees.left[i, :n] = torch.from_numpy(np.where(leaf, own, nodes["left"]).astype(np.int64))
        module.trees.right[i, :n] = torch.from_numpy(np.where(leaf, own, nodes["right"]).astype(np.int64))
        n_nodes = module.trees.left.shape[1]
        module.trees.left[i, n:] = torch.arange(n, n_nodes)  # padding: self-loops never reached
        module.trees.right[i, n:] = torch.arange(n, n_nodes)
        module.trees.leaf_length[i, :n] = torch.from_numpy(np.where(leaf, nodes["value"], 0.0).astype(np.float32))
        value = np.where(leaf, nodes["value"].astype(np.float32), 0.0).astype(np.float64)
        count = nodes["count"].astype(np.float64)
        for j in range(n - 1, -1, -1):  # children come after their parent in scikit-learn's node order
            if not leaf[j]:
                lo, hi = int(nodes["left"][j]), int(nodes["right"][j])
                assert lo > j and hi > j, "a child before its parent"
                value[j] = (value[lo] * count[lo] + value[hi] * count[hi]) / max(1.0, count[lo] + count[hi])
        module.node_value[i, :n] = torch.from_numpy(value)


def train_fast_gbm(x: np.ndarray, y: np.ndarray, config: GbmTrainConfig = GbmTrainConfig(),
                   risk: RiskInputs | None = None) -> tuple[FraudGBM, dict]:
    """Train on the time-ordered rows ``x``/``y``; the last ``calibration_fraction`` calibrates.

    As :func:`~npusuite.fraud.fast_model.train_fast_model` (same risk handling, same returned figures), with
    boosted trees for the network.  Raises ValueError when there are too few fraud labels."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, cut, risk = prepare_rows(x, y, config.calibration_fraction, risk)
    probe = FastModule(x.shape[1])
    set_standardisation(probe, x[:cut])
    with torch.inference_mode():
        z_fit = probe.scale(torch.from_numpy(x[:cut])).numpy()
    hgb = HistGradientBoostingClassifier(max_iter=config.max_iter, learning_rate=config.learning_rate,
                                         max_leaf_nodes=config.max_leaf_nodes,
                                         l2_regularization=config.l2_regularization, class_weight="balanced",
                                         random_state=config.seed)
    hgb.fit(z_fit.astype(np.float64), y[:cut])
    predictors = [p[0].nodes for p in hgb._predictors]
    module = FraudGBM(x.shape[1], risk.columns if risk else None, risk.sizes if risk else None,
                      n_trees=len(predictors), n_nodes=max(len(p) for p in predictors),
                      depth=max(1, max(int(p["depth"].max()) for p in predictors)))
    set_standardisation(module, x[:cut])  # the same numbers as the probe's, on the same rows
    module.trees.columns.copy_(torch.arange(x.shape[1]))
    _copy_trees(module, predictors)
    module.baseline.fill_(float(np.ravel(hgb._baseline_prediction)[0]))
    module.eval()
    info = calibrate(module, x, y, cut, risk)
    logger.info("boosted fast model: %d trees on %d rows (%d fraud); Platt a=%.3f b=%.3f on %d rows",
                len(predictors), cut, int(y[:cut].sum()), *info["platt"], len(x) - cut)
    return module, {**info, "trees": len(predictors), "learner": "gbm"}
