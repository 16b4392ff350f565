"""Wasserstein distances: exactness, closed forms, and the guard."""

import math

import numpy as np
import ot
import pytest
from scipy.linalg import sqrtm

from meanfield.analysis import (
    coupling_distance,
    emd_memory_bytes,
    w2_1d,
    w2_exact,
    w2_sliced,
)


def _bures_wasserstein(m1, S1, m2, S2):
    r = sqrtm(S1).real
    cross = sqrtm(r @ S2 @ r).real
    return math.sqrt(np.sum((m1 - m2) ** 2) + np.trace(S1 + S2 - 2 * cross))


M1, S1 = np.array([0.0, 0.0]), np.array([[1.0, 0.3], [0.3, 0.5]])
M2, S2 = np.array([1.0, -0.5]), np.array([[0.6, -0.2], [-0.2, 1.2]])


def test_identical_and_permuted_clouds_have_zero_distance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 4))
    y = x[rng.permutation(400)]  # same measure, the solver must find the permutation
    for d in (w2_exact(x, y), w2_sliced(x, y, n_projections=32), coupling_distance(x, x)):
        assert d.ok and d.value == 0.0, d
    assert w2_1d(x[:, 0], y[:, 0]).value == 0.0


def test_translation_is_exact():
    # the optimal map between x and x + v is the translation: W2 = |v|
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 3))
    v = np.array([0.3, -1.2, 0.5])
    d = w2_exact(x, x + v)
    assert d.ok and d.value == pytest.approx(np.linalg.norm(v), rel=1e-10)


def test_exact_w2_recovers_brenier_map_and_bures_wasserstein():
    # y = T(x) with T the optimal affine map N(M1,S1) -> N(M2,S2) (gradient of a
    # convex function), so the empirical optimal coupling is the identity and
    # W2(x, T x) equals the coupling cost exactly; its mean is W2(mu, nu)^2.
    rng = np.random.default_rng(2)
    n = 800
    x = rng.multivariate_normal(M1, S1, n)
    r = sqrtm(S1).real
    ri = np.linalg.inv(r)
    A = ri @ sqrtm(r @ S2 @ r).real @ ri
    y = M2 + (x - M1) @ A.T
    d = w2_exact(x, y)
    disp2 = np.sum((x - y) ** 2, axis=1)
    assert d.ok
    assert d.value**2 == pytest.approx(disp2.mean(), rel=1e-9)
    true = _bures_wasserstein(M1, S1, M2, S2)
    se_w2sq = disp2.std(ddof=1) / math.sqrt(n)
    assert abs(d.value**2 - true**2) < 4 * se_w2sq


def test_exact_w2_independent_gaussian_samples_near_bures_wasserstein():
    # independent samples: finite-n error ~0.03 at n=1000 in d=2 (spread over
    # seeds measured at 0.034); allow 3.5 of those.
    rng = np.random.default_rng(3)
    x = rng.multivariate_normal(M1, S1, 1000)
    y = rng.multivariate_normal(M2, S2, 1000)
    d = w2_exact(x, y)
    true = _bures_wasserstein(M1, S1, M2, S2)
    assert d.ok and abs(d.value - true) < 0.12


def test_exact_1d_matches_pot_for_equal_unequal_and_weighted():
    rng = np.random.default_rng(4)
    cases = [(60, 60, False), (37, 53, False), (41, 67, True), (1, 9, True)]
    for n, m, weighted in cases:
        x = rng.standard_normal(n)
        y = 1.5 * rng.standard_normal(m) + 0.3
        a = rng.random(n) if weighted else None
        b = rng.random(m) if weighted else None
        aa = np.full(n, 1 / n) if a is None else a / a.sum()
        bb = np.full(m, 1 / m) if b is None else b / b.sum()
        ref = ot.emd2(aa, bb, (x[:, None] - y[None, :]) ** 2)
        d = w2_1d(x, y, a, b)
        assert d.ok and d.value**2 == pytest.approx(ref, rel=1e-9, abs=1e-12), (n, m, weighted)


def test_sliced_equals_exact_in_one_dimension():
    rng = np.random.default_rng(5)
    for n, m in [(200, 200), (150, 230)]:
        x = rng.standard_normal((n, 1))
        y = rng.exponential(size=(m, 1))
        s = w2_sliced(x, y, n_projections=16, seed=0)
        e = w2_exact(x, y)
        assert s.value == pytest.approx(e.value, rel=1e-9)


