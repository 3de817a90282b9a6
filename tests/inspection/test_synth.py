import numpy as np
import pytest

from npusuite.inspection.synth import KINDS, _one, synthesize


@pytest.fixture
def good() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.4 + 0.2 * rng.random((32, 32, 3))).astype(np.float32)


def test_mask_covers_exactly_the_changed_pixels(good: np.ndarray):
    rng = np.random.default_rng(1)
    for _ in range(60):
        out, mask = synthesize(good, rng, p_anomaly=1.0)
        changed = np.abs(out - good).max(axis=2) > 0.04
        assert out.shape == good.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
        assert np.array_equal(mask.astype(bool), changed)


def test_every_kind_changes_something(good: np.ndarray):
    rng = np.random.default_rng(2)
    for kind in KINDS:
        hits = 0
        for _ in range(10):
            out, _ = _one(good, rng, kind)
            hits += bool((np.abs(out - good).max(axis=2) > 0.04).any())
        assert hits >= 5, kind


def test_without_anomaly_the_image_is_untouched(good: np.ndarray):
    out, mask = synthesize(good, np.random.default_rng(3), p_anomaly=0.0)
    assert out is good and not mask.any()
