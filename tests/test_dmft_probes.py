"""The randomised-probe response estimator (meanfield_solvers/dmft/probes.py, docs/dmft.md §3.3(c)) against the
exact unit-seed tangents (march.py), the reference.

Scientific claims under test:
* unbiased: on the same samples, probe minus exact is pure probe noise of mean zero — chi^2 of its
  batch z-scores over every estimated entry near its t-distribution value, while a biased variant
  (the curvature term phi''(h) z dropped from the probe tangent) fails the same test;
* the same-time R_B blocks (closed form) equal the exact tangents' on the same samples;
* the error falls as (samples)^(-1/2);
* the causal sweep's step-by-step estimator equals the Jacobi map's blocked one (so the sweep lands
  on the fixed point), bit for bit whatever the worker count;
* a whole solve with probes reproduces the exact-tangent solve on the same kernel noise within the
  stated Monte Carlo error (L = 2, 3; tanh, erf; gamma0 = 0.5, 2), in the minimum of 2 iterations.
"""
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from meanfield_solvers import gaussian
from meanfield_solvers.dmft import estimate_memory, solve_dmft
from meanfield_solvers.dmft import probes as probes_mod
from meanfield_solvers.dmft.grid import Grid
from meanfield_solvers.dmft.march import SeedLayout, tangent_averages
from meanfield_solvers.dmft.probes import ProbeBank, ProbeTangents, probe_averages


def _problem(activation="tanh", n_t=6, n_pts=3, n_train=2, c=1600, seed=0):
    """Random causal memory operators (same-time Z blocks included) and primal histories."""
    rng = np.random.default_rng(seed)
    g = Grid(n_t, n_pts, n_train, 0.1)
    n = g.n
    H = 0.3 * rng.standard_normal((n, n)) * g.strict_mask()
    Z = 0.3 * rng.standard_normal((n, n)) * (g.strict_mask() + np.kron(np.eye(n_t), np.ones((n_pts, n_pts))))
    h = rng.standard_normal((n, c))
    z = 0.8 * h + 0.6 * rng.standard_normal((n, c))  # correlated, as in the DMFT: <phi''(h) z> != 0
    return gaussian.get_activation(activation), g, H, Z, h, z


def _exact(act, g, H, Z, h, z):
    seeds = SeedLayout(g.n_t, g.n_pts, g.n_train, True, True, one_seed=False)
    return tangent_averages(act, h, z, H, Z, g, seeds, chunk=h.shape[1])


def _probe(act, g, H, Z, h, z, bank, cols):
    pb = bank.subset(cols)
    return probe_averages(act, h[:, cols], z[:, cols], H, Z, g, pb.directions("r", 1, g.n),
                          pb.directions("u", 2, g.n), pb.K)


def _support(g):
    """Entries the probes estimate by correlation: R_A[k, j<k] on training columns, R_B[k, j<k]."""
    past = g.strict_mask().astype(bool)
    train = np.zeros((g.n_t, g.n_pts), bool)
    train[:, :g.n_train] = True
    return past & train.ravel()[None, :], past


def _chi2(act_probe, K, B=16, c=1600, seed=0):
    """Mean z^2 of (probe - exact on the same samples) over the estimated entries, from B batches."""
    act, g, H, Z, h, z = _problem(c=c, seed=seed)
    bank = ProbeBank(g.n, g.n_pts, g.n_train, 2, c, K, seed=seed)  # r-directions of layer 1, u of layer 2
    m = c // B
    dA, dB = [], []
    for b in range(B):
        cols = slice(b * m, (b + 1) * m)
        ex = _exact(act, g, H, Z, h[:, cols], z[:, cols])
        pr = _probe(act_probe, g, H, Z, h, z, bank, cols)
        dA.append(pr["RA"] - ex["RA"])
        dB.append(pr["RB"] - ex["RB"])
        same = np.kron(np.eye(g.n_t), np.ones((g.n_pts, g.n_pts))).astype(bool)
        same_err = np.max(np.abs(pr["RB"][same] - ex["RB"][same]))
    sA, sB = _support(g)
    zs = []
    for d, sup in ((np.array(dA), sA), (np.array(dB), sB)):
        mean, se = d.mean(0), d.std(0, ddof=1) / np.sqrt(B)
        zs.append(mean[sup] / se[sup])
    zs = np.concatenate(zs)
    return float(np.mean(zs ** 2)), zs.size, same_err


