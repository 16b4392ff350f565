"""Kozachenko-Leonenko entropy of particle clouds: closed forms, invariance, refusals, weights."""

import math

import numpy as np
import pytest

from meanfield.analysis.entropy import (
    DEFAULT_K,
    RELIABLE_MIN_N,
    RELIABLE_TOL_PER_DIM,
    EntropyBatch,
    entropy_reliable,
    knn_entropy,
    log_unit_ball_volume,
)


def _corr_cov(p, rho=0.6, lo=0.2, hi=5.0):
    """Correlated, anisotropic covariance D C D, C_ij = rho^|i-j|, scales log-spaced in [lo, hi]."""
    d = np.geomspace(lo, hi, p) if p > 1 else np.array([2.0])
    c = rho ** np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    return d[:, None] * c * d[None, :]


def _gauss_h(cov):
    return 0.5 * np.linalg.slogdet(2 * math.pi * math.e * np.atleast_2d(cov))[1]


def _errors(cov, n, seeds, base, k=DEFAULT_K, **kw):
    p = cov.shape[0]
    lc = np.linalg.cholesky(cov)
    h = _gauss_h(cov)
    out, se = [], []
    for s in range(seeds):
        x = np.random.default_rng([base, p, n, s]).standard_normal((n, p)) @ lc.T + 1.5
        e = knn_entropy(x, k=k, **kw)
        assert e.ok, e.reason
        out.append(e.value - h)
        se.append(e.stderr)
    return np.array(out), np.array(se)


def test_matches_the_formula_by_brute_force():
    # H = psi(n) - psi(k) + log V_p + (p/n) sum log eps_i, eps_i the k-th neighbour distance,
    # computed here from the full distance matrix (whiten=False: the raw Euclidean norm)
    from scipy.spatial.distance import cdist
    from scipy.special import digamma

    x = np.random.default_rng(13).standard_normal((300, 3)) * [1.0, 2.0, 0.5]
    for k in (1, 3, 7):
        eps = np.sort(cdist(x, x), axis=1)[:, k]  # column 0 is the point itself
        h = digamma(300) - digamma(k) + log_unit_ball_volume(3) + 3 * np.mean(np.log(eps))
        assert knn_entropy(x, k=k, whiten=False).value == pytest.approx(h, abs=1e-12)


def test_unit_ball_volume():
    assert math.exp(log_unit_ball_volume(1)) == pytest.approx(2.0)
    assert math.exp(log_unit_ball_volume(2)) == pytest.approx(math.pi)
    assert math.exp(log_unit_ball_volume(3)) == pytest.approx(4 * math.pi / 3)


@pytest.mark.parametrize("p", [1, 2, 5])
def test_correlated_gaussian_within_monte_carlo_spread(p):
    # 24 independent clouds of n = 1000: each error is the bias plus noise of standard deviation
    # sd (the seed spread). The truth is inside the spread of a single estimate (|bias| < 2 sd),
    # and the mean error is within 3 standard errors of the documented bias (module table:
    # Gaussian |bias| <= 0.02 for p <= 2 and <= 0.075 for p <= 8, at n = 1000).
    err, se = _errors(_corr_cov(p), 1000, 24, base=1)
    sd = err.std(ddof=1)
    se_mean = sd / math.sqrt(err.size)
    assert abs(err.mean()) < 2 * sd
    assert abs(err.mean()) < (0.02 if p <= 2 else 0.075) + 3 * se_mean
    # the reported stderr is the seed spread to within its documented factor (0.6 .. 1.7)
    assert 0.55 < se.mean() / sd < 1.7
    # the spread itself is ~1.1..1.8 / sqrt(n): a wrong scaling (e.g. p log eps dropped) is not
    assert sd < 0.08


def test_bias_shrinks_with_n():
    # p = 3: measured bias -0.081 (n = 100) and -0.019 (n = 3000) at k = 3 (module table)
    cov = _corr_cov(3)
    small, _ = _errors(cov, 100, 120, base=2)
    large, _ = _errors(cov, 3000, 16, base=3)
    b_small, se_small = small.mean(), small.std(ddof=1) / math.sqrt(small.size)
    b_large, se_large = large.mean(), large.std(ddof=1) / math.sqrt(large.size)
    assert b_small < -3 * se_small  # a real, negative small-sample bias ...
    assert abs(b_large) + 2 * se_large < abs(b_small) - 2 * se_small  # ... that shrinks
    assert abs(b_large) < 0.04


