"""Exact deep-linear residual DMFT (one causal pass): reductions, finite-width residual ensembles at two
depths (seed means within 3 SE, RMS ~ N^-1/2, the response-free ablation fails), gamma0 -> 0 = NTK flow."""
import math

import numpy as np
import pytest

from meanfield.deep.network import DeepNet
from meanfield.deep.parametrisation import make_parametrisation
from meanfield.deep.train import make_step
from meanfield_solvers.dmft import solve_deep_linear
from meanfield_solvers.dmft.residual_linear import solve_residual_linear
from meanfield_solvers.dmft.residual_ntk import solve_residual_ntk

P, D = 3, 4


def _problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P, D))
    return X, np.array([1.0, -0.5, 0.8]), rng.standard_normal((1, D))


def test_depth_one_and_zero_branches_are_the_plain_linear_dmft():
    X, y, Xt = _problem()
    ref = solve_deep_linear(X, y, 1, 0.8, 0.2, 10, X_test=Xt)
    for L, b in ((1, 0.7), (3, 0.0)):
        r = solve_residual_linear(X, y, L, b, 0.8, 0.2, 10, X_test=Xt)
        np.testing.assert_allclose(r.f, ref.f, rtol=0, atol=1e-13)
    np.testing.assert_allclose(solve_residual_linear(X, y, 1, 0.7, 0.8, 0.2, 10, X_test=Xt).K, ref.K, atol=1e-13)


def test_responses_are_strictly_causal_and_nonzero():
    X, y, Xt = _problem()
    r = solve_residual_linear(X, y, 3, 0.6, 1.0, 0.2, 6, X_test=Xt)
    for R in (r.RA, r.RB):  # (L-1, k, mu, j, nu): no weight on j >= k
        for k in range(7):
            assert np.abs(R[:, k, :, k:, :]).max() == 0.0
        assert np.abs(R).max() > 1e-3
    assert r.info["causality_max"] == 0.0


def _ensemble(X, y, Xa, L, beta, g0, dt, T, N, S):
    net = DeepNet("linear", D, N, L, make_parametrisation("mup", g0, residual=True, branch_scale=beta))
    th = net.init([[np.random.default_rng([11, L, N, s, l]) for l in range(L + 1)] for s in range(S)])
    step = make_step(net, "gd", dt, train=(X, y))
    for k in range(T):
        th = step(th, k)
    return net.output(th, Xa)  # (S, n)


@pytest.mark.parametrize("L", [2, 4])
def test_finite_width_residual_networks_approach_the_exact_solver(L):
    """GD at lr = dt, depth-muP branches 1/sqrt(L): seed means at N = 256 within 3 SE of the solver at t = T dt,
    single-network RMS deviation falls like N^-1/2 (N = 64 -> 256), and the solver without responses is
    > 5 SE off (so the responses are wired in and matter)."""
    X, y, Xt = _problem()
    Xa = np.concatenate([X, Xt])
    g0, dt, T, beta, S = 1.0, 0.2, 10, 1.0, 96
    r = solve_residual_linear(X, y, L, beta / math.sqrt(L), g0, dt, T, X_test=Xt)
    ablated = solve_residual_linear(X, y, L, beta / math.sqrt(L), g0, dt, T, X_test=Xt, responses=False)
    rms = {}
    for N in (64, 256):
        f = _ensemble(X, y, Xa, L, beta, g0, dt, T, N, S)
        rms[N] = math.sqrt(np.mean((f - r.f[-1]) ** 2))
        if N == 256:
            se = f.std(0, ddof=1) / math.sqrt(S)
            assert (np.abs(f.mean(0) - r.f[-1]) / se).max() < 3.0
            assert (np.abs(f.mean(0) - ablated.f[-1]) / se).max() > 5.0
    slope = math.log(rms[256] / rms[64]) / math.log(4)
    assert -0.7 < slope < -0.3, (rms, slope)


def test_lazy_limit_is_the_residual_ntk_flow():
    """gamma0 -> 0: the solver's outputs -> the Euler kernel flow with the residual K_0 (discrete GD at the same
    step), deviation ~ gamma0^2 (docs/residual.md §3: f is even in gamma0, so no O(gamma0) term)."""
    X, y, Xt = _problem()
    L, b, dt, T = 3, 0.8, 0.2, 8
    ntk = solve_residual_ntk(X, y, L, b, dt, T, activation="linear", X_test=Xt)
    g0s = np.array([0.05, 0.1, 0.2])
    dev = [np.abs(solve_residual_linear(X, y, L, b, g, dt, T, X_test=Xt).f - ntk.f).max() for g in g0s]
    slope = np.polyfit(np.log(g0s), np.log(dev), 1)[0]
    assert 1.9 < slope < 2.1, (dev, slope)
    np.testing.assert_allclose(solve_residual_linear(X, y, L, b, 0.1, dt, T, X_test=Xt).K[0], ntk.kernels.K,
                               rtol=1e-12)


def test_lazy_limit_deviation_is_even_in_gamma0():
    """The evenness behind the gamma0^2 rate (docs/residual.md §3): f(gamma0) = f_NTK + c2 gamma0^2 + O(gamma0^4).
    The scaled deviation d(gamma0) = (f - f_NTK)/gamma0^2 tends to a nonzero c2, and its change between gamma0 and
    2 gamma0 falls 4-fold per halving (an O(gamma0^3) term, i.e. an odd part, would make it fall only 2-fold)."""
    X, y, Xt = _problem()
    L, b, dt, T = 3, 0.8, 0.2, 8
    ntk = solve_residual_ntk(X, y, L, b, dt, T, activation="linear", X_test=Xt)
    g0s = [0.025, 0.05, 0.1, 0.2]
    d = [(solve_residual_linear(X, y, L, b, g, dt, T, X_test=Xt).f - ntk.f) / g ** 2 for g in g0s]
    assert np.abs(d[0]).max() > 0.05  # c2 != 0: the rate is gamma0^2, not faster
    change = [np.abs(d[i + 1] - d[i]).max() for i in range(3)]
    rates = [change[i + 1] / change[i] for i in range(2)]
    assert all(3.8 < r < 4.2 for r in rates), (change, rates)


def test_residual_dmft_linear_run_and_memory_refusal():
    """limit.method = 'dmft_linear' with model.residual: the run records the one-pass solution (status exact) and
    the networks' seed means agree; an oversized solve is refused at validation with the estimate."""
    import meanfield
    from meanfield import config as C
    from tests.helpers import tiny

    over = {"model.depth": 3, "model.activation": "linear", "model.residual": True, "limit.method": "dmft_linear",
            "train.algorithm": "gd", "train.lr": 0.1, "limit.dt": 0.1, "train.n_train": 3, "eval.n_points": 1,
            "train.widths": [128], "train.seeds": 32, "time.t_max": 1.0, "time.records": 4}
    res = meanfield.run(C.Config.from_dict(tiny(**over)), progress=False)
    assert res.summary["limit"]["status"] == "exact"
    a = res.arrays
    f = a["f_nn"][0]
    z = np.abs(f.mean(0) - a["f_mf"]) / (f.std(0, ddof=1) / math.sqrt(f.shape[0]))
    assert np.nanmax(z[1:]) < 3.5
    with pytest.raises(C.ConfigError, match="residual one-pass solver"):
        C.Config.from_dict(tiny(**dict(over, **{"time.t_max": 40.0, "limit.dmft_max_memory_gb": 0.01})))