@pytest.mark.parametrize("K", [1, 3])
def test_probe_responses_are_unbiased_chi2(K):
    """Probe minus exact tangents on the same samples has mean zero on every estimated entry: its
    batch z-scores (t with 15 degrees of freedom, E z^2 = 15/13 = 1.15) give mean z^2 near 1.15 over
    225 entries (correlated, so the band is wide: [0.7, 1.7]); the same-time R_B blocks are the
    exact ones (closed form, same samples) to rounding."""
    chi2, m, same_err = _chi2(gaussian.get_activation("tanh"), K)
    assert m > 200
    assert 0.7 < chi2 < 1.7, chi2
    assert same_err < 1e-12


def test_the_chi2_test_catches_a_biased_probe():
    """Power of the test above: the probe tangent without the curvature term phi''(h) z dh (a plausible
    bug; the estimate is then the response of a different process) gives mean z^2 far above 1
    (17.8 measured; the unbiased estimator 1.21 on the same samples and directions)."""
    tanh = gaussian.get_activation("tanh")
    flat = SimpleNamespace(fn=tanh.fn, d1=tanh.d1, d2=lambda x: np.zeros_like(x))
    chi2, _, _ = _chi2(flat, 1)
    assert chi2 > 5.0, chi2


def test_probe_error_falls_as_inverse_sqrt_samples():
    """RMS(probe - exact) over the estimated entries at 250 and 4000 samples (16x): ratio near 4."""
    act, g, H, Z, h, z = _problem(c=4000, seed=3)
    bank = ProbeBank(g.n, g.n_pts, g.n_train, 2, 4000, 1, seed=3)
    sA, sB = _support(g)
    rms = []
    for c in (250, 4000):
        cols = slice(0, c)
        ex = _exact(act, g, H, Z, h[:, cols], z[:, cols])
        pr = _probe(act, g, H, Z, h, z, bank, cols)
        d = np.concatenate([(pr["RA"] - ex["RA"])[sA], (pr["RB"] - ex["RB"])[sB]])
        rms.append(np.sqrt(np.mean(d ** 2)))
    assert 3.0 < rms[0] / rms[1] < 5.3, rms


