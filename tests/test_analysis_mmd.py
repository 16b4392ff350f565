"""Gaussian-kernel MMD: estimators, blocking, and calibration of its error."""

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from meanfield.analysis import median_bandwidth, mmd2


def _dense(x, y, h):
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * h * h))  # noqa: E731
    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    u = (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * kxy.mean()
    v = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return u, v


def test_blocked_estimators_match_dense_formulas():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((57, 3))
    y = rng.standard_normal((43, 3)) + 0.2
    u, v = _dense(x, y, 1.3)
    for block in (7, 16, 4096):
        assert mmd2(x, y, bandwidth=1.3, block_size=block).value == pytest.approx(u, rel=1e-12)
        assert mmd2(x, y, bandwidth=1.3, unbiased=False, block_size=block).value == pytest.approx(v, rel=1e-12)


def test_jackknife_error_matches_brute_force_leave_one_out():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 2))
    y = rng.standard_normal((25, 2)) + 0.5
    h = 1.0
    tx = np.array([_dense(np.delete(x, i, 0), y, h)[0] for i in range(30)])
    ty = np.array([_dense(x, np.delete(y, j, 0), h)[0] for j in range(25)])
    se = math.sqrt(29 / 30 * np.sum((tx - tx.mean()) ** 2) + 24 / 25 * np.sum((ty - ty.mean()) ** 2))
    assert mmd2(x, y, bandwidth=h, block_size=8).stderr == pytest.approx(se, rel=1e-9)


def test_identical_distributions_give_zero_within_error_and_shifted_positive():
    # Same law: the unbiased estimate is centred at 0 and |z| = |MMD2/se| < 2 in
    # most draws (the jackknife is conservative under the null). Shifted law:
    # clearly positive.
    z_null, z_alt, v_null = [], [], []
    for s in range(30):
        rng = np.random.default_rng(100 + s)
        x = rng.standard_normal((250, 2))
        y = rng.standard_normal((250, 2))
        d = mmd2(x, y, seed=s)
        z_null.append(d.value / d.stderr)
        v_null.append(d.value)
        y[:, 0] += 1.0  # one standard deviation
        d = mmd2(x, y, seed=s)
        z_alt.append(d.value / d.stderr)
    z_null, z_alt = np.array(z_null), np.array(z_alt)
    assert np.mean(np.abs(z_null) < 2) >= 0.85
    # centred: the mean over draws is within 3.5 of its standard errors of 0
    # (the z-ratios themselves are skewed under the null, so test the values)
    assert abs(np.mean(v_null)) < 3.5 * np.std(v_null, ddof=1) / math.sqrt(len(v_null))
    assert np.all(z_alt > 3)


def test_biased_estimator_is_nonnegative_and_above_unbiased():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 2))
    y = rng.standard_normal((120, 2))
    b = mmd2(x, y, unbiased=False)
    u = mmd2(x, y)
    assert b.value >= 0 and b.value > u.value


def test_median_bandwidth_and_degenerate_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4000, 1))
    # median |X - X'| for X, X' ~ N(0,1) is sqrt(2) * 0.6745
    assert median_bandwidth(x) == pytest.approx(math.sqrt(2) * 0.67449, rel=0.05)
    same = np.zeros((10, 2))
    d = mmd2(same, same)
    assert math.isnan(d.value) and "bandwidth" in d.reason
    bad = rng.standard_normal((10, 2))
    bad[0, 0] = np.nan
    assert math.isnan(mmd2(bad, same + 1).value)
