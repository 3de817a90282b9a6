from __future__ import annotations

import numpy as np
import pytest

from npusuite.platform.ops.forecast import fit_forecast


def _seasonal(n: int, m: int, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * np.arange(n) / m) + rng.normal(0, noise, n)


def test_seasonal_band_covers_a_clean_continuation_and_follows_the_season():
    y = _seasonal(360 + 60, 60)
    fc = fit_forecast(y[:360], 60, season=60, alpha=0.01)
    assert fc.model == "ETS(A,N,A) m=60"
    inside = np.mean((y[360:] >= fc.lower) & (y[360:] <= fc.upper))
    assert inside >= 0.95
    # the mean follows the sine (a flat forecast would not): correlation with the truth
    truth = 10 + 3 * np.sin(2 * np.pi * np.arange(360, 420) / 60)
    assert np.corrcoef(fc.mean, truth)[0, 1] > 0.95
    assert np.all(fc.upper - fc.lower < 3.0)  # narrower than the seasonal swing (6)


def test_a_level_shift_falls_outside_the_band():
    y = _seasonal(300, 60)
    fc = fit_forecast(y[:240], 60, season=60)
    shifted = y[240:] + 4.0
    assert np.mean(shifted > fc.upper) > 0.8


def test_short_history_falls_back_to_no_season_and_too_little_is_refused():
    y = _seasonal(100, 60)
    assert fit_forecast(y, 10, season=60).model == "ETS(A,N,N)"
    with pytest.raises(ValueError, match="too little history"):
        fit_forecast(np.array([1.0, 2.0, np.nan, 3.0]), 5, season=None)


def test_flat_history_uses_the_min_band_and_nan_gaps_are_filled():
    fc = fit_forecast(np.zeros(50), 5, season=None, min_band=100.0)
    assert fc.model == "constant" and np.allclose(fc.upper, 100.0) and np.allclose(fc.lower, -100.0)
    y = _seasonal(240, 60)
    y[[10, 11, 50]] = np.nan
    fc = fit_forecast(y, 20, season=60, min_band=0.5)
    assert np.all(np.isfinite(fc.mean)) and np.all((fc.upper - fc.lower) / 2 >= 0.5 - 1e-9)