@pytest.mark.parametrize("part", [None, 7])
def test_sweep_steps_equal_the_blocked_march(monkeypatch, part):
    """The causal sweep's step-by-step probe estimator (memory rows, rows read at each step) equals the
    Jacobi map's blocked march and end-of-march products to rounding, and its threaded column parts
    give the same bits with 1 and 2 workers."""
    if part is not None:
        monkeypatch.setattr(probes_mod, "PART", part)
    act, g, H, Z, h, z = _problem(n_t=7, c=20, seed=5)
    K = 2
    bank = ProbeBank(g.n, g.n_pts, g.n_train, 2, 20, K, seed=1)
    Vr, Vu = bank.directions("r", 1, g.n), bank.directions("u", 2, g.n)
    ref = probe_averages(act, h, z, H, Z, g, Vr, Vu, K, block=3)
    P = g.n_pts
    runs = []
    for workers in (1, 2):
        with ThreadPoolExecutor(max_workers=2) as pool:
            tm = ProbeTangents(act, h, z, Vr, Vu, g, K, pool=pool if workers > 1 else None, workers=workers)
            RA, RB = np.zeros((g.n, g.n)), np.zeros((g.n, g.n))
            for k in range(g.n_t):
                rows = g.rows(k)
                tm.sweep_h(k, H[rows, :k * P])
                RA[rows].reshape(P, g.n_t, P)[:, :k + 1, :g.n_train] = tm.ra_rows(k)
                tm.sweep_z(k, Z[rows, :(k + 1) * P])
                RB[rows].reshape(P, g.n_t, P)[:, :k + 1, :] = tm.rb_rows(k)
        runs.append((RA, RB))
        np.testing.assert_allclose(RA, ref["RA"], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(RB, ref["RB"], rtol=1e-11, atol=1e-14)
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert np.max(np.abs(ref["RB"])) > 0.05
    # the Jacobi map's sample chunks: the same sums to rounding, the same bits with 1 or 2 workers
    a, b = (probe_averages(act, h, z, H, Z, g, Vr, Vu, K, block=3, workers=w, chunk=7) for w in (1, 2))
    assert np.array_equal(a["RA"], b["RA"]) and np.array_equal(a["RB"], b["RB"])
    np.testing.assert_allclose(a["RB"], ref["RB"], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(a["RA"], ref["RA"], rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("L", [2, 3])
@pytest.mark.parametrize("activation", ["tanh", "erf"])
@pytest.mark.parametrize("gamma0", [0.5, 2.0])
def test_probe_solve_reproduces_the_exact_tangent_solve(L, activation, gamma0):
    """Same kernel noise, responses by probes (all samples) or by exact tangents (all samples): the
    outputs agree within 4 combined standard errors at every time and point (the errors include the
    shared kernel noise, so the bound is conservative), the probe sweep is the fixed point of its
    Jacobi map (2 iterations), and the record names the estimator."""
    rng = np.random.default_rng(int(L + 10 * gamma0))
    X, y = rng.standard_normal((3, 4)), rng.choice([-1.0, 1.0], 3)
    kw = dict(L=L, gamma0=gamma0, dt=0.2, T=6, activation=activation, n_samples=1200, n_tangent=1200,
              seed=7, error_batches=8, workers=1)
    ex = solve_dmft(X, y, response_estimator="tangent", **kw)
    pr = solve_dmft(X, y, response_estimator="probe", **kw)
    assert ex.converged and pr.converged and pr.iterations == 2 and pr.residuals[-1] < 1e-8
    assert pr.info["response_estimator"] == "probe" and ex.info["response_estimator"] == "tangent"
    se = np.sqrt(ex.f_err ** 2 + pr.f_err ** 2)[1:]
    d = np.abs(pr.f - ex.f)[1:]
    assert np.all(d <= 4 * se), np.max(d / se)
    assert np.max(d) > 0  # the estimators differ (the comparison is not vacuous)
    # the responses themselves: relative Frobenius difference small (probe noise at 1200 samples)
    assert np.linalg.norm(pr.RB - ex.RB) < 0.25 * np.linalg.norm(ex.RB)


def test_probe_solve_is_deterministic_and_estimates_its_memory():
    """Same seed: bitwise the same result; the memory estimate of the probe solve counts its
    directions and tangents (grows with samples like the primal, not with (PT)^2 per sample), and
    is refused before allocation when over max_bytes."""
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((3, 4)), rng.standard_normal(3)
    kw = dict(n_samples=600, seed=1, error_batches=2, response_estimator="probe", workers=2)
    a = solve_dmft(X, y, 2, 1.0, 0.2, 5, **kw)
    b = solve_dmft(X, y, 2, 1.0, 0.2, 5, **kw)
    assert np.array_equal(a.f, b.f) and np.array_equal(a.RB, b.RB) and np.array_equal(a.f_err, b.f_err)
    args = (100, 32, 32, 2, 4000, 4000)
    pe = estimate_memory(*args, sweep="causal", response="probe")
    te = estimate_memory(*args[:5], 500, sweep="causal", response="tangent")
    # P = 32, T = 100: about 4.7 GB with probes (2.5 GB of it the (PT)^2 order parameters), some 85 GB
    # for the exact tangents' causal sweep with 500 tangent samples
    assert pe.total < 6e9 and te.total > 50e9
    # 'auto': the probes from n_pts (T+1) = 500 rows on (measured crossover) or where the exact sweep does
    # not fit; the exact tangents, the reference, on small problems
    from meanfield_solvers.dmft.sampled import choose_response_estimator

    assert choose_response_estimator("auto", 100, 32, 32, 2, 4000, 500, 1, 4e9)[0] == "probe"
    assert choose_response_estimator("auto", 40, 16, 8, 2, 4000, 500, 1, 4e9)[0] == "probe"  # issue 19: 656 rows
    assert choose_response_estimator("auto", 40, 8, 8, 2, 4000, 500, 1, 4e9)[0] == "tangent"  # 328 rows
    name, why = choose_response_estimator("auto", 40, 8, 8, 2, 10**5, 10**5, 1, 4e9)  # 328 rows, no fit
    assert name == "probe" and "GB" in why
    assert choose_response_estimator("auto", 100, 32, 32, 1, 4000, 500, 1, 4e9)[0] == "tangent"  # no responses
    with pytest.raises(Exception, match="max_bytes"):
        solve_dmft(X, y, 2, 1.0, 0.2, 5, max_bytes=1e5, **kw)
    with pytest.raises(ValueError, match="response_estimator"):
        solve_dmft(X, y, 2, 1.0, 0.2, 5, n_samples=100, response_estimator="stein")


def test_probe_estimator_through_the_config():
    """limit.dmft_response_estimator = 'probe' reaches the solver (the run's limit record names it, the
    solve converges in 2 iterations with finite error bars); with residual networks (exact tangents
    only) it is refused naming the key."""
    import sys
    import os

    sys.path.insert(0, os.path.dirname(__file__))
    from helpers import tiny

    from meanfield import config as C
    from meanfield.run import run

    base = {"model.depth": 2, "model.activation": "tanh", "model.gamma0": 1.0, "limit.method": "dmft",
            "train.algorithm": "gd", "train.n_train": 3, "eval.n_points": 1, "limit.dt": 0.1, "train.lr": 0.1,
            "time.t_max": 0.5, "train.widths": [8], "train.seeds": 1, "limit.dmft_samples": 400,
            "limit.dmft_response_estimator": "probe", "limit.dmft_probes": 2}
    r = run(tiny(**base))
    info = r.summary["limit"]
    assert info["status"] == "converged" and info["iterations"] == 2
    assert info["response_estimator"] == "probe" and info["probes"] == 2
    assert np.all(np.isfinite(r.arrays["f_mf_err"][1:])) and np.all(r.arrays["f_mf_err"][1:] > 0)
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(tiny(**base, **{"model.residual": True}))
    assert "dmft_response_estimator" in "\n".join(e.value.problems)


def test_probe_error_bars_are_calibrated():
    """The batch error bars of probe solves include the probe noise (each batch uses its own samples'
    directions): over 12 pairs of independent solves (different seeds: noise and directions), the
    pooled chi^2 of f, sum (f_a - f_b)^2 / sum (err_a^2 + err_b^2), is near 1, and so is mean z^2
    (above 1 by the tails of a variance estimated from 8 batches: about 14/12 for the sum of two).
    Measured: these 12 pairs chi^2 1.26, mean z^2 1.39; three sets of 16 pairs chi^2 1.33, 0.91, 1.05
    (1600 samples), mean z^2 1.57, 1.19, 1.26; the exact tangents on the same problem 1.07 and 1.26.
    Errors too small by sqrt(2) would give chi^2 near 2."""
    rng = np.random.default_rng(13)
    X, y = rng.standard_normal((3, 5)), rng.choice([-1.0, 1.0], 3)
    kw = dict(L=2, gamma0=1.0, dt=0.25, T=10, n_samples=800, error_batches=8, workers=1,
              response_estimator="probe")
    runs = [solve_dmft(X, y, seed=2000 + s, **kw) for s in range(24)]
    assert all(r.converged for r in runs)
    d = np.stack([a.f[1:] - b.f[1:] for a, b in zip(runs[::2], runs[1::2])])
    v = np.stack([a.f_err[1:] ** 2 + b.f_err[1:] ** 2 for a, b in zip(runs[::2], runs[1::2])])
    chi2 = np.sum(d ** 2) / np.sum(v)
    assert 0.6 <= chi2 <= 1.7, chi2
    assert 0.6 <= np.mean(d ** 2 / v) <= 1.9
