"""Sampled residual DMFT for nonlinear activations (meanfield_solvers/dmft/residual_sampled.py, docs/residual.md §5):
phi = identity reduces to the exact one-pass linear solver within Monte Carlo error; zero branches reduce to the
one-hidden-layer sampled DMFT on the same sources (to rounding); finite tanh residual networks approach it as N
grows; an oversized solve is refused before anything is allocated."""
import math

import numpy as np
import pytest

from meanfield.deep.network import DeepNet
from meanfield.deep.parametrisation import make_parametrisation
from meanfield.deep.train import make_step
from meanfield_solvers.dmft import solve_dmft
from meanfield_solvers.dmft.memory import DMFTMemoryError
from meanfield_solvers.dmft.residual_linear import solve_residual_linear
from meanfield_solvers.dmft.residual_sampled import residual_sampled_bytes, solve_residual_sampled

P, D = 3, 4


def _problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P, D))
    return X, np.array([1.0, -0.5, 0.8]), rng.standard_normal((1, D))


def test_identity_activation_is_the_exact_linear_solver():
    """phi = id: f within 4 MC standard errors of the exact linear DMFT at every step and point, and the
    responses (which for phi = id depend on the samples only through the kernels) within 3 % of the exact ones."""
    X, y, Xt = _problem()
    L, g0, dt, T = 3, 1.0, 0.2, 8
    b = 1.0 / math.sqrt(L)
    ex = solve_residual_linear(X, y, L, b, g0, dt, T, X_test=Xt)
    r = solve_residual_sampled(X, y, L, b, g0, dt, T, activation="linear", X_test=Xt, n_samples=8000,
                               n_tangent=40, error_batches=8, seed=3)
    assert r.info["causality_max"] == 0.0
    z = np.abs(r.f[1:] - ex.f[1:]) / r.f_err[1:]
    assert z.max() < 4.0, z
    assert np.abs(r.f - ex.f).max() > 0  # a Monte Carlo solve, not a copy of the exact one
    for got, want in ((r.RA, ex.RA), (r.RB, ex.RB)):
        assert np.abs(got - want).max() < 0.03 * np.abs(want).max()


def test_zero_branches_are_the_one_hidden_layer_dmft_on_the_same_sources():
    """b = 0: h^L = h^1 and g^l = g^L, so the L = 3 stream is the L = 1 single-site process; with the same u^1,
    r^L both solvers are exact for that noise and agree to rounding (f and the NTK)."""
    X, y, Xt = _problem()
    g0, dt, T, S = 1.3, 0.2, 10, 600
    rng = np.random.default_rng(5)
    n = P + 1
    Xa = np.concatenate([X, Xt])
    u1 = np.linalg.cholesky(Xa @ Xa.T / D) @ rng.standard_normal((n, S))
    rL = rng.standard_normal(S)
    ref = solve_dmft(X, y, 1, g0, dt, T, activation="tanh", X_test=Xt, u1=u1, rL=rL, error_batches=0)
    for L in (1, 3):
        r = solve_residual_sampled(X, y, L, 0.0, g0, dt, T, activation="tanh", X_test=Xt, u1=u1, rL=rL,
                                   n_tangent=20, error_batches=0)
        np.testing.assert_allclose(r.f, ref.f, rtol=0, atol=1e-11)
        np.testing.assert_allclose(r.K, ref.K, rtol=0, atol=1e-10)
    assert np.abs(ref.f[-1]).max() > 0.1


def test_initial_kernels_are_the_residual_recursion():
    """t = 0: the sampled Phi^l, G^l and NTK equal the residual NNGP/NTK recursion with erf's closed forms
    (meanfield_solvers/dmft/residual_ntk.py, docs/residual.md §2) to Monte Carlo accuracy at S = 160000 (expected
    relative error ~ 0.3-1 %; the G^l error includes the same-step R_B noise of 200 tangent samples)."""
    from meanfield_solvers.dmft.residual_ntk import residual_init_kernels

    X, y, Xt = _problem()
    L, b = 4, 0.9
    ker = residual_init_kernels(np.concatenate([X, Xt]), L, b, "erf")
    r = solve_residual_sampled(X, y, L, b, 1.0, 0.2, 1, X_test=Xt, n_samples=160000, n_tangent=200, error_batches=0,
                               seed=1, activation="erf")

    def rel(a, want):
        return np.abs(a - want).max() / np.abs(want).max()

    assert rel(r.K[0], ker.K) < 0.01
    assert max(rel(r.Phi[l - 1, 0], ker.Phi[l]) for l in range(1, L + 1)) < 0.01
    assert max(rel(r.G[l - 1, 0], ker.G[l]) for l in range(1, L + 1)) < 0.025


