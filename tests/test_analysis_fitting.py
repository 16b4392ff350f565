"""Power-law fits: exact recovery, agreement with scipy, calibrated errors."""

import numpy as np
import pytest
from scipy import stats

from meanfield.analysis import fit_power_law


def test_noiseless_power_law_is_recovered_exactly():
    x = np.array([10, 20, 40, 80, 160.0])
    f = fit_power_law(x, 3.0 * x**-0.7)
    assert f.slope == pytest.approx(-0.7, abs=1e-12)
    assert f.prefactor == pytest.approx(3.0, rel=1e-12)
    assert f.slope_se < 1e-12
    assert f.predict(50.0) == pytest.approx(3.0 * 50**-0.7, rel=1e-12)


def test_unweighted_fit_agrees_with_scipy_linregress():
    rng = np.random.default_rng(0)
    x = np.logspace(1, 3, 7)
    y = 2 * x**-0.5 * np.exp(0.1 * rng.standard_normal(7))
    f = fit_power_law(x, y)
    lr = stats.linregress(np.log(x), np.log(y))
    assert f.slope == pytest.approx(lr.slope, rel=1e-12)
    assert f.intercept == pytest.approx(lr.intercept, rel=1e-12)
    assert f.slope_se == pytest.approx(lr.stderr, rel=1e-10)
    assert f.intercept_se == pytest.approx(lr.intercept_stderr, rel=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_confidence_interval_covers_true_exponent_at_nominal_rate(weighted):
    # 1000 synthetic data sets with log-normal (unweighted) or known absolute
    # heteroscedastic (weighted) noise; the 95% interval must cover the true
    # exponent 95% of the time (binomial sd 0.7%).
    rng = np.random.default_rng(1 + weighted)
    x = np.logspace(1, 3, 6)
    true = -0.5
    hits = 0
    reps = 1000
    for _ in range(reps):
        if weighted:
            mean = 2 * x**true
            # relative error 2% .. 8% growing with x (small enough for the
            # delta method log(y) error = yerr / y; at 5% .. 20% coverage is 0.94)
            err = 0.02 * mean * (x / 10) ** 0.3
            f = fit_power_law(x, mean + err * rng.standard_normal(6), yerr=err)
        else:
            f = fit_power_law(x, 2 * x**true * np.exp(0.1 * rng.standard_normal(6)))
        lo, hi = f.slope_interval(0.95)
        hits += lo < true < hi
    assert 0.93 <= hits / reps <= 0.97


def test_batched_fit_equals_individual_fits():
    rng = np.random.default_rng(3)
    x = np.array([8, 16, 32, 64.0])
    y = np.exp(rng.standard_normal((4, 3, 2)))
    e = 0.1 * y
    fb = fit_power_law(x, y, yerr=e)
    assert fb.slope.shape == (3, 2) and fb.cov.shape == (3, 2, 2, 2)
    for i in range(3):
        for j in range(2):
            f = fit_power_law(x, y[:, i, j], yerr=e[:, i, j])
            assert fb.slope[i, j] == pytest.approx(f.slope, rel=1e-12)
            assert fb.slope_se[i, j] == pytest.approx(f.slope_se, rel=1e-12)


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        fit_power_law([1, 2, 3], [1, -1, 2])
    with pytest.raises(ValueError):
        fit_power_law([2, 2, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        fit_power_law([1, 2], [1, 2])  # scatter needs 3 points
