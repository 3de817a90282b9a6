"""Calibration that holds on fresh good images (issue 16 part 2)."""

import numpy as np
import pytest

from npusuite.inspection.calibration import calibrate
from npusuite.inspection.scoring import calibrate_threshold


def _good_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    # image scores are maxima of a heatmap: a Gumbel-like tail in logit space, as real held-back scores show
    z = rng.gumbel(-3.0, 0.6, n)
    return 1.0 / (1.0 + np.exp(-z))


def test_threshold_holds_on_fresh_good_images_where_the_empirical_rule_does_not():
    rng = np.random.default_rng(7)
    fresh = _good_scores(rng, 200_000)
    target = 0.01
    realised, plain = [], []
    for _ in range(200):
        held = _good_scores(rng, 50)
        cal = calibrate(held, target, seed=int(rng.integers(1 << 30)))
        assert cal.threshold >= cal.empirical  # never below the plain rule
        assert cal.heldback_frr <= target
        realised.append((fresh >= cal.threshold).mean())
        plain.append((fresh >= calibrate_threshold(held, target)).mean())
    # the plain rule (just above the max of 50) rejects about 1/51 of fresh good parts; ours stays under 1.5x
    assert np.mean(plain) > 1.5 * target
    assert np.mean(realised) <= 1.5 * target
    # ... and 90% of runs hold 1.5x (the upper bound is at 90% confidence)
    assert np.quantile(realised, 0.9) <= 1.5 * target * 1.5


def test_calibration_refuses_too_few_scores_or_bad_arguments():
    with pytest.raises(ValueError):
        calibrate([0.1, 0.2], 0.01)
    with pytest.raises(ValueError):
        calibrate([0.1, 0.2, 0.3], 0.0)
    with pytest.raises(ValueError):
        calibrate([0.1, 0.2, 0.3], 0.01, confidence=1.0)


def test_identical_scores_give_a_finite_threshold_just_above_them():
    cal = calibrate([0.3] * 20, 0.01)
    assert np.isfinite(cal.threshold) and 0.3 < cal.threshold < 0.3001