def test_small_gamma0_is_the_residual_ntk_flow_of_the_nonlinear_kernel():
    """gamma0 -> 0 for tanh (docs/residual.md §3: the deviation is O(gamma0^2), 0.3 % of the MC error here): at
    gamma0 = 0.05 the sampled solve's f lies within 4 MC standard errors of the residual NTK flow (discrete GD with
    the frozen nonlinear K_0, same step) at every step and point, and its NTK stays frozen at K_0 within 4 of its
    (batch) standard errors; at gamma0 = 1.5 (feature learning) the same comparison is > 6 SE off, so it resolves
    the difference."""
    from meanfield_solvers.dmft.residual_ntk import solve_residual_ntk

    X, y, Xt = _problem()
    L, b, dt, T = 3, 0.8, 0.2, 8
    ntk = solve_residual_ntk(X, y, L, b, dt, T, activation="tanh", X_test=Xt)
    kw = dict(activation="tanh", X_test=Xt, n_samples=16000, n_tangent=40, error_batches=8, seed=3)
    lazy = solve_residual_sampled(X, y, L, b, 0.05, dt, T, **kw)
    z = np.abs(lazy.f[1:] - ntk.f[1:]) / lazy.f_err[1:]
    assert z.max() < 4.0, z
    zK = np.abs(lazy.K - ntk.kernels.K[None]) / lazy.K_err
    assert zK.max() < 4.0, zK.max()
    rich = solve_residual_sampled(X, y, L, b, 1.5, dt, T, **kw)
    assert (np.abs(rich.f[1:] - ntk.f[1:]) / rich.f_err[1:]).max() > 6.0


def test_kernel_error_bars_are_batch_errors_that_calibrate():
    """K_err, Phi_err, G_err (and f_err) are batch standard errors, not NaN: over 24 independent solves (different
    noise seeds) the spread of every reported quantity matches the mean quoted squared error, var_solves / mean(SE^2)
    averaged over time steps and distinct kernel entries in (0.5, 2) (its sampling range at 23 degrees of freedom;
    quoting std_b instead of std_b/sqrt(B) would give 1/8, dropping a batch's feedback 0 or inf). Without error
    batches the errors are NaN with the reason recorded."""
    X, y, Xt = _problem()
    L, b, dt, T = 3, 0.8, 0.25, 3
    kw = dict(activation="tanh", X_test=Xt, n_samples=2000, n_tangent=40, error_batches=8)
    rs = [solve_residual_sampled(X, y, L, b, 1.0, dt, T, seed=s, **kw) for s in range(24)]
    iu = np.triu_indices(P + 1)
    for key in ("f", "K", "Phi", "G"):
        v = np.stack([getattr(r, key) for r in rs])
        e = np.stack([getattr(r, key + "_err") for r in rs])
        if key == "f":  # f(0) = 0 exactly: no error there
            v, e = v[:, 1:], e[:, 1:]
        else:
            v, e = v[..., iu[0], iu[1]], e[..., iu[0], iu[1]]
        assert np.all(np.isfinite(e)) and np.all(e > 0), key
        ratio = v.var(axis=0, ddof=1) / (e ** 2).mean(axis=0)
        assert 0.5 < ratio.mean() < 2.0, (key, ratio.mean())
    none = solve_residual_sampled(X, y, L, b, 1.0, dt, T, seed=0, **dict(kw, error_batches=0))
    assert np.all(np.isnan(none.K_err)) and "no Monte Carlo error" in none.info["error_batch_method"]


def _ensemble(X, y, Xa, L, beta, g0, dt, T, N, S):
    net = DeepNet("tanh", D, N, L, make_parametrisation("mup", g0, residual=True, branch_scale=beta))
    th = net.init([[np.random.default_rng([23, L, N, s, l]) for l in range(L + 1)] for s in range(S)])
    step = make_step(net, "gd", dt, train=(X, y))
    for k in range(T):
        th = step(th, k)
    return net.output(th, Xa)  # (S, n)


