"""The novelty tier: trained on legitimate data only, calibrated, combined by the card's rule, readable reasons."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npusuite.fraud.features import N_FEATURES
from npusuite.fraud.novelty import NoveltyModel, NoveltyTrainConfig, train_novelty
from npusuite.fraud.novelty_rule import NoveltyConfig, NoveltyRule, combined_score

SMALL = NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4)


def _data(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    y = np.zeros(n, dtype=bool)
    y[::50] = True
    return x, y


def test_fraud_rows_never_reach_the_model():
    x, y = _data()
    a, _ = train_novelty(x, y, SMALL)
    x2 = x.copy()
    x2[y] = 1e6  # whatever the fraud rows hold, the model is the same
    b, _ = train_novelty(x2, y, SMALL)
    for (name, t1), (_, t2) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(t1, t2), name


@pytest.mark.parametrize("config, extreme", [
    # The forest splits between training values, so a value beyond them follows the most extreme training
    # rows: on this isotropic noise an outlier must be extreme in most features to be isolated early.
    (SMALL, slice(None)),
    (NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4, trees=0), slice(0, 5)),  # the autoencoder alone
])
def test_the_card_calibrates_on_legitimate_data_and_an_outlier_exceeds_it(config, extreme):
    x, y = _data()
    module, info = train_novelty(x, y, config)
    assert info["detector"] == ("isolation-forest" if config.trees else "autoencoder")
    q = [info["calibration"]["quantiles"][k] for k in sorted(info["calibration"]["quantiles"], key=float)]
    assert q == sorted(q) and q[0] > 0
    card = {**info}
    model = NoveltyModel(module, "fraud-novelty@1", card, NoveltyConfig.from_card(card))
    outlier = np.zeros((2, N_FEATURES), dtype=np.float32)
    outlier[1, extreme] = 40.0
    novelty, groups, feats, _, _ = model.score(outlier)
    t = model.config.excess(novelty)
    assert t[0] < 0 <= t[1] and groups.shape[0] == 2 and feats.shape == (2, N_FEATURES)


def test_the_reason_errors_are_computed_for_the_flagged_rows_only_and_equal_the_full_pass_there():
    x, y = _data()
    module, info = train_novelty(x, y, SMALL)
    model = NoveltyModel(module, "fraud-novelty@1", info, NoveltyConfig.from_card(info))
    batch = x[:200].copy()
    batch[[3, 77, 150]] = 40.0  # flagged (the outlier test above), among ordinary rows
    lazy, full = model.score(batch), model.score(batch, explain_all=True)
    flagged = model.config.excess(lazy.novelty) >= 0
    assert flagged[[3, 77, 150]].all() and flagged.sum() < len(batch) // 2
    assert np.array_equal(lazy.novelty, full.novelty)
    # The same rows through a smaller matrix product: equal up to float32 rounding, as any batch size gives.
    np.testing.assert_allclose(lazy.groups[flagged], full.groups[flagged], rtol=1e-5)
    np.testing.assert_allclose(lazy.features[flagged], full.features[flagged], rtol=1e-5, atol=1e-6)
    assert not lazy.groups[~flagged].any() and full.groups[~flagged].any()


def test_the_combination_rule_is_monotone_reviews_and_never_declines():
    review, decline = 0.2, 0.9
    assert combined_score(0.05, -0.1, review, decline) == 0.05
    scores = [combined_score(0.05, t, review, decline) for t in (0.0, 0.5, 2.0, 1e6)]
    assert scores == sorted(scores) and scores[0] == review and scores[-1] < decline
    assert combined_score(0.95, 3.0, review, decline) == 0.95


@pytest.mark.parametrize("card, reason", [
    ({}, "no calibration quantile"),
    ({"calibration": {"quantiles": {"0.998": 5.0, "0.9999": 4.0}}}, "increasing"),
    ({"combination": {"review_quantile": 0.99, "scale_quantile": 0.98}}, "scale_quantile"),
])
def test_a_card_without_a_usable_calibration_is_refused(card, reason):
    with pytest.raises(ValueError, match=reason):
        NoveltyConfig.from_card(card)


def test_the_rule_defaults_are_documented_values():
    rule = NoveltyRule()
    assert (rule.rule, rule.review_quantile, rule.scale_quantile) == ("max-review", 0.998, 0.9999)


def test_key_features_are_hash_buckets_that_neither_enter_nor_count():
    from npusuite.fraud.categorical import KEY_FEATURES
    from npusuite.fraud.features import FEATURE_NAMES
    from npusuite.fraud.novelty import NOVELTY_GROUPS

    assert not set(KEY_FEATURES) & {n for names in NOVELTY_GROUPS.values() for n in names}
    x, y = _data()
    module, info = train_novelty(x, y, SMALL)
    model = NoveltyModel(module, "fraud-novelty@1", info, NoveltyConfig.from_card(info))
    other = x[:200].copy()
    other[:, [FEATURE_NAMES.index(n) for n in KEY_FEATURES]] = np.random.default_rng(1).integers(1, 1 << 18, (200, 5))
    assert np.array_equal(model.score(x[:200])[0], model.score(other)[0])



def test_the_sequence_reason_names_the_feature_the_history_predicted_worst_and_how_much_history():
    from npusuite.fraud.features import FEATURE_NAMES, Features
    from npusuite.fraud.novelty import NoveltyScores
    from npusuite.fraud.novelty_sequence import SequenceScores

    x, y = _data(n=2000)
    module, info = train_novelty(x, y, SMALL)
    model = NoveltyModel(module, "fraud-novelty@1", info, NoveltyConfig.from_card(info))
    col = FEATURE_NAMES.index("country_share")
    sequence = SequenceScores(error=np.array([9.0] * 3), evidence=np.array([7.0] * 3), column=np.array([col] * 3),
                              predicted=np.array([0.97] * 3), previous=np.array([8, 1, 0]))
    scores = NoveltyScores(np.array([7.0] * 3), np.zeros((3, 13)), np.zeros((3, N_FEATURES)), sequence,
                           forest=np.array([1.0] * 3))
    values = np.zeros(N_FEATURES)
    texts = [model.reason(None, Features(tuple(values)), scores, i).text for i in range(3)]
    assert texts[0] == ("novelty: country_share 0.00 where the account's last 8 predict 0.97 "
                        f"(top {100 * 0.5 / np.exp(7.0):.2f}% of legitimate)")
    assert "the account's last one predicts 0.97" in texts[1] and "an account's first payments predict" in texts[2]
    assert all(len(t) <= 120 for t in texts)
