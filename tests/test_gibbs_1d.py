r"""The one-dimensional nonlinear Gibbs fixed point (meanfield_solvers.gibbs.one_dim).

* linear units: the solver against the closed form of meanfield_solvers.gibbs.linear_gaussian (also at
  alpha = 2, where h = m(c/alpha) w: this pins the alpha factor of the self-consistency equation);
* grid independence (node count, window) and the built-in refinement check;
* the self-consistency residual, recomputed independently, and failures reported, not silent;
* erf units: the fixed point against a particle simulation of the mean-field Langevin SDE built from
  the package's own pieces (TwoLayer("erf", 1).risk_velocity on a GaussianPopulation, numba backend,
  decay Drift, Noise(sqrt(2 tau)), euler_maruyama).

Particle errors. 4000 particles = 8 independent systems of 500, started from N(0, 0.25 I) (not from
the Gibbs law), time averages over t in [10, 44] after burn-in. The Monte Carlo error is the
between-system standard error (particles of one system interact, so the iid formula is wrong). The
O(dt) Euler-Maruyama bias is estimated by a second run at twice the step: for a bias linear in dt,
bias(dt) ~ X(2 dt) - X(dt). The O(1/n) finite-width bias is ~ tau/n = 2e-4 (the linear oracle's
constant, finite_n_expansion, is of that size), below the Monte Carlo error. Measured (this seed,
dt = 0.05; oracle in brackets; se = between-system standard error): R 0.37067 (0.36914, se 6.5e-4),
E[w^2] 0.5318 (0.5302, se 1.8e-3), E[aw] 0.5076 (0.5105, se 1.5e-3), E[a^2] 0.6959 (0.6987, se 1.3e-3);
dt = 0.1 differs from dt = 0.05 by 0.8e-3, 2.3e-3, 0.5e-3, 2.0e-3. Tolerances 0.004-0.010; the oracle
moves by 0.07-0.19 when lambda changes by 20%.
"""
import numpy as np
import pytest

from meanfield_solvers.gibbs import gibbs_1d, gibbs_1d_residual, stationary
from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.models.two_layer import GaussianPopulation, TwoLayer
from meanfield_solvers.particles import get_backend
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import Drift, Noise

KEYS = ("risk", "ew2", "eaw", "ea2")


@pytest.mark.parametrize("c,lam,tau", [(2.0, 1.0, 1.0), (0.5, 1.0, 0.1), (-1.5, 0.8, 0.3), (3.0, 1.0, 0.05)])
def test_linear_units_reproduce_the_linear_gaussian_fixed_point(c, lam, tau):
    s = gibbs_1d("linear", [1.0], [c], lam, tau)
    g = stationary(c, lam, tau)
    assert s.converged, s.message
    assert s.risk == pytest.approx(g.risk, abs=1e-10)
    assert s.eaw == pytest.approx(g.q, abs=1e-10)
    assert s.ea2 == pytest.approx(g.S[0, 0], abs=1e-10)
    assert s.ew2 == pytest.approx(g.S[1, 1], abs=1e-10)
    assert s.free_energy == pytest.approx(g.free_energy, abs=1e-10)
    # h(w) = m* w and a | w ~ N(m* w / lam, tau / lam)
    np.testing.assert_allclose(s.h, g.m * s.w, atol=1e-10)


def test_alpha_enters_as_T_over_alpha():
    """Linear, alpha = 2: h = k w with k + tau k/(lam^2 - k^2) = c/alpha, i.e. the linear fixed point of
    the teacher c/alpha; then E[aw] = q(c/alpha) and R = alpha^2 R(c/alpha). An alpha^2 in place of
    alpha in the self-consistency equation would break both."""
    c, lam, tau, alpha = 2.5, 1.0, 0.2, 2.0
    s = gibbs_1d("linear", [1.0], [c], lam, tau, alpha=alpha)
    g = stationary(c / alpha, lam, tau)
    assert s.converged, s.message
    assert s.eaw == pytest.approx(g.q, abs=1e-10)
    assert s.risk == pytest.approx(alpha ** 2 * g.risk, abs=1e-10)


@pytest.mark.parametrize("act,tw,tc,lam,tau", [("erf", [2.0], [1.5], 0.5, 0.1),
                                                ("erf", [1.5, -0.7], [2.0, 1.0], 0.3, 0.02),
                                                ("relu", [1.0, -0.5], [1.0, 0.7], 1.0, 0.1)])
