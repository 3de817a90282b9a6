"""An isolation forest as tensors: the second detector of the novelty tier, served like any torch module.

scikit-learn's :class:`~sklearn.ensemble.IsolationForest` fits the trees
(:func:`fit_forest`); :class:`ForestTensors` holds them as padded node tables
and walks every tree for a whole batch at once (one gather per level, at most
``ceil(log2(max_samples))`` levels), so the novelty model stays one
``nn.Module`` that the platform saves, loads, serves and hot-swaps, with no
pickled estimator.  Rules:

- ``forward(x) -> isolation`` equals ``-IsolationForest.score_samples`` on the
  same float32 rows (``tests/fraud/test_novelty_forest.py`` checks it): ``2 **
  (-mean path length / c(max_samples))``, in (0, 1], higher = isolated sooner
  = more unusual.  scikit-learn compares a float32 value with a float64
  threshold; the threshold is stored rounded *down* to float32, which gives
  the same answer for every float32 value, so the buffers are float32 (a
  module moved to float32 keeps them exact).
- ``columns`` maps the forest's inputs to columns of the feature row (the
  novelty groups' features: the key hash buckets are not magnitudes and stay
  out), so the module takes the scorer's full feature row.
- A leaf points at itself (feature 0, threshold +inf, both children itself),
  so walking a fixed number of levels ends on every tree's leaf.
- On CPU the walk is one compiled loop (numba, :func:`_walk`): torch's gathers
  cost a pass over (batch x trees) per level and made the forest ten times
  slower than the autoencoder; elsewhere (another device) the gathers run.
  Both give the same numbers (the tests compare them).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import nn

#: Rows walked together through one tree by :func:`_walk`: independent chains of loads that the CPU overlaps.
LANES = 8


@numba.njit(cache=False, nogil=True)
def _walk(z: np.ndarray, feature: np.ndarray, threshold: np.ndarray, children: np.ndarray,
          leaf_length: np.ndarray, depths: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Sum over trees of the leaf's value, per row.  Branch-free: ``children[t, node, go_right]``, and a
    leaf is its own child, so every row takes exactly ``depths[t]`` steps in tree ``t`` (no unpredictable
    branch; a tree's own depth, so one deep tree does not lengthen the walk of the others).

    One tree at a time (its nodes stay in cache for the whole batch), :data:`LANES` rows at a time: one row's
    step waits for its previous step's loads (node, feature, value, child), so a row alone leaves the core
    idle; eight interleaved chains keep it busy (2.2-2.7x faster on a 2-vCPU AMD EPYC, bench/fraud_hot_path.py).
    Each row's trees are still added in tree order, so the sums are the same to the bit."""
    n = z.shape[0]
    out = np.zeros(n)
    nodes = np.zeros(LANES, np.int32)
    whole = n - n % LANES
    for t in range(feature.shape[0]):
        depth = depths[t]
        ft, th, ch, ll = feature[t], threshold[t], children[t], leaf_length[t]
        for b0 in range(0, whole, LANES):
            nodes[:] = 0
            for _ in range(depth):
                for j in range(LANES):
                    node = nodes[j]
                    nodes[j] = ch[node, np.int32(z[b0 + j, ft[node]] > th[node])]
            for j in range(LANES):
                out[b0 + j] += ll[nodes[j]]
        for b in range(whole, n):
            node = 0
            for _ in range(depth):
                node = ch[node, np.int32(z[b, ft[node]] > th[node])]
            out[b] += ll[node]
    return out


def _tree_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Each tree's depth (levels below the root), from its child tables (a leaf is its own child)."""
    depths = np.zeros(left.shape[0], dtype=np.int64)
    for t in range(left.shape[0]):
        level, depth = np.array([0]), 0
        while True:
            kids = np.concatenate([left[t, level], right[t, level]])
            kids = np.unique(kids[kids != np.concatenate([level, level])])
            if not kids.size:
                break
            level, depth = kids, depth + 1
        depths[t] = depth
    return depths


