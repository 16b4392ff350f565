"""Finite-width deep muP networks against the infinite-width solvers of meanfield_solvers.dmft.

Full-batch GD with step dt is compared with the discrete DMFT at the same dt (its exact N -> infinity
limit, docs/dmft.md §3.1), so every deviation is a finite-width effect (or the DMFT's Monte Carlo error).
"""
import numpy as np
import pytest

dmft = pytest.importorskip("meanfield_solvers.dmft")

from meanfield.analysis.fitting import fit_power_law  # noqa: E402
from meanfield.deep.network import DeepNet, MuP  # noqa: E402
from meanfield.deep.train import make_step  # noqa: E402


def _trajectories(act, D, N, L, g0, X, y, Xall, dt, T, S, base):
    """f of S networks at every step: (S, T+1, n)."""
    net = DeepNet(act, D, N, L, MuP(g0))
    th = net.init([[np.random.default_rng([base, N, s, l]) for l in range(L + 1)] for s in range(S)])
    step = make_step(net, "gd", dt, train=(X, y))
    fs = [net.output(th, Xall)]
    for k in range(T):
        th = step(th, k)
        fs.append(net.output(th, Xall))
    return np.stack(fs, axis=1)


def _problem(P=4, D=4, Q=2, seed=5, scale=2.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D))
    Xt = rng.standard_normal((Q, D))
    return X, np.tanh(scale * X[:, 0]), Xt


def test_depth_one_network_is_the_L1_dmft_fed_its_own_weights():
    """docs/dmft.md §4.1: an L = 1 DMFT whose samples are a width-N network's own initial weights (u1 = W0 x/√D,
    rL = w) with the empirical output f = <z φ(h)>/γ0 *is* that network (the TwoLayer code) under GD."""
    X, y, Xt = _problem()
    Xall = np.concatenate([X, Xt])
    D, N, g0, dt, T = 4, 64, 0.7, 0.1, 15
    net = DeepNet("tanh", D, N, 1, MuP(g0))
    th = net.init([[np.random.default_rng([1, l]) for l in range(2)]])  # one network
    W0, w = net.weights(th)
    u1 = (Xall @ W0[0].T) / np.sqrt(D)
    r = dmft.solve_dmft(X, y, 1, g0, dt, T, activation="tanh", X_test=Xt, u1=u1, rL=w[0],
                        f_estimator="empirical", error_batches=0, tol=1e-14, max_iter=200)
    step = make_step(net, "gd", dt, train=(X, y))
    fs = [net.output(th, Xall)[0]]
    for k in range(T):
        th = step(th, k)
        fs.append(net.output(th, Xall)[0])
    np.testing.assert_allclose(np.stack(fs), r.f, rtol=0, atol=1e-12)


def test_deep_linear_L3_approaches_dmft_linear_as_N_grows():
    """RMS deviation of single networks from the exact deep-linear DMFT ∝ N^(-1/2) (fitted exponent)."""
    rng = np.random.default_rng(3)
    P, D, Q, L, g0, dt, T = 4, 4, 2, 3, 1.0, 0.1, 20
    X = rng.standard_normal((P, D))
    y = X @ rng.standard_normal(D) / np.sqrt(D)
    Xt = rng.standard_normal((Q, D))
    Xall = np.concatenate([X, Xt])
    ref = dmft.solve_deep_linear(X, y, L, g0, dt, T, X_test=Xt)
    assert ref.status == "converged"
    widths = [64, 128, 256, 512]
    rms = [np.sqrt(np.mean((_trajectories("linear", D, N, L, g0, X, y, Xall, dt, T, 32, 99) - ref.f) ** 2))
           for N in widths]
    fit = fit_power_law(np.array(widths, float), np.array(rms))
    assert -0.62 < fit.slope < -0.38, (fit.slope, rms)
    # the limit is not the lazy one: feature learning moved f by much more than the N = 512 deviation
    ntk = dmft.solve_ntk(X, y, L, dt, T, activation="linear", X_test=Xt)
    assert np.abs(ref.f - ntk.f).max() > 3 * rms[-1]