def test_uniform_box_gives_log_volume():
    lengths = np.array([0.5, 3.0])
    vals = []
    for s in range(12):
        x = np.random.default_rng([4, s]).random((4000, 2)) * lengths - 7.0
        e = knn_entropy(x)
        assert e.ok
        vals.append(e.value)
    vals = np.array(vals)
    h = float(np.sum(np.log(lengths)))
    # the box's edges bias the estimate up (measured +0.02 at n = 3000, p = 2)
    assert abs(vals.mean() - h) < 0.04
    assert abs(vals.mean() - h) < 2 * vals.std(ddof=1)
    # 1-D interval of length 4: log 4
    x = np.random.default_rng(5).random(20000) * 4.0
    assert knn_entropy(x).value == pytest.approx(math.log(4.0), abs=0.03)


def test_affine_invariance_exact_when_whitened_and_within_error_when_not():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1500, 3)) * [1.0, 0.5, 2.0]
    x[:, 2] += np.sin(2 * x[:, 0])  # not Gaussian
    a = np.array([[2.0, 0.3, -1.0], [0.1, 0.5, 0.4], [0.0, -1.2, 3.0]])
    b = np.array([10.0, -3.0, 0.5])
    y = x @ a.T + b
    logdet = math.log(abs(np.linalg.det(a)))
    hx, hy = knn_entropy(x), knn_entropy(y)
    # whitening maps x and y to clouds that differ by a rotation: exact up to rounding
    assert hy.value == pytest.approx(hx.value + logdet, abs=1e-9)
    # without whitening a scaling, rotation and translation are exact too ...
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    raw = knn_entropy(x, whiten=False)
    z = 3.7 * x @ q.T - 2.0
    assert knn_entropy(z, whiten=False).value == pytest.approx(raw.value + 3 * math.log(3.7), abs=1e-9)
    # ... but a general linear map only holds up to the estimator's error (a few stderr)
    ry = knn_entropy(y, whiten=False)
    assert abs(ry.value - raw.value - logdet) < 4 * math.hypot(raw.stderr, ry.stderr)
    # and the raw estimate is not bit-identical to the whitened one (whitening does something)
    assert abs(ry.value - hy.value) > 1e-6


def test_refusals_are_nan_with_a_reason():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((200, 2))

    def refused(e, word):
        assert not e.ok and math.isnan(e.value) and math.isnan(e.stderr)
        assert word in e.reason, e.reason

    # one duplicated particle: the k-th neighbour distance is > 0, still refused (atoms)
    d = x.copy()
    d[5] = d[17]
    refused(knn_entropy(d), "duplicate")
    # k + 1 coincident particles: the k-th neighbour distance is 0 (log 0 = -inf)
    d = x.copy()
    d[:DEFAULT_K + 1] = d[0]
    refused(knn_entropy(d), "duplicate")
    refused(knn_entropy(d, whiten=False), "duplicate")
    # n <= k
    refused(knn_entropy(x[:3], k=3), "n = 3 <= k = 3")
    refused(knn_entropy(x[:5], k=10), "neighbour rank")
    refused(knn_entropy(rng.standard_normal((6, 6)), k=2), "n = 6 <= p = 6")
    # non-finite input
    for bad in (np.nan, np.inf, -np.inf):
        d = x.copy()
        d[3, 1] = bad
        refused(knn_entropy(d), "non-finite")
    # degenerate clouds: a constant (frozen) coordinate, points on a line
    d = np.column_stack([x, np.full(200, 0.3)])
    refused(knn_entropy(d), "constant")
    refused(knn_entropy(d, whiten=False), "constant")
    refused(knn_entropy(np.column_stack([x[:, 0], 2 * x[:, 0] + 1])), "degenerate")
    # bad masses
    w = np.full(200, 1.0)
    for bad, word in ((-1.0, "negative"), (np.nan, "non-finite")):
        ww = w.copy()
        ww[0] = bad
        refused(knn_entropy(x, weights=ww), word)
    refused(knn_entropy(x, weights=np.zeros(200)), "zero total")
    # malformed shapes raise (a programming error, not a data problem)
    with pytest.raises(ValueError):
        knn_entropy(x, weights=np.ones(199))
    with pytest.raises(ValueError):
        knn_entropy(x, k=0)
    with pytest.raises(ValueError):
        knn_entropy(np.float64(1.0))


