"""The isolation forest as tensors: the same scores as scikit-learn's, on either walk, and through save/load."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import IsolationForest

from npusuite.fraud.features import N_FEATURES
from npusuite.fraud.novelty import NoveltyTrainConfig, save_novelty_model, train_novelty
from npusuite.fraud.novelty_forest import LANES, fit_forest
from npusuite.platform.runtime.modules import load_module


def _rows(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 12)) * scale).astype(np.float32)
    x[:, 4] = rng.random(n) < 0.1  # a binary column, as the features have
    return x


def test_scores_equal_scikit_learn_on_the_selected_columns():
    train, test = _rows(4000, 0), _rows(1500, 1, scale=3.0)
    columns = [0, 2, 4, 7, 11]
    module = fit_forest(train, columns, n_trees=40, max_samples=256, seed=5)
    reference = IsolationForest(n_estimators=40, max_samples=256, random_state=5).fit(train[:, columns])
    with torch.inference_mode():
        compiled = module(torch.from_numpy(test)).numpy()
        leaf_sum = module.gathered(torch.from_numpy(test).index_select(1, module.columns))
        gathered = torch.pow(2.0, -leaf_sum / module.normaliser.double()).to(torch.float32).numpy()
        assert np.allclose(leaf_sum.numpy(), module.leaf_sum(torch.from_numpy(test)).numpy(), rtol=1e-12)
    expected = -reference.score_samples(test[:, columns])
    assert np.allclose(compiled, expected, atol=1e-6), np.abs(compiled - expected).max()
    assert np.array_equal(compiled, gathered)
    assert not np.allclose(compiled, compiled.mean())  # scores that say something


def test_every_batch_size_walks_like_one_row_at_a_time():
    """The compiled walk takes rows in groups of LANES; a batch of any size, its remainder included, gives each
    row the same leaf sum as scoring the row alone (so a row's score never depends on its neighbours)."""
    train, test = _rows(3000, 3), _rows(2 * LANES + 3, 4, scale=2.0)
    module = fit_forest(train, list(range(12)), n_trees=30, max_samples=256, seed=1)
    with torch.inference_mode():
        alone = np.array([module.leaf_sum(torch.from_numpy(test[i:i + 1])).item() for i in range(len(test))])
        for size in (1, LANES - 1, LANES, LANES + 1, len(test)):
            got = module.leaf_sum(torch.from_numpy(test[:size])).numpy()
            assert np.array_equal(got, alone[:size]), size
        assert np.array_equal(module.gathered(torch.from_numpy(test)).numpy(), alone)
    assert len(set(alone.tolist())) > len(test) // 2  # rows that reach different leaves


def test_a_threshold_stored_in_float32_decides_like_the_float64_one():
    train = _rows(2000, 2)
    module = fit_forest(train, list(range(12)), n_trees=10, max_samples=128, seed=0)
    reference = IsolationForest(n_estimators=10, max_samples=128, random_state=0).fit(train)
    thresholds = np.concatenate([e.tree_.threshold[e.tree_.children_left != -1] for e in reference.estimators_])
    edge = np.tile(train[:1], (len(thresholds), 1))  # rows sitting exactly on float32 neighbours of thresholds
    col = np.concatenate([e.tree_.feature[e.tree_.children_left != -1] for e in reference.estimators_])
    edge[np.arange(len(thresholds)), col] = thresholds.astype(np.float32)
    with torch.inference_mode():
        got = module(torch.from_numpy(edge)).numpy()
    assert np.allclose(got, -reference.score_samples(edge), atol=1e-6)


def test_the_novelty_model_saves_and_loads_with_its_forest(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, N_FEATURES)).astype(np.float32)
    y = np.zeros(len(x), dtype=bool)
    module, card = train_novelty(x, y, NoveltyTrainConfig(epochs=1, hidden=8, bottleneck=2, trees=20, tree_rows=128))
    save_novelty_model(module, tmp_path / "nov", {**card, "ref": "fraud-novelty@1"})
    loaded = load_module(tmp_path / "nov")
    with torch.inference_mode():
        assert loaded.forest is not None and torch.equal(loaded(torch.from_numpy(x[:300])),
                                                         module(torch.from_numpy(x[:300])))