def _average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): the average path length of an unsuccessful search in a binary search tree of n points."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class ForestTensors(nn.Module):
    """features (B, F) -> isolation score (B,) (see the module rules)."""

    def __init__(self, n_trees: int = 1, n_nodes: int = 1, n_columns: int = 1, depth: int = 1):
        super().__init__()
        self.depth = depth
        self.register_buffer("columns", torch.zeros(n_columns, dtype=torch.long))
        self.register_buffer("feature", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("threshold", torch.full((n_trees, n_nodes), float("inf")))
        self.register_buffer("left", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("right", torch.zeros(n_trees, n_nodes, dtype=torch.long))
        self.register_buffer("leaf_length", torch.zeros(n_trees, n_nodes))
        self.register_buffer("normaliser", torch.ones(()))
        self._compact: tuple | None = None  # int32 copies for the compiled walk, made on first use after loading

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._compact = None
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = self.leaf_sum(x)
        return torch.pow(2.0, -lengths / self.normaliser.double()).to(torch.float32)

    def leaf_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Per row, the sum over trees of the value of the leaf it reaches (float64): the isolation forest's
        total path length, a boosted model's logit less its baseline (:mod:`npusuite.fraud.boosted_model`)."""
        z = x.index_select(1, self.columns).to(torch.float32)  # (B, C)
        if z.device.type == "cpu":
            return torch.from_numpy(_walk(np.ascontiguousarray(z.numpy()), *self.compact()))
        return self.gathered(z)

    def compact(self) -> tuple[np.ndarray, ...]:
        """The tables for the compiled walk (CPU): feature, threshold, children ``[t, node, go_right]``, leaf
        value, each tree's depth; made on first use after loading."""
        if self._compact is None:
            self._compact = (self.feature.to(torch.int32).numpy(), self.threshold.float().numpy(),
                             torch.stack([self.left, self.right], dim=-1).to(torch.int32).contiguous().numpy(),
                             self.leaf_length.double().numpy(), _tree_depths(self.left.numpy(), self.right.numpy()))
        return self._compact

    def gathered(self, z: torch.Tensor) -> torch.Tensor:
        """The same walk as torch gathers on the selected columns ``z``, one pass over (batch x trees) per
        level (any device); the per-row leaf sum as :meth:`leaf_sum`."""
        n_trees, n_nodes = self.feature.shape
        offsets = torch.arange(n_trees, device=z.device).unsqueeze(0) * n_nodes  # (1, T)
        node = torch.zeros(z.shape[0], n_trees, dtype=torch.long, device=z.device)  # (B, T)
        feature, threshold = self.feature.reshape(-1), self.threshold.reshape(-1)
        left, right = self.left.reshape(-1), self.right.reshape(-1)
        for _ in range(self.depth):
            flat = node + offsets
            value = z.gather(1, feature[flat])
            node = torch.where(value <= threshold[flat], left[flat], right[flat])
        return self.leaf_length.reshape(-1)[node + offsets].double().sum(dim=1)

    @property
    def config(self) -> dict:
        return {"n_trees": int(self.feature.shape[0]), "n_nodes": int(self.feature.shape[1]),
                "n_columns": int(self.columns.numel()), "depth": int(self.depth)}


def float32_thresholds(threshold: np.ndarray) -> np.ndarray:
    """float64 split thresholds rounded *down* to float32: for every float32 value ``v``, ``v <= t`` exactly when
    ``v <= float32_thresholds(t)`` (see the module rules)."""
    threshold = np.asarray(threshold, dtype=np.float64)
    down = threshold.astype(np.float32)
    return np.where(down.astype(np.float64) > threshold, np.nextafter(down, np.float32(-np.inf)), down)


def fit_forest(rows: np.ndarray, columns: list[int], n_trees: int = 200, max_samples: int = 512,
               seed: int = 0) -> ForestTensors:
    """Fit scikit-learn's isolation forest on ``rows[:, columns]`` and copy it into a :class:`ForestTensors`."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=n_trees, max_samples=min(max_samples, len(rows)), random_state=seed)
    forest.fit(np.asarray(rows, dtype=np.float32)[:, columns])
    trees = [(est.tree_, feats) for est, feats in zip(forest.estimators_, forest.estimators_features_, strict=True)]
    n_nodes = max(t.node_count for t, _ in trees)
    depth = max(int(t.max_depth) for t, _ in trees)
    module = ForestTensors(len(trees), n_nodes, len(columns), max(1, depth))
    module.columns.copy_(torch.tensor(columns, dtype=torch.long))
    for i, (tree, feats) in enumerate(trees):
        n = tree.node_count
        own = np.arange(n)
        leaf = tree.children_left == -1
        module.feature[i, :n] = torch.from_numpy(np.where(leaf, 0, np.asarray(feats)[np.maximum(tree.feature, 0)]))
        down = float32_thresholds(tree.threshold)
        module.threshold[i, :n] = torch.from_numpy(np.where(leaf, np.inf, down).astype(np.float32))
        module.left[i, :n] = torch.from_numpy(np.where(leaf, own, tree.children_left))
        module.right[i, :n] = torch.from_numpy(np.where(leaf, own, tree.children_right))
        module.left[i, n:] = torch.arange(n, n_nodes)  # padding: self-loops never reached
        module.right[i, n:] = torch.arange(n, n_nodes)
        lengths = tree.compute_node_depths() + _average_path_length(tree.n_node_samples) - 1.0
        module.leaf_length[i, :n] = torch.from_numpy(np.where(leaf, lengths, 0.0).astype(np.float32))
    module.normaliser.fill_(len(trees) * float(_average_path_length(np.array([forest.max_samples_]))[0]))
    return module
