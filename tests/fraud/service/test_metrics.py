import numpy as np
from prometheus_client import CollectorRegistry

from npusuite.fraud.reference_profile import profile
from npusuite.fraud.service.metrics import ServiceMetrics
from npusuite.platform.observability import names as N

NAMES = ["amount", "hour", "velocity"]


def _card(rng) -> dict:
    x = rng.normal(size=(5000, 3))
    return {"features": NAMES, "reference_profile": profile(x, rng.beta(1, 20, 5000), NAMES)}


def test_drift_and_score_histogram_follow_the_model():
    rng = np.random.default_rng(1)
    m = ServiceMetrics(CollectorRegistry(), drift_window=2000)
    card = _card(rng)
    for _ in range(16):  # 128 feature rows of each batch are counted (every k-th): 2048 rows, the window 2000
        x = rng.normal(size=(1000, 3))
        x[:, 2] += 2.0  # one feature shifted
        m.observe_model("fraud-fast@1", card, x, rng.beta(1, 20, 1000))
    r = m.registry
    assert r.get_sample_value(N.FRAUD_SCORE + "_count") == 16000
    assert r.get_sample_value(N.FRAUD_FEATURE_PSI, {"feature": "amount"}) < 0.05
    assert r.get_sample_value(N.FRAUD_FEATURE_PSI, {"feature": "velocity"}) > 0.25
    assert r.get_sample_value(N.FRAUD_SCORE_PSI) < 0.05
    assert 2000 <= r.get_sample_value(N.FRAUD_DRIFT_WINDOW_RECORDS) <= 2000 + 125
    # a model whose card has no profile: no PSI series (absent, not zero), the histogram continues
    m.observe_model("fraud-fast@2", {"features": NAMES}, x, rng.beta(1, 20, 1000))
    assert r.get_sample_value(N.FRAUD_FEATURE_PSI, {"feature": "amount"}) is None
    assert r.get_sample_value(N.FRAUD_SCORE_PSI) is None
    assert r.get_sample_value(N.FRAUD_SCORE + "_count") == 17000


def test_monitoring_off_leaves_the_model_level_out():
    m = ServiceMetrics(CollectorRegistry(), monitoring=False)
    m.observe_model("fraud-fast@1", _card(np.random.default_rng(2)), np.zeros((600, 3)), np.zeros(600))
    assert m.registry.get_sample_value(N.FRAUD_SCORE + "_count") is None
    assert m.registry.get_sample_value(N.FRAUD_SCORE_PSI) is None
    assert m.registry.get_sample_value(N.FRAUD_TRANSACTIONS) == 0.0


def test_profile_refuses_mismatched_names():
    import pytest

    with pytest.raises(ValueError):
        profile(np.zeros((10, 2)), np.zeros(10), NAMES)
