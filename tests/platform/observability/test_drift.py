import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from npusuite.platform.observability.drift import MIN_RECORDS, BinnedReference, DriftCollector, DriftWindow, psi


def test_psi_is_zero_for_the_reference_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    ref = BinnedReference.fit(rng.normal(size=20_000), bins=10)
    assert len(ref.shares) == 10 and math.isclose(sum(ref.shares), 1.0)
    same = DriftWindow({"x": ref}, window=5000)
    same.add(rng.normal(size=5000))
    shifted = DriftWindow({"x": ref}, window=5000)
    shifted.add(rng.normal(loc=1.0, size=5000))
    assert same.psi()["x"] < 0.02
    assert shifted.psi()["x"] > 0.25


def test_psi_formula_on_hand_counts():
    # shares 0.5/0.5 against counts 3/1: (0.75-0.5)ln(1.5) + (0.25-0.5)ln(0.5)
    assert psi([0.5, 0.5], [3, 1]) == pytest.approx(0.25 * math.log(1.5) - 0.25 * math.log(0.5))
    assert math.isnan(psi([0.5, 0.5], [0, 0]))


def test_window_drops_whole_old_batches():
    ref = BinnedReference((0.0,), (0.5, 0.5))
    w = DriftWindow({"x": ref}, window=1000)
    w.add(np.full(1000, -1.0))  # all in the low bin
    w.add(np.full(1000, 1.0))  # all in the high bin: the first batch leaves
    assert w.records == 1000
    assert w.psi()["x"] == pytest.approx(psi([0.5, 0.5], [0, 1000]))


def test_below_min_records_nothing_is_exported_and_bad_shapes_are_refused():
    ref = BinnedReference.fit(np.arange(100.0))
    w = DriftWindow({"a": ref, "b": ref})
    w.add(np.zeros((MIN_RECORDS - 1, 2)))
    assert w.psi() == {}
    with pytest.raises(ValueError):
        w.add(np.zeros((10, 3)))
    with pytest.raises(ValueError):
        BinnedReference((1.0, 0.0), (0.3, 0.3, 0.4))
    assert BinnedReference.fit(np.array([np.nan])).shares == (1.0,)


def test_collector_exports_per_variable_gauges_with_constant_labels():
    ref = BinnedReference.fit(np.arange(1000.0))
    w = DriftWindow({"amount": ref, "hour": ref})
    w.add(np.stack([np.arange(1000.0), np.full(1000, 5.0)], axis=1))
    r = CollectorRegistry()
    r.register(DriftCollector(lambda: w, "npusuite_t_feature_psi", "npusuite_t_window_records", label="feature",
                              constant={"line": "l1"}))
    assert r.get_sample_value("npusuite_t_window_records", {"line": "l1"}) == 1000
    assert r.get_sample_value("npusuite_t_feature_psi", {"line": "l1", "feature": "amount"}) < 0.01
    assert r.get_sample_value("npusuite_t_feature_psi", {"line": "l1", "feature": "hour"}) > 1.0
    empty = CollectorRegistry()
    empty.register(DriftCollector(lambda: None, "npusuite_t_psi"))
    assert empty.get_sample_value("npusuite_t_psi") is None  # no reference: absent, not zero


def test_sampling_counts_every_kth_row_whatever_the_batching():
    ref = BinnedReference.fit(np.arange(1000.0), bins=10)
    values = np.random.default_rng(3).uniform(0, 1000, 6000)
    one = DriftWindow({"x": ref}, window=100_000, sample_every=4)
    one.add(values)
    many = DriftWindow({"x": ref}, window=100_000, sample_every=4)
    for chunk in np.array_split(values, 37):  # uneven batches
        many.add(chunk)
    assert one.records == many.records == 1500
    assert one.psi() == many.psi()
    with pytest.raises(ValueError):
        DriftWindow({"x": ref}, sample_every=0)