def test_L2_tanh_rms_ratio_and_seed_mean_within_errors():
    """L = 2 tanh: RMS deviation shrinks by a factor in [0.35, 0.7] from N to 4N, and the seed mean lies
    within 3 standard errors ⊕ the DMFT's Monte Carlo error (and not within them of the NTK)."""
    X, y, Xt = _problem()
    Xall = np.concatenate([X, Xt])
    D, L, g0, dt, T, S = 4, 2, 1.0, 0.1, 20, 128
    ref = dmft.solve_dmft(X, y, L, g0, dt, T, activation="tanh", X_test=Xt, n_samples=4000, n_tangent=300,
                          seed=1, error_batches=4)
    assert ref.status == "converged" and np.all(np.isfinite(ref.f_err))
    ntk = dmft.solve_ntk(X, y, L, dt, T, activation="tanh", X_test=Xt)
    rms = {}
    for N in (128, 512):
        f = _trajectories("tanh", D, N, L, g0, X, y, Xall, dt, T, S, 17)
        rms[N] = np.sqrt(np.mean((f - ref.f) ** 2))
    ratio = rms[512] / rms[128]
    assert 0.35 <= ratio <= 0.7, ratio
    m = f.mean(axis=0)
    se = f.std(axis=0, ddof=1) / np.sqrt(S)
    tol = np.sqrt(se ** 2 + ref.f_err ** 2)
    times = [5, 10, 20]
    z = np.abs(m - ref.f)[times] / tol[times]
    assert np.all(z <= 3.0), z.max()
    z_ntk = np.abs(m - ntk.f)[times] / tol[times]
    assert z_ntk.max() > 5.0  # the comparison can tell the DMFT from the lazy limit


def test_dmft_and_dmft_linear_runs_through_the_product():
    from meanfield.run import run

    from helpers import tiny

    base = {"model.depth": 2, "train.algorithm": "gd", "train.n_train": 3, "eval.n_points": 1, "limit.dt": 0.1,
            "train.lr": 0.1, "train.widths": [32], "train.seeds": 2, "time.t_max": 0.5, "model.gamma0": 1.0}
    r = run(tiny(**base, **{"model.activation": "tanh", "limit.method": "dmft", "limit.dmft_samples": 400,
                            "limit.dmft_tangent_samples": 50}))
    assert r.summary["limit"]["status"] == "converged" and np.all(r.arrays["f_inf_err"][1:] > 0)
    assert r.arrays["Phi_inf"].shape[1:] == (2, 4, 4) and not r.summary["messages"]
    base["model.depth"] = 3
    r = run(tiny(**base, **{"model.activation": "linear", "limit.method": "dmft_linear"}))
    assert r.summary["limit"]["status"] == "converged" and np.all(r.arrays["f_inf_err"] == 0)
    assert r.arrays["G_inf"].shape[1:] == (3, 4, 4)


def test_issue19_configuration_is_one_sweep_and_one_certification():
    """Issue 19: L = 2 tanh, gamma0 = 1, 8 training and 8 test points, T = 40 steps took 26 fixed-point
    iterations at the default samples because the causal sweep's tangents (5.6 GB, dense) exceeded the
    default limit.dmft_max_memory_gb = 4, so the solver fell back to the Jacobi iteration with 4
    continuation stages. Stored lower-triangular by seed time they need 3.1 GB: the default config now
    takes the sweep, and the solve is the minimum the causal structure allows, 2 iterations (one sweep,
    one certification), each recorded with its reason, with progress on the run's log."""
    from meanfield import config as C
    from meanfield.run import run
    from meanfield_solvers.dmft.sampled import choose_sweep

    from helpers import tiny

    lim = C.from_dict(tiny()).limit  # the defaults: 4000 samples, 500 tangent samples, 4 GB
    for workers in (1, 2, 16):
        sweep, why, n = choose_sweep("auto", 40, 16, 8, 2, lim.dmft_samples, lim.dmft_tangent_samples, None,
                                     workers, lim.dmft_max_memory_gb * 1e9)
        assert sweep == "causal" and n == lim.dmft_tangent_samples, why
    cfg = tiny(**{"model.depth": 2, "model.activation": "tanh", "model.gamma0": 1.0, "limit.method": "dmft",
                  "train.algorithm": "gd", "train.n_train": 8, "eval.n_points": 8, "limit.dt": 0.1,
                  "train.lr": 0.1, "time.t_max": 4.0, "train.widths": [8], "train.seeds": 1,
                  "limit.dmft_samples": 400, "limit.dmft_tangent_samples": 16})
    lines = []
    r = run(cfg, log=lines.append)
    info = r.summary["limit"]
    assert info["status"] == "converged" and info["sweep"] == "causal"
    assert info["iterations"] == 2 and info["extra_iterations"] == 0
    assert info["iteration_reasons"][0].startswith("causal sweep: solves stage T=40")
    assert info["iteration_reasons"][1].startswith("certification")
    assert info["final_residual"] < 1e-6
    assert r.arrays["f_mf"].shape[1] == 16 and np.all(np.isfinite(r.arrays["f_mf_err"][1:]))
    assert any(ln.startswith("dmft: causal: one sweep solves the causal system") for ln in lines), lines