def test_batch_axis_loops_and_isolates_failures():
    rng = np.random.default_rng(8)
    xs = rng.standard_normal((2, 3, 300, 2))
    xs[1, 2, 10] = xs[1, 2, 11]  # one bad cloud
    res = knn_entropy(xs, k=4)
    assert isinstance(res, EntropyBatch) and res.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        one = knn_entropy(xs[idx], k=4)
        if idx == (1, 2):
            assert np.isnan(res.values[idx]) and "duplicate" in res.reasons[idx]
            assert not res.ok[idx] and res[idx].reason == one.reason
        else:
            assert res.values[idx] == one.value and res.stderrs[idx] == one.stderr
            assert res.reasons[idx] is None and res.ok[idx] and res[idx].value == one.value
    # weights broadcast from (n,) over the batch
    w = rng.random(300)
    rw = knn_entropy(xs[0], weights=w)
    assert rw.values[1] == knn_entropy(xs[0, 1], weights=w).value


def test_weighted_particles():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((800, 2))
    plain = knn_entropy(x)
    # uniform masses, at any scale, are the unweighted estimator
    for c in (1.0, 1 / 800, 7.0):
        e = knn_entropy(x, weights=np.full(800, c))
        assert e.value == pytest.approx(plain.value, abs=1e-12)
        assert e.stderr == pytest.approx(plain.stderr, rel=1e-9)
    # importance weights turn N(0, I) positions into the measure N(m, s^2 I):
    # H = log(2 pi e s^2) in 2-D. The -log(n m_i) term is what makes this right; without it
    # the estimate would stay at the positions' entropy log(2 pi e) = 2.84 (0.71 nats away).
    m, s = np.array([0.4, -0.2]), 0.7
    target = math.log(2 * math.pi * math.e * s * s)
    errs, ses = [], []
    for seed in range(16):
        z = np.random.default_rng([10, seed]).standard_normal((3000, 2))
        logw = -0.5 * np.sum((z - m) ** 2, axis=1) / s**2 + 0.5 * np.sum(z**2, axis=1)
        e = knn_entropy(z, weights=np.exp(logw - logw.max()))
        assert e.ok
        errs.append(e.value - target)
        ses.append(e.stderr)
        assert e.info["n_eff"] < 3000
    errs = np.array(errs)
    assert abs(errs.mean()) < 3 * errs.std(ddof=1) / math.sqrt(errs.size) + 0.02
    assert 0.6 < np.mean(ses) / errs.std(ddof=1) < 1.5
    # zero-mass particles shape the position density but carry no mass
    w = np.ones(800)
    w[:100] = 0.0
    assert knn_entropy(x, weights=w).ok


def test_reliability_rule_matches_its_measurements():
    # the rule's boundary: at n = RELIABLE_MIN_N[p] a smooth density (correlated Gaussian and a
    # two-mode mixture) has |mean error| within the stated tolerance (plus 3 standard errors)
    for p in (1, 2, 3):
        n = RELIABLE_MIN_N[p]
        ok, why = entropy_reliable(n, p)
        assert ok, why
        tol = RELIABLE_TOL_PER_DIM * p
        err, _ = _errors(_corr_cov(p), n, 30, base=11)
        assert abs(err.mean()) < tol + 3 * err.std(ddof=1) / math.sqrt(err.size)
        mix = []
        for s in range(30):
            z = np.random.default_rng([12, p, s]).standard_normal((n, p))
            z[:, 0] += np.where(np.arange(n) % 2 == 0, -3.0, 3.0)
            mix.append(knn_entropy(z).value)
        h1 = 2.108236466233751  # 1-D entropy of (N(-3,1) + N(3,1))/2, by quadrature
        h = h1 + 0.5 * (p - 1) * math.log(2 * math.pi * math.e)
        mix = np.array(mix)
        assert abs(mix.mean() - h) < tol + 3 * mix.std(ddof=1) / math.sqrt(mix.size)
        # below the boundary the rule says no
        assert not entropy_reliable(n // 2, p)[0]
    # outside the measured range: refused with a reason
    for n, p in ((10**6, 11), (10**6, 40), (3, 1), (0, 2), (100, 0)):
        ok, why = entropy_reliable(n, p)
        assert not ok and why
    # monotone in n for every p and k; sharp edges only ever need more
    for k in (1, 3, 5, 10):
        for p in range(1, 11):
            verdicts = [entropy_reliable(n, p, k=k)[0] for n in (100, 300, 1000, 3000, 10**4, 10**6)]
            assert verdicts == sorted(verdicts)
            edges = [entropy_reliable(n, p, k=k, sharp_edges=True)[0] for n in (300, 1000, 10**4)]
            assert all(v <= s for v, s in zip(edges, verdicts[1:5:1][:3]))
    assert not entropy_reliable(10**6, 6, sharp_edges=True)[0]
    assert not entropy_reliable(10**6, 3, k=4)[0]  # k not measured
