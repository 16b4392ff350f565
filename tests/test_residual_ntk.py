"""Residual NTK at initialisation: closed forms = recursion, recursion -> depth ODE at rate 1/L, the exact
finite-N NTK = finite-difference Jacobian, wide networks' seed means = the infinite-width recursion."""
import math

import numpy as np
import pytest

from meanfield.deep.network import DeepNet
from meanfield.deep.parametrisation import make_parametrisation
from meanfield_solvers.dmft import init_kernels
from meanfield_solvers.dmft.residual_ntk import (residual_depth_limit, residual_init_kernels,
                                                 residual_ntk_closed_form, residual_ntk_depth_limit_closed_form)


def _X(n=3, D=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, D))


@pytest.mark.parametrize("L", [1, 2, 3, 7])
def test_closed_forms_equal_the_recursion(L):
    X = _X()
    q = X @ X.T / X.shape[1]
    for b in (0.3, 1.1):
        K = residual_init_kernels(X, L, b, "linear").K
        np.testing.assert_allclose(K, residual_ntk_closed_form(q, L, b, "linear"), rtol=1e-13, atol=1e-14)
        K = residual_init_kernels(X, L, b, "relu").K
        np.testing.assert_allclose(np.diag(K), residual_ntk_closed_form(np.diag(q), L, b, "relu"), rtol=1e-13)


def test_zero_branch_is_the_one_layer_network():
    X = _X()
    for act in ("erf", "relu"):
        np.testing.assert_allclose(residual_init_kernels(X, 5, 0.0, act).K, init_kernels(X, 1, act).K,
                                   rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("act", ["linear", "relu"])
def test_depth_ode_equals_its_closed_form(act):
    X = _X()
    q = X @ X.T / X.shape[1]
    K = residual_depth_limit(X, 1.3, act, steps=200).K
    want = residual_ntk_depth_limit_closed_form(q, 1.3, act)
    if act == "relu":
        K, want = np.diag(K), np.diag(want)
    np.testing.assert_allclose(K, want, rtol=1e-9)


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_recursion_approaches_the_depth_ode_at_rate_one_over_L(act):
    """|K_L - K_inf| ~ C/L: fitted exponent in [-1.1, -0.9], and L |K_L - K_inf| levels off."""
    X = _X()
    beta = 1.2
    Kinf = residual_depth_limit(X, beta, act, steps=200).K
    Ls = np.array([8, 16, 32, 64, 128])
    gaps = np.array([np.abs(residual_init_kernels(X, L, beta / math.sqrt(L), act).K - Kinf).max() for L in Ls])
    slope = np.polyfit(np.log(Ls), np.log(gaps), 1)[0]
    assert -1.1 < slope < -0.9, slope
    scaled = Ls * gaps
    assert abs(scaled[-1] / scaled[-2] - 1) < 0.03, scaled


def test_exact_finite_N_ntk_equals_finite_difference_jacobian():
    """net.ntk (the backprop formula K = sum_l c_l (df/dW^l)(df/dW^l)^T) = gamma0^2 N J J^T by central differences."""
    D, N, L, g0 = 2, 4, 3, 0.8
    X = _X(3, D, seed=2)
    net = DeepNet("tanh", D, N, L, make_parametrisation("mup", g0, residual=True, branch_scale=1.4))
    theta = net.init([[np.random.default_rng([1, l]) for l in range(L + 1)]])
    eps = 1e-6
    J = np.empty((X.shape[0], theta.shape[1]))
    for i in range(theta.shape[1]):
        tp, tm = theta.copy(), theta.copy()
        tp[0, i] += eps
        tm[0, i] -= eps
        J[:, i] = (net.output(tp, X)[0] - net.output(tm, X)[0]) / (2 * eps)
    np.testing.assert_allclose(net.ntk(theta, X)[0], g0 * g0 * N * J @ J.T, rtol=1e-8, atol=1e-10)


def test_wide_residual_networks_match_the_infinite_width_recursion():
    """Seed means of the exact NTK of N = 256 depth-muP residual nets lie within 3 SE of the recursion's K_0;
    the recursion without the skip path (plain MLP kernels) is many SE away (the test can fail)."""
    D, N, L, S = 3, 256, 6, 24
    X = _X(3, D, seed=5)
    beta = 1.5
    net = DeepNet("erf", D, N, L, make_parametrisation("mup", 1.0, residual=True, branch_scale=beta))
    rngs = [[np.random.default_rng([77, s, l]) for l in range(L + 1)] for s in range(S)]
    K = net.ntk(net.init(rngs), X)
    mean, se = K.mean(0), K.std(0, ddof=1) / math.sqrt(S)
    want = residual_init_kernels(X, L, beta / math.sqrt(L), "erf").K
    z = np.abs(mean - want) / se
    assert z.max() < 3.5, z
    wrong = init_kernels(X, L, "erf").K
    assert (np.abs(mean - wrong) / se).max() > 10


def test_residual_ntk_run_limit_matches_wide_ntk_parametrised_networks():
    """model.residual with limit.method = 'ntk': the NTK-parametrised residual networks (lazy as N grows)
    trained by GD at lr = dt follow the residual kernel flow: seed mean of f within 3.5 SE at every time,
    and the recorded K_mf is the residual recursion's K_0."""
    import meanfield
    from meanfield import config as C
    from tests.helpers import tiny

    cfg = C.Config.from_dict(tiny(**{
        "model.depth": 4, "model.activation": "erf", "model.residual": True, "model.branch_scale": 1.5,
        "model.parametrisation": "ntk", "limit.method": "ntk", "train.algorithm": "gd", "train.lr": 0.1,
        "limit.dt": 0.1, "train.n_train": 4, "eval.n_points": 2, "train.widths": [256], "train.seeds": 16,
        "time.t_max": 2.0, "time.records": 5}))
    res = meanfield.run(cfg, progress=False)
    a = res.arrays
    X = np.concatenate([a["x_train"], a["x_test"]])
    np.testing.assert_allclose(a["K_mf"][0], residual_init_kernels(X, 4, 1.5 / 2, "erf").K, rtol=1e-12)
    f = a["f_nn"][0]  # (S, T, n)
    z = np.abs(f.mean(0) - a["f_mf"]) / (f.std(0, ddof=1) / math.sqrt(f.shape[0]))
    assert np.nanmax(z[1:]) < 3.5, z