def test_grid_independence(act, tw, tc, lam, tau):
    coarse = gibbs_1d(act, tw, tc, lam, tau, n=40, refine=0)
    fine = gibbs_1d(act, tw, tc, lam, tau, n=160, refine=0)
    wide = gibbs_1d(act, tw, tc, lam, tau, n=160, refine=0, half_width=3 * fine.half_width)
    auto = gibbs_1d(act, tw, tc, lam, tau)  # built-in check
    assert auto.converged and auto.grid_error < 1e-8, auto.message
    for other in (coarse, wide, auto):
        for k in KEYS + ("free_energy",):
            assert getattr(other, k) == pytest.approx(getattr(fine, k), abs=1e-8), k
    # the density is normalised and the tails are resolved
    assert fine.prob.sum() == pytest.approx(1.0, abs=1e-12)
    assert fine.density[[0, -1]].max() < 1e-15 * fine.density.max()


def test_self_consistency_residual_and_reported_failures():
    s = gibbs_1d("erf", [1.5, -0.7], [2.0, 1.0], 0.3, 0.02, tol=1e-11)
    assert s.converged, s.message
    assert s.residual < 1e-11
    assert gibbs_1d_residual(s) < 1e-11  # recomputed from scratch (kernels, T, rho(h))
    # the check can fail: a slightly wrong h has a residual of its size
    s_bad = gibbs_1d("erf", [1.5, -0.7], [2.0, 1.0], 0.3, 0.02, tol=1e-11)
    s_bad.h = s_bad.h * (1 + 1e-6)
    assert gibbs_1d_residual(s_bad) > 1e-8
    # not converged is reported, never silent
    cut = gibbs_1d("erf", [1.5, -0.7], [2.0, 1.0], 0.3, 0.02, max_iter=1)
    assert not cut.converged and "residual" in cut.message
    narrow = gibbs_1d("linear", [1.0], [2.0], 1.0, 1.0, half_width=1.0, max_widen=0)
    assert not narrow.converged and "window" in narrow.message
    with pytest.raises(ValueError):
        gibbs_1d("erf", [1.0], [1.0], 0.0, 0.1)


# ----------------------------------------------------------------------------- particles
C, V, LAM, TAU = 1.5, 2.0, 0.5, 0.1


def _simulate(dt, t_end=44.0, burn=10.0, replicas=8, n=500, seed=1, every=5):
    """Time averages of (R, E[w^2], E[aw], E[a^2]) per system, shape (replicas, 4)."""
    model, be = TwoLayer("erf", 1), get_backend("numba")
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), np.array([[V]]), np.array([[C]]), "erf")
    terms = [Drift(lambda th, m: model.risk_velocity(be, th, pop, m)[1]),  # -grad Psi
             Drift(lambda th, m: -LAM * th), Noise(np.sqrt(2 * TAU))]
    rngs = tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(replicas))
    state = ParticleState(0.5 * np.stack([g.standard_normal((n, 2)) for g in rngs]), rng=rngs)
    em = get_integrator("euler_maruyama")
    k0, acc = int(round(burn / dt)), []
    for k in range(1, int(round(t_end / dt)) + 1):
        state = em.step(terms, state, dt)
        if k >= k0 and (k - k0) % every == 0:
            th = state.theta
            r = np.asarray(model.risk_velocity(be, th, pop, None, velocity=False)[0]) * np.ones(replicas)
            acc.append(np.stack([r, (th[..., 1] ** 2).mean(-1), (th[..., 0] * th[..., 1]).mean(-1),
                                 (th[..., 0] ** 2).mean(-1)], -1))
    return np.mean(acc, axis=0)


def test_erf_fixed_point_matches_a_particle_simulation():
    s = gibbs_1d("erf", [V], [C], LAM, TAU)
    assert s.converged, s.message
    star = np.array([getattr(s, k) for k in KEYS])
    x1, x2 = _simulate(0.05), _simulate(0.1)
    m1, m2 = x1.mean(0), x2.mean(0)
    se1 = x1.std(0, ddof=1) / np.sqrt(len(x1))
    dt_bias = np.abs(m2 - m1)  # ~ |bias(0.05)| for a bias linear in dt (plus noise: conservative)
    tol = 4 * se1 + dt_bias + 2 * TAU / 500
    assert np.all(np.abs(m1 - star) < tol), (m1, star, se1, dt_bias)
    # the test has teeth: the oracle at a 20% different decay is outside the tolerance
    other = gibbs_1d("erf", [V], [C], 1.2 * LAM, TAU)
    moved = np.abs(np.array([getattr(other, k) for k in KEYS]) - star)
    assert np.all(moved > tol), (moved, tol)
