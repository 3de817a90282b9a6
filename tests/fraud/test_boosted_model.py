"""The boosted fast model: scikit-learn's trees as a served torch module, its reasons, and `fraud train --learner`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from npusuite.fraud.boosted_model import FraudGBM, GbmTrainConfig, train_fast_gbm
from npusuite.fraud.fast_model import REASON_GROUPS, FastModel, FastModule, save_fast_model
from npusuite.fraud.features import FEATURE_NAMES, N_FEATURES
from npusuite.platform.repository import ModelRepository

AMOUNT = FEATURE_NAMES.index("amount_z")
VELOCITY = FEATURE_NAMES.index("cnt_1h")


def _data(n: int = 6000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    y = x[:, AMOUNT] + 0.5 * x[:, VELOCITY] + 0.5 * rng.normal(size=n) > 2.2
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[FraudGBM, dict, np.ndarray, np.ndarray]:
    x, y = _data()
    module, info = train_fast_gbm(x, y, GbmTrainConfig(max_iter=30, seed=3))
    return module, info, x, y


def test_the_module_is_scikit_learns_decision_function_then_platt(trained):
    module, info, x, y = trained
    cut = info["rows_fit"]
    with torch.inference_mode():
        z = module.standardise(torch.from_numpy(x))
        raw = module.raw(z).double().numpy()
    reference = HistGradientBoostingClassifier(max_iter=30, class_weight="balanced", random_state=3)
    reference.fit(z[:cut].numpy().astype(np.float64), y[:cut])
    expected = reference.decision_function(z.numpy().astype(np.float64))
    assert np.allclose(raw, expected, atol=1e-4), np.abs(raw - expected).max()
    a, b = info["platt"]
    with torch.inference_mode():
        p = module(torch.from_numpy(x)).double().numpy()
    assert np.allclose(p, 1 / (1 + np.exp(-(a * raw + b))), atol=1e-5)
    assert info["trees"] == len(reference._predictors)


def test_path_shares_add_up_to_the_logit_and_name_the_driving_groups(trained):
    module, _, x, _ = trained
    model = FastModel(module, "fraud-fast@gbm", {})
    probs, groups = model.contributions(x[:400])
    assert np.allclose(probs, model.predict(x[:400]), atol=1e-6)
    with torch.inference_mode():
        z = module.standardise(torch.from_numpy(x[:400]))
        logit, shares = module.group_contributions(z)
        root = float(module.node_value[:, 0].sum() + module.baseline)
    a, b = (float(v) for v in module.calibration)
    grouped = torch.stack(shares, dim=1).sum(dim=1).double().numpy()
    ungrouped_splits = a * (module.raw(z).double().numpy() - root) - grouped  # splits on features in no group
    assert np.allclose(logit.double().numpy(), a * root + b + grouped + ungrouped_splits, atol=1e-4)
    top = [max(groups, key=lambda g: abs(groups[g][i])) for i in range(len(probs))]
    assert set(top) <= {"amount", "velocity"} | set(REASON_GROUPS), top
    assert top.count("amount") > len(top) / 2  # the label follows amount_z most


def test_occlusion_and_path_shares_agree_on_which_group_matters(trained):
    module, _, x, _ = trained
    with torch.inference_mode():
        z = module.standardise(torch.from_numpy(x[:300]))
        _, path = module.group_contributions(z)
        _, occlusion = FastModule.group_contributions(module, z)
    g = list(REASON_GROUPS).index("amount")
    # not equal measures (occlusion moves the group to its mean, a tree's expectation is not at the mean)
    assert np.corrcoef(path[g].numpy(), occlusion[g].numpy())[0, 1] > 0.6


def test_saved_and_loaded_it_scores_the_same(trained, tmp_path):
    module, _, x, _ = trained
    save_fast_model(module, tmp_path / "fast", {"features": list(FEATURE_NAMES)})
    loaded = FastModel.load(tmp_path / "fast")
    assert isinstance(loaded.module, FraudGBM)
    with torch.inference_mode():
        assert np.array_equal(loaded.predict(x[:500]), module(torch.from_numpy(x[:500])).double().numpy())


def test_fraud_train_learner_gbm_is_served_by_the_tiered_scorer(fraud_data, tmp_path):
    from npusuite.fraud.bundle import load_scorer
    from npusuite.fraud.training import TrainConfig, load_dataset, train

    ds = load_dataset(fraud_data.transactions, [fraud_data.labels], progress=False)
    card = train(ds, tmp_path / "m", TrainConfig(with_llm=False, learner="gbm", gbm=GbmTrainConfig(max_iter=20)),
                 model_root=tmp_path / "repo", progress=False)
    assert card["learner"] == "gbm" and card["training"]["trees"] >= 1
    name, _, number = card["ref"].partition("@")
    version = ModelRepository(tmp_path / "repo").resolve(name, number)
    scorer = load_scorer(card["ref"], model_root=tmp_path / "repo", with_llm=False)
    assert isinstance(scorer.fast.module, FraudGBM) and version.manifest.arch_module == "npusuite.fraud.boosted_model"
    scored = scorer.score_batch([(tx, None) for tx in ds.transactions[-300:]])
    assert len(scored) == 300 and all(0.0 <= s.fields["score"] <= 1.0 for s in scored)
    fraud = [s for s, y in zip(scored, ds.y[-300:], strict=True) if y]
    assert not fraud or max(s.fields["score"] for s in fraud) > np.median([s.fields["score"] for s in scored])
    assert all(s.fields["reasons"] for s in scored)


def test_an_unknown_learner_is_refused_in_one_line(capsys, fraud_data, tmp_path):
    from tests.fraud.test_cli import one_line_error

    line = one_line_error(capsys, "fraud", "train", "--data", str(fraud_data.transactions), "--labels",
                          str(fraud_data.labels), "--out", str(tmp_path / "m"), "--learner", "xgboost")
    assert line.startswith("npusuite: error:") and "--learner 'xgboost'" in line, line


def test_fraud_train_gbm_flags_reach_the_trees_and_the_card(capsys, fraud_data, tmp_path):
    from tests.fraud.test_cli import run

    code, out, err = run(capsys, "fraud", "train", "--data", str(fraud_data.transactions), "--labels",
                         str(fraud_data.labels), "--out", str(tmp_path / "m"), "--no-llm", "--learner", "gbm",
                         "--gbm-leaves", "8", "--gbm-l2", "1", "--gbm-iterations", "20", "--gbm-learning-rate", "0.2")
    assert code == 0, err
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    training = card["training"]
    assert (training["max_leaf_nodes"], training["l2_regularization"], training["max_iter"],
            training["learning_rate"]) == (8, 1.0, 20, 0.2)
    loaded = FastModel.load(tmp_path / "m" / "fast")
    assert isinstance(loaded.module, FraudGBM)
    assert 1 <= loaded.module.trees.feature.shape[0] <= 20  # one tree an iteration, early stopping may stop sooner
    assert loaded.module.trees.feature.shape[1] <= 2 * 8 - 1  # 8 leaves: at most 15 nodes a tree


@pytest.mark.parametrize(("flags", "message"), [
    (["--gbm-leaves", "8"], "--gbm-leaves: boosted-tree settings need --learner gbm"),
    (["--learner", "gbm", "--gbm-leaves", "1"], "--gbm-leaves must be at least 2"),
    (["--learner", "gbm", "--gbm-l2", "-1"], "--gbm-l2 must be zero or more"),
    (["--learner", "gbm", "--gbm-l2", "nan"], "--gbm-l2 must be zero or more"),
    (["--learner", "gbm", "--gbm-learning-rate", "nan"], "--gbm-learning-rate must be a positive number"),
    (["--learner", "gbm", "--gbm-iterations", "0"], "--gbm-iterations must be a positive number"),
])
def test_bad_gbm_settings_are_refused_in_one_line(capsys, fraud_data, tmp_path, flags, message):
    from tests.fraud.test_cli import one_line_error

    line = one_line_error(capsys, "fraud", "train", "--data", str(fraud_data.transactions), "--labels",
                          str(fraud_data.labels), "--out", str(tmp_path / "m"), *flags)
    assert line.startswith("npusuite: error:") and message in line, line
    assert not (tmp_path / "m").exists()
