"""The novelty tier and rules as leave-one-typology-out methods (npusuite.fraud.leave_out_tiers)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from npusuite.fraud.datasets import merge_labels, read_labels, read_transactions
from npusuite.fraud.fast_model import FastTrainConfig
from npusuite.fraud.leave_out import NONE, split
from npusuite.fraud.leave_out_tiers import EXAMPLE_RULES, Tiers
from npusuite.fraud.novelty import NoveltyTrainConfig
from npusuite.fraud.rules import parse_rule_set


def test_novelty_only_raises_scores_and_a_rule_hit_ranks_as_a_review(fraud_data):
    txs, inline = read_transactions(fraud_data.transactions)
    labels = {**inline, **merge_labels([read_labels(fraud_data.labels)])}
    train, test = split(txs, labels, txs[0].timestamp + timedelta(days=14), NONE)
    tiers = Tiers(FastTrainConfig(epochs=2), NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4))
    # A rule that fires on a known share of rows: every ATM withdrawal.
    rules = {"rules": [*EXAMPLE_RULES["rules"], {"name": "any-atm", "when": 'channel == "atm"'}]}
    novelty = tiers.method("novelty").fit_predict(train, test)
    with_rules = tiers.method("rules", rules).fit_predict(train, test)
    fitted = tiers.fitted(train, test)
    assert (novelty >= fitted.probability).all() and (novelty > fitted.probability).any()
    atm = np.array([tx.channel == "atm" for tx in test.transactions])
    assert atm.any() and (with_rules[atm] >= fitted.review).all()
    assert np.array_equal(with_rules[~atm & (novelty >= fitted.review)], novelty[~atm & (novelty >= fitted.review)])
    assert (with_rules >= novelty).all()
    assert len(parse_rule_set(EXAMPLE_RULES).rules) == len(EXAMPLE_RULES["rules"])


def test_profile_novelty_only_raises_the_supervised_score(fraud_data):
    from npusuite.fraud.leave_out_tiers import ProfileNovelty, ProfileTierMethod

    txs, inline = read_transactions(fraud_data.transactions)
    labels = {**inline, **merge_labels([read_labels(fraud_data.labels)])}
    train, test = split(txs, labels, txs[0].timestamp + timedelta(days=14), NONE)
    tiers = Tiers(FastTrainConfig(epochs=2), NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4))
    profile = ProfileNovelty(tiers)
    scores = ProfileTierMethod("profile", profile).fit_predict(train, test)
    fitted = tiers.fitted(train, test)
    excess = profile.excess(train, test)
    assert scores.shape == fitted.probability.shape and np.isfinite(scores).all()
    assert (scores >= fitted.probability).all()
    raised = excess >= 0  # above the 0.998 legitimate quantile: at least a review, as the documented rule says
    assert raised.any() and (scores[raised] >= fitted.review).all()
    assert np.array_equal(scores[~raised], fitted.probability[~raised])


def test_a_blend_of_a_model_with_itself_is_that_model_and_its_tier(fraud_data):
    from npusuite.fraud.boosted_model import GbmTrainConfig
    from npusuite.fraud.leave_out_tiers import BlendTierMethod

    txs, inline = read_transactions(fraud_data.transactions)
    labels = {**inline, **merge_labels([read_labels(fraud_data.labels)])}
    train, test = split(txs, labels, txs[0].timestamp + timedelta(days=14), NONE)
    tiers = Tiers(FastTrainConfig(epochs=2), NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4))
    same = BlendTierMethod("same", tiers, tiers, novelty=False).fit_predict(train, test)
    assert np.allclose(same, tiers.fitted(train, test).probability, rtol=1e-6, atol=1e-9)
    tier = tiers.method("novelty").fit_predict(train, test)
    assert np.allclose(BlendTierMethod("same", tiers, tiers).fit_predict(train, test), tier, rtol=1e-6, atol=1e-9)
    boosted = Tiers(FastTrainConfig(epochs=2), boosted=GbmTrainConfig(max_iter=5), novelty_from=tiers)
    mixed = BlendTierMethod("mixed", tiers, boosted, novelty=False).fit_predict(train, test)
    lo = np.minimum(tiers.fitted(train, test).probability, boosted.fitted(train, test).probability)
    hi = np.maximum(tiers.fitted(train, test).probability, boosted.fitted(train, test).probability)
    assert ((mixed >= lo - 1e-9) & (mixed <= hi + 1e-9)).all() and not np.allclose(mixed, lo)
    either = BlendTierMethod("max", tiers, boosted, novelty=False, rule="max").fit_predict(train, test)
    assert np.array_equal(either, hi)
    with pytest.raises(ValueError, match="unknown blend rule"):
        BlendTierMethod("min", tiers, boosted, rule="min")


def test_tail_log_odds_reads_the_cards_legitimate_quantiles():
    from npusuite.fraud.leave_out_tiers import TAIL_FLOOR, tail_log_odds

    q = {"0.5": 1.0, "0.9": 2.0, "0.99": 3.0, "0.999": 4.0}
    got = tail_log_odds(np.array([0.0, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 1e9, np.nan]), q)
    want_90, want_99, want_999 = np.log(0.5 / 0.1), np.log(0.5 / 0.01), np.log(0.5 / 0.001)
    assert got[0] == 0.0 and got[1] == 0.0 and got[-1] == 0.0  # at or below the median, and NaN: no evidence
    assert np.isclose(got[2], want_90) and np.isclose(got[3], (want_90 + want_99) / 2)
    assert np.isclose(got[4], want_99) and np.isclose(got[5], want_999)
    assert np.isclose(got[6], 2 * want_999 - want_99)  # beyond the last quantile: along the last segment
    assert np.isclose(got[7], np.log(0.5 / TAIL_FLOOR))  # ... up to the floor
    assert (np.diff(got[:8]) >= 0).all()
    with pytest.raises(ValueError, match="median"):
        tail_log_odds(np.zeros(2), {"0.99": 1.0})


def test_the_evidence_method_adds_weighted_tail_odds_to_the_supervised_logit(fraud_data):
    from npusuite.fraud.leave_out_tiers import EvidenceTierMethod, _logit

    txs, inline = read_transactions(fraud_data.transactions)
    labels = {**inline, **merge_labels([read_labels(fraud_data.labels)])}
    train, test = split(txs, labels, txs[0].timestamp + timedelta(days=14), NONE)
    tiers = Tiers(FastTrainConfig(epochs=2), NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4))
    scores = EvidenceTierMethod("evidence", tiers).fit_predict(train, test)
    p, tail = tiers.fitted(train, test).probability, tiers.tail(train, test)
    assert np.allclose(scores, _logit(p) + 0.5 * tail)
    assert (tail >= 0).all() and (tail > 0).any() and (tail == 0).any()
    none = EvidenceTierMethod("no novelty", tiers, weight=0.0).fit_predict(train, test)
    assert np.array_equal(np.argsort(-none, kind="stable"), np.argsort(-p, kind="stable"))
    gated = EvidenceTierMethod("gated", tiers, gate=True).fit_predict(train, test)
    fitted, raised = tiers.fitted(train, test), tiers.excess(train, test) >= 0
    assert raised.any() and (gated[raised] >= fitted.review).all()
    below = ~raised & (gated < fitted.review)
    assert below.any() and np.allclose(gated[below], 1 / (1 + np.exp(-scores[below])))


def test_profile_inputs_feed_the_fast_model_and_novelty_only_raises_its_score(fraud_data):
    from npusuite.fraud.boosted_model import GbmTrainConfig

    txs, inline = read_transactions(fraud_data.transactions)
    labels = {**inline, **merge_labels([read_labels(fraud_data.labels)])}
    train, test = split(txs, labels, txs[0].timestamp + timedelta(days=14), NONE)
    tiers = Tiers(FastTrainConfig(epochs=2), NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4))
    plain = Tiers(FastTrainConfig(epochs=2), boosted=GbmTrainConfig(max_iter=5), novelty_from=tiers)
    profiled = Tiers(FastTrainConfig(epochs=2), boosted=GbmTrainConfig(max_iter=5), novelty_from=tiers,
                     profile_inputs=True)
    p_plain, p_profiled = plain.fitted(train, test).probability, profiled.fitted(train, test).probability
    assert p_profiled.shape == (len(test.y),) and np.isfinite(p_profiled).all()
    assert not np.allclose(p_plain, p_profiled)  # the profile's columns reached the trees
    tier = profiled.method("profile inputs + novelty").fit_predict(train, test)
    assert (tier >= p_profiled).all()
    raised = profiled.excess(train, test) >= 0
    assert raised.any() and (tier[raised] >= profiled.fitted(train, test).review).all()


def test_empirical_tail_log_odds_reads_the_share_of_calibration_rows_above():
    from npusuite.fraud.leave_out_tiers import empirical_tail_log_odds

    calibration = np.arange(1000, dtype=float)  # 0 .. 999
    odds = empirical_tail_log_odds(np.array([-5.0, 400.0, 990.0, 999.0, 1e9]), calibration)
    assert odds[0] == 0.0 and odds[1] == 0.0  # at or below the median: no evidence
    assert odds[2] == pytest.approx(np.log(0.5 / 0.010))  # 10 of 1000 rows at least as high
    assert odds[3] == pytest.approx(np.log(0.5 / 0.001)) and odds[4] == pytest.approx(odds[3])  # never beyond one row
    with pytest.raises(ValueError):
        empirical_tail_log_odds(np.array([1.0]), np.array([]))


def test_the_sequence_tier_only_raises_the_supervised_score_and_is_the_studys_rule(fraud_data):
    from npusuite.fraud.leave_out_tiers import SequenceTierMethod
    from npusuite.fraud.novelty_rule import empirical_tail_log_odds, tail_log_odds
    from npusuite.fraud.novelty_sequence import SequenceTrainConfig, fit_sequence_novelty, sequence_error

    txs, inline = read_transactions(fraud_data.transactions)
    labels = {**inline, **merge_labels([read_labels(fraud_data.labels)])}
    train, test = split(txs, labels, txs[0].timestamp + timedelta(days=14), NONE)
    tiers = Tiers(FastTrainConfig(epochs=2), NoveltyTrainConfig(epochs=2, hidden=16, bottleneck=4))
    config = SequenceTrainConfig(history=4, hidden=16, epochs=1)
    method = SequenceTierMethod("sequence + forest", tiers, config)
    fitted = tiers.fitted(train, test)
    scores = method.fit_predict(train, test)
    t = method.excess(train, test)
    assert scores.shape == fitted.probability.shape and np.isfinite(scores).all()
    raised = t >= 0
    assert raised.any() and (scores[raised] >= fitted.review).all()
    assert np.array_equal(scores[~raised], fitted.probability[~raised])
    # The served model's forest is the tiers' own, and its rule is the study's (session 14), computed here the
    # study's way: the sequence model fitted alone, its empirical tail on its calibration rows, the larger of that
    # and the forest's tail, gated at that evidence's own 99.8% and 99.99% on the calibration rows.
    forest = tiers.novelty_model(train, test)
    model, calibration = fit_sequence_novelty(train.transactions, train.x, train.y, config)
    transactions, x = [*train.transactions, *test.transactions], np.vstack([train.x, test.x])
    rows = np.concatenate([calibration, len(train.y) + np.arange(len(test.y))])
    error = sequence_error(model, transactions, x, rows)
    evidence = np.maximum(empirical_tail_log_odds(error, error[:len(calibration)]),
                          tail_log_odds(forest.score(x[rows]).novelty, forest.card["calibration"]["quantiles"]))
    review, scale = np.quantile(evidence[:len(calibration)], [0.998, 0.9999])
    assert np.allclose(t, (evidence[len(calibration):] - review) / (scale - review), atol=1e-6)
    # The larger of two evidences is gated at its own 99.8% line: the forest's rows above its line stay near it.
    forest_t = tiers.excess(train, test)
    assert (t[forest_t >= 0.5] >= 0).mean() > 0.5