def test_sliced_of_translation_matches_closed_form():
    # SW2^2(x, x + v) = E_theta (theta.v)^2 = |v|^2 / p exactly per direction's mean
    rng = np.random.default_rng(6)
    p = 5
    x = rng.standard_normal((2000, p))
    v = rng.standard_normal(p)
    s = w2_sliced(x, x + v, n_projections=400, seed=1)
    assert abs(s.value - np.linalg.norm(v) / math.sqrt(p)) < 4 * s.stderr


def test_sliced_does_not_depend_on_chunking_and_handles_unequal_sizes():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3000, 4))
    y = rng.standard_normal((1700, 4)) + 0.2
    big = w2_sliced(x, y, n_projections=50, seed=3)
    small = w2_sliced(x, y, n_projections=50, seed=3, max_bytes=1)  # one direction per chunk
    threaded = w2_sliced(x, y, n_projections=50, seed=3, workers=2)
    assert small.info["chunk"] == 1 and big.info["chunk"] == 50
    assert small.value == pytest.approx(big.value, rel=1e-12)
    assert threaded.value == pytest.approx(big.value, rel=1e-12)
    # each direction's value is the exact 1-D W2^2 of the projections
    theta = np.random.default_rng(3).standard_normal((50, 4))
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    for l in (0, 17, 49):
        ref = w2_1d(x @ theta[l], y @ theta[l]).value ** 2
        assert big.info["per_direction"][l] == pytest.approx(ref, rel=1e-10)
    # and it is a lower bound of W2
    assert big.value <= w2_exact(x[:800], y[:800]).value + 0.05


def test_guard_non_finite_input_returns_nan_with_reason():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 2))
    y = rng.standard_normal((40, 2))
    for bad in (np.nan, np.inf):
        xb = x.copy()
        xb[3, 1] = bad
        for fn in (w2_exact, w2_sliced):
            d = fn(xb, y)
            assert math.isnan(d.value) and not d.ok and "non-finite" in d.reason
        assert math.isnan(w2_1d(xb[:, 1], y[:, 1]).value)
    # overflow of the squared cost is also caught
    d = w2_exact(np.full((3, 2), 1e200), np.zeros((3, 2)))
    assert math.isnan(d.value) and "cost" in d.reason


def test_guard_bad_weights_return_nan():
    x = np.arange(4.0)[:, None]
    for a, word in ([1, -1, 1, 1], "negative"), ([0, 0, 0, 0], "zero"), ([1, np.nan, 1, 1], "non-finite"):
        d = w2_exact(x, x, a=np.array(a, dtype=float))
        assert math.isnan(d.value) and word in d.reason


def test_guard_memory_limit_refuses_before_allocating():
    n, m = 30_000, 20_000  # 9.6 GB if it were allocated
    x = np.zeros((n, 2))
    y = np.ones((m, 2))
    d = w2_exact(x, y, max_bytes=1 << 30)
    assert math.isnan(d.value) and "memory" in d.reason
    assert d.info["bytes"] == emd_memory_bytes(n, m) == 2 * n * m * 8
    # just under the limit it runs
    small = w2_exact(x[:100], y[:100], max_bytes=emd_memory_bytes(100, 100))
    assert small.ok and small.value == pytest.approx(math.sqrt(2.0))


def test_guard_non_converged_solver_returns_nan():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((200, 2))
    y = rng.standard_normal((200, 2))
    d = w2_exact(x, y, num_iter_max=3)
    assert math.isnan(d.value) and "converge" in d.reason and d.info["result_code"] == 3


def test_guard_checks_plan_marginals(monkeypatch):
    # a solver that claims success but returns a plan with wrong marginals
    import ot as pot

    def fake_emd2(a, b, M, **kw):
        G = np.zeros_like(M)
        G[0, 0] = 1.0
        return float((G * M).sum()), {"result_code": 1, "warning": None, "G": G}

    monkeypatch.setattr(pot, "emd2", fake_emd2)
    d = w2_exact(np.arange(3.0), np.arange(3.0) + 1)
    assert math.isnan(d.value) and "marginals" in d.reason


def test_shape_errors_raise():
    with pytest.raises(ValueError):
        w2_exact(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        w2_1d(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        coupling_distance(np.zeros((3, 2)), np.zeros((4, 2)))


@pytest.mark.slow
def test_sliced_million_points():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1_000_000, 4))
    d = w2_sliced(x, x + np.array([1.0, 0, 0, 0]), n_projections=64, seed=0, workers=2)
    assert abs(d.value - 0.5) < 4 * d.stderr + 1e-3
