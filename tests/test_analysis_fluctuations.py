"""Seed fluctuations: variance errors, N*Var collapse, Var ~ N^-gamma."""

import math

import numpy as np
import pytest

from meanfield.analysis import (
    collapse_chi2,
    fit_variance_scaling,
    seed_stats,
    variance_scaling,
    variance_stderr,
)

WIDTHS = [8, 16, 32, 64, 128, 256, 512]


def test_variance_of_mean_of_n_iid_draws_has_exponent_minus_one():
    # q_N = mean of N iid exponential draws (skewed, not Gaussian), S seeds per N
    rng = np.random.default_rng(0)
    S = 200
    samples = [rng.exponential(size=(S, n)).mean(axis=1) for n in WIDTHS]
    sc = variance_scaling(WIDTHS, samples)
    for weighted in (True, False):
        f = fit_variance_scaling(sc, weighted=weighted)
        assert abs(f.slope - (-1.0)) < 0.15
        assert abs(f.slope - (-1.0)) < 3 * f.slope_se + 0.02  # error bar is honest
    # and the collapse: N * Var = Var(Exp(1)) = 1, with the exact error of
    # N s^2 for the mean of N Exp(1) draws: kappa4 = 6 / N^3, sigma^2 = 1 / N
    n = np.array(WIDTHS)
    exact_se = np.sqrt(6 / (n * S) + 2 / (S - 1))
    assert np.all(np.abs(sc.scaled - 1.0) < 4 * exact_se)
    # the reported errors estimate it (within the scatter of 7 estimates)
    assert np.mean(sc.scaled_se) == pytest.approx(np.mean(exact_se), rel=0.25)


def test_collapse_of_time_dependent_fluctuations():
    # q_N(t) = m(t) + sigma(t) xi / sqrt(N) + correlated-in-time noise: N*Var
    # collapses onto sigma(t)^2; a wrong scaling (N^-1/2) does not collapse.
    rng = np.random.default_rng(1)
    t = np.linspace(0, 3, 25)
    sigma = 0.5 + np.sin(t) ** 2
    S = 300

    def draw(n, power):
        xi = rng.standard_normal((S, 1)) * np.cos(t) + rng.standard_normal((S, 1)) * np.sin(t)
        return np.exp(-t) + sigma * xi / n**power

    good = variance_scaling(WIDTHS, [draw(n, 0.5) for n in WIDTHS])
    mean, chi2, dof = collapse_chi2(good)
    assert mean.shape == t.shape and dof == len(WIDTHS) - 1
    assert np.allclose(mean, sigma**2, rtol=0.1)
    # chi2_6 has 99.9% quantile 22.5; 25 correlated time points, allow one miss
    assert np.sum(chi2 > 22.5) <= 1
    f = fit_variance_scaling(good)
    assert f.slope.shape == t.shape
    assert np.all(np.abs(f.slope + 1.0) < 4 * f.slope_se + 0.05)

    bad = variance_scaling(WIDTHS, [draw(n, 0.25) for n in WIDTHS])
    _, chi2_bad, _ = collapse_chi2(bad)
    assert np.all(chi2_bad > 100)
    assert np.all(np.abs(fit_variance_scaling(bad).slope + 0.5) < 0.1)


@pytest.mark.parametrize("dist", ["normal", "exponential"])
def test_variance_standard_errors_are_calibrated(dist):
    # Var(s^2) for S seeds is kappa4/S + 2 sigma^4/(S-1): 2/(S-1) for N(0,1),
    # (9 - (S-3)/(S-1))/S for Exp(1). The mean squared 'analytic' error over
    # 2000 experiments must be unbiased (its own Monte-Carlo error is ~3% for
    # normal, ~7% for exponential data); the bootstrap is ~10-15% low at S=40
    # (measured); 'normal' theory is right only for Gaussian data.
    rng = np.random.default_rng(2)
    S, reps = 40, 2000
    if dist == "normal":
        data, true = rng.standard_normal((reps, S)), 2 / (S - 1)
    else:
        data, true = rng.exponential(size=(reps, S)), (9 - (S - 3) / (S - 1)) / S
    tol_setup = 0.1 if dist == "normal" else 0.2  # heavy tails: the spread of s^2 is noisy
    assert data.var(axis=1, ddof=1).var() == pytest.approx(true, rel=tol_setup)  # the formula
    analytic = (variance_stderr(data, axis=1, method="analytic") ** 2).mean()
    normal = (variance_stderr(data, axis=1, method="normal") ** 2).mean()
    boot = (variance_stderr(data, axis=1, method="bootstrap", n_boot=200) ** 2).mean()
    assert analytic == pytest.approx(true, rel=0.15 if dist == "exponential" else 0.08)
    assert 0.75 * true < boot < 1.05 * true
    if dist == "normal":
        assert normal == pytest.approx(true, rel=0.1)  # s^4 is biased up by 1 + 2/(S-1)
    else:
        assert normal < 0.4 * true


def test_seed_stats_shapes_and_values():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((50, 7, 3))
    st = seed_stats(q)
    assert st.mean.shape == st.var.shape == st.sem.shape == st.var_se.shape == (7, 3)
    assert st.n_seeds == 50
    np.testing.assert_allclose(st.sem, q.std(axis=0, ddof=1) / math.sqrt(50))
    st_t = seed_stats(np.moveaxis(q, 0, 2), axis=2)
    np.testing.assert_allclose(st_t.var, st.var)
    with pytest.raises(ValueError):
        seed_stats(q[:1])