@pytest.mark.parametrize("L", [2, 3])
def test_finite_tanh_residual_networks_approach_the_sampled_solver(L):
    """GD at lr = dt, depth-muP branches 1/sqrt(L), tanh: at N = 512 the seed means lie within 3 SE (networks' SE
    and the solver's MC error combined) of the solver at t = T dt, and the single-network RMS deviation falls
    from N = 64 to N = 512 like N^-1/2 (fitted exponent in (-0.75, -0.3))."""
    X, y, Xt = _problem()
    Xa = np.concatenate([X, Xt])
    g0, dt, T, beta, S = 1.0, 0.25, 8, 1.0, 64
    kw = dict(activation="tanh", X_test=Xt, n_samples=12000, n_tangent=60, error_batches=6, seed=L)
    r = solve_residual_sampled(X, y, L, beta / math.sqrt(L), g0, dt, T, **kw)
    ablated = solve_residual_sampled(X, y, L, beta / math.sqrt(L), g0, dt, T, responses=False, **kw)
    rms = {}
    for N in (64, 512):
        f = _ensemble(X, y, Xa, L, beta, g0, dt, T, N, S)
        rms[N] = math.sqrt(np.mean((f - r.f[-1]) ** 2))
        if N == 512:
            se = np.sqrt(f.var(0, ddof=1) / S + r.f_err[-1] ** 2)
            assert (np.abs(f.mean(0) - r.f[-1]) / se).max() < 3.0, (f.mean(0), r.f[-1], se)
            # without the responses (gradient independence) the same test fails: they are wired in and matter
            assert (np.abs(f.mean(0) - ablated.f[-1]) / se).max() > 5.0
    slope = math.log(rms[512] / rms[64]) / math.log(8)
    assert -0.75 < slope < -0.3, (rms, slope)


def test_memory_estimate_refuses_before_allocating():
    X, y, Xt = _problem()
    need = residual_sampled_bytes(8, 40, 4, 3, 4000, 500)
    assert need > 1e9  # the tangents dominate: L^2 T^2 points^2 n_tangent
    with pytest.raises(DMFTMemoryError, match="n_tangent"):
        solve_residual_sampled(X, y, 8, 0.3, 1.0, 0.1, 40, X_test=Xt, n_samples=4000, n_tangent=500, max_bytes=1e9)
    # the estimate grows like L^2 in its tangent part
    t = [residual_sampled_bytes(L, 20, 4, 3, 10, 500) for L in (5, 9, 17)]
    assert 3.3 < t[1] / t[0] < 4.5 and 3.3 < t[2] / t[1] < 4.5


def test_residual_dmft_run_and_validation():
    """limit.method = 'dmft' with model.residual (tanh): the run records the sweep (status swept) with MC errors and
    the networks' seed means agree within 3.5 SE at every recorded time; an oversized solve is refused at
    validation naming the tangent samples."""
    import meanfield
    from meanfield import config as C
    from tests.helpers import tiny

    over = {"model.depth": 3, "model.activation": "tanh", "model.residual": True, "limit.method": "dmft",
            "train.algorithm": "gd", "train.lr": 0.2, "limit.dt": 0.2, "train.n_train": 3, "eval.n_points": 1,
            "train.widths": [256], "train.seeds": 32, "time.t_max": 1.6, "time.records": 4,
            "limit.dmft_samples": 6000, "limit.dmft_tangent_samples": 40, "limit.dmft_error_batches": 4}
    res = meanfield.run(C.Config.from_dict(tiny(**over)), progress=False)
    assert res.summary["limit"]["status"] == "swept"
    a = res.arrays
    f = a["f_nn"][0]
    assert np.all(np.isfinite(a["f_mf_err"][1:])) and np.all(a["f_mf_err"][1:] > 0)
    se = np.sqrt(f.var(0, ddof=1) / f.shape[0] + a["f_mf_err"] ** 2)
    z = np.abs(f.mean(0) - a["f_mf"]) / se
    assert np.nanmax(z[1:]) < 3.5, z
    with pytest.raises(C.ConfigError, match="dmft_tangent_samples"):
        C.Config.from_dict(tiny(**dict(over, **{"time.t_max": 20.0, "limit.dmft_tangent_samples": 2000,
                                                 "limit.dmft_max_memory_gb": 0.5})))


def test_a_source_covariance_that_is_not_positive_definite_stops_the_sweep_there(monkeypatch):
    """The failure is reported (status, step, the kernel's name), never patched: f is kept before the failing step and
    NaN from it on, and the deep adapter's good_horizon is the last solved step."""
    import meanfield_solvers.dmft.residual_sampled as rs
    from meanfield_solvers.dmft.sources import IncrementalCholesky, KernelNotPositiveDefinite

    real = IncrementalCholesky.append

    def append(self):
        if self.k == 4 and "r^" in self.name:
            raise KernelNotPositiveDefinite(self.name + " (up to time index 4)", -1.0, 1e-10, 2.0)
        return real(self)

    monkeypatch.setattr(rs.IncrementalCholesky, "append", append)
    X, y, Xt = _problem()
    r = solve_residual_sampled(X, y, 2, 0.7, 1.0, 0.2, 8, X_test=Xt, n_samples=400, n_tangent=10, error_batches=4)
    assert r.status == "not_positive_definite" and "step 4" in r.message and "G^2" in r.message
    assert r.info["good_horizon"] == 3
    assert np.all(np.isfinite(r.f[:4])) and np.all(np.isnan(r.f[4:]))
