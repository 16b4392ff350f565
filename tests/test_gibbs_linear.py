r"""The linear Gaussian oracle of mean-field Langevin dynamics (meanfield_solvers.gibbs.linear_gaussian)
against direct particle simulations and independent derivations.

Problem: sigma(z) = z, d = 1, x ~ N(0, 1), y = c x, population square loss, alpha = Lambda = 1,
weight decay lam, temperature tau. Particle SDE: d theta = [m J theta - lam theta] dt + sqrt(2 tau) dB,
m = c - q, q = E[a w].

Particles are stepped with the package's own pieces: the drift -grad Psi is
``TwoLayer("linear", 1).risk_velocity`` (checked below to equal the GaussianPopulation closed form
to round-off), weight decay a second ``Drift``, ``Noise(sqrt(2 tau))``, ``euler_maruyama``.

Parameters (c, lam, tau) = (2, 1, 1): m* = 0.689, q* = 1.311, so the network learns (c > lam) but
stays away from the slow-mixing region |m*| ~ lam. There the mean of the law, every non-Gaussian
perturbation and each particle's a + w relax at rate lam - |m*| (0.31 here, -> 0 as |m*| -> lam;
e.g. 0.012 at c = 3, tau = 0.05), so burn-in and the correlation time of time averages would
blow up; the covariance modes here decay at rates 2.0, 2.5, 5.3 (relaxation_rates).

Monte Carlo errors are between-replica standard errors (independent systems), never the iid
formula: the particles of one system interact through q, so their errors are correlated.
"""
import numpy as np
import pytest
from scipy import integrate, optimize

from meanfield_solvers.gibbs import (
    covariance_flow,
    covariance_velocity,
    dissipation,
    euler_maruyama_covariance,
    finite_n_expansion,
    finite_n_risk,
    free_energy,
    free_energy_gradient,
    gibbs_covariance,
    relaxation_rates,
    stationary,
)
from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.models.base import Samples
from meanfield_solvers.models.two_layer import GaussianPopulation, TwoLayer
from meanfield_solvers.particles.backends import NumpyBackend
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import Drift, Noise

C, LAM, TAU = 2.0, 1.0, 1.0
S0 = np.array([[0.25, -0.2], [-0.2, 2.0]])  # anisotropic, q(0) < 0: every mode of the ODE is excited
MODEL = TwoLayer("linear", 1)
BE = NumpyBackend()
EM = get_integrator("euler_maruyama")
IDX = ([0, 1, 0], [0, 1, 1])  # (S11, S22, S12)


def _design(c):
    r"""One input point x = 1 with target y = c. For linear units in d = 1 every expectation over x
    in the risk and the velocity is a multiple of E[x^2] (R = (c - q)^2 E[x^2]/2,
    E[r sigma(w x)] = (c - q) w E[x^2], E[r sigma'(w x) x] = (c - q) E[x^2]); this design has mean
    x^2 = 1 = E[x^2] for x ~ N(0, 1), so it gives the population risk and drift exactly at O(N)
    cost (the GaussianPopulation path is O(N^2) pairwise: 2.8 s per velocity at N = 20000)."""
    return Samples(np.array([[1.0]]), np.array([c]), "square")


def _terms(c, lam, noise):
    data = _design(c)

    def risk_drift(theta, mass):  # -grad Psi(theta_i; mu_N) = m J theta_i, from the model
        return MODEL.risk_velocity(BE, theta, data, mass)[1]

    def decay(theta, mass):
        return -lam * theta

    return [Drift(risk_drift), Drift(decay), noise]


def _gaussian_start(S, shape, rngs):
    """Centred Gaussian particles of covariance S, shape (R, n, 2), replica r from rngs[r]."""
    L = np.linalg.cholesky(S)
    return np.stack([g.standard_normal(shape[1:]) for g in rngs]) @ L.T


def _mean_field_run(c, lam, tau, dt, record, replicas=16, n=1250, seed=0, noise_scale=None,
                    window=None, every=10, integrator=None):
    """R independent systems of n particles (R n = 20000) from N(0, S0).

    Returns per-replica second moments (len(record), R, 2, 2) at the times ``record`` and, with
    ``window=(t0, t1)``, their time averages over the window (R, 2, 2) and per-replica averages of
    the conditional-law statistics of a | w: (slope - m_hat/lam, residual variance), (R, 2).
    """
    rngs = tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(replicas))
    g = np.sqrt(2 * tau) if noise_scale is None else noise_scale
    terms = _terms(c, lam, Noise(g))
    state = ParticleState(_gaussian_start(S0, (replicas, n, 2), rngs), rng=rngs)
    marks = {int(round(t / dt)): i for i, t in enumerate(record)}
    n_end = max(list(marks) + ([int(round(window[1] / dt))] if window else []))
    n0 = int(round(window[0] / dt)) if window else n_end + 1
    snaps = np.empty((len(record), replicas, 2, 2))
    avg = np.zeros((replicas, 2, 2))
    cond = np.zeros((replicas, 2))
    count = 0
    for k in range(1, n_end + 1):
        state = (integrator or EM).step(terms, state, dt)
        th = state.theta
        if k in marks:
            snaps[marks[k]] = np.einsum("rni,rnj->rij", th, th) / n
        if k >= n0 and (k - n0) % every == 0:
            M2 = np.einsum("rni,rnj->rij", th, th) / n
            avg += M2
            slope = M2[:, 0, 1] / M2[:, 1, 1]
            cond[:, 0] += slope - (c - M2[:, 0, 1]) / lam
            cond[:, 1] += M2[:, 0, 0] - slope * M2[:, 0, 1]
            count += 1
    return snaps, (avg / max(count, 1)), cond / max(count, 1)


def _z(samples, target):
    """(mean - target) / between-replica standard error, over axis 0."""
    samples = np.asarray(samples)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    return (samples.mean(axis=0) - target) / se, se


# ----------------------------------------------------------------------------- the drift
def test_one_point_design_gives_the_population_drift_and_psi_gradient_exactly():
    """The particle drift used below equals the closed-form population velocity (GaussianPopulation,
    teacher y = c x) and the hand derivation -grad Psi = m J theta, m = c - E[a w], to round-off."""
    rng = np.random.default_rng(3)
    theta = rng.standard_normal((2, 300, 2))
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), np.array([[1.0]]), np.array([[C]]), "linear")
    r_pop, v_pop = MODEL.risk_velocity(BE, theta, pop)
    r_two, v_two = MODEL.risk_velocity(BE, theta, _design(C))
    m = C - np.mean(theta[..., 0] * theta[..., 1], axis=-1)
    assert np.allclose(v_two, v_pop, rtol=0, atol=1e-13)
    assert np.allclose(v_two, m[:, None, None] * theta[..., ::-1], rtol=0, atol=1e-13)
    assert np.allclose(r_two, 0.5 * m ** 2, rtol=1e-14) and np.allclose(r_pop, r_two, rtol=1e-13)


# ----------------------------------------------------------------------------- covariance ODE
def test_covariance_ode_matches_particles_and_rejects_a_wrong_temperature():
    """M = 20000 particles (16 replicas of 1250), Euler-Maruyama dt = 0.005, against the ODE at
    t = 0.25, 0.5, 1, 2 (every entry within 4 replica standard errors; ~0.3-1 % relative).

    The simulation's exact target is the Euler-Maruyama covariance map (infinite particles); it is
    within 0.4 % of the ODE here (weak order 1, next test), well inside the tolerance, and the
    particles are checked against both. Negative control: the same run with noise sqrt(tau)
    (the classic factor-2 temperature bug) is rejected by the same criterion."""
    dt, times = 0.005, [0.25, 0.5, 1.0, 2.0]
    snaps, _, _ = _mean_field_run(C, LAM, TAU, dt, times, seed=1)
    ode = covariance_flow(S0, C, LAM, TAU, times)
    em = euler_maruyama_covariance(S0, C, LAM, TAU, dt, int(round(times[-1] / dt)))
    em = em[[int(round(t / dt)) for t in times]]
    for i in range(len(times)):
        z_ode, se = _z(snaps[i], ode[i])
        z_em, _ = _z(snaps[i], em[i])
        assert np.all(np.abs(z_ode[IDX]) < 4), (times[i], z_ode[IDX], se[IDX])
        assert np.all(np.abs(z_em[IDX]) < 4), (times[i], z_em[IDX])
        assert np.all(se[IDX] < 0.012 * np.abs(ode[i][IDX]).max())  # the check has resolution
        # the discretisation bias is a fraction of the Monte Carlo error at this dt
        assert np.all(np.abs(em[i] - ode[i])[IDX] < se[IDX])
    wrong, _, _ = _mean_field_run(C, LAM, TAU, dt, times[-1:], seed=1, noise_scale=np.sqrt(TAU))
    z_wrong, _ = _z(wrong[0], ode[-1])
    assert np.max(np.abs(z_wrong[IDX])) > 10


def test_euler_maruyama_covariance_converges_to_the_ode_at_order_one():
    """Deterministic: the infinite-particle EM covariance map approaches the ODE like dt (weak
    order 1) at t = 2 and at stationarity (the EM stationary bias of a frozen mode is +gamma dt/2)."""
    dts = [0.02, 0.01, 0.005]
    exact = covariance_flow(S0, C, LAM, TAU, 2.0)
    errs = [np.abs(euler_maruyama_covariance(S0, C, LAM, TAU, dt, int(round(2.0 / dt)))[-1] - exact).max()
            for dt in dts]
    slopes = np.diff(np.log(errs)) / np.diff(np.log(dts))
    assert np.all(np.abs(slopes - 1) < 0.05), slopes
    star = stationary(C, LAM, TAU).S
    bias = [np.abs(euler_maruyama_covariance(star, C, LAM, TAU, dt, int(round(40 / dt)))[-1] - star).max()
            for dt in dts]
    assert np.all(np.abs(np.diff(np.log(bias)) / np.diff(np.log(dts)) - 1) < 0.05), bias


def test_covariance_flow_basics():
    """S* is a rest point of the flow (stays within 1e-10 to t = 20) and of the matrix form
    AS + SA^T + 2 tau I; without decay S11 - S22 (the balance E[a^2] - E[w^2]) is conserved, with or
    without noise (both diagonal entries gain the same 2 m p + 2 tau); with decay it decays exactly
    as exp(-2 lam t)."""
    g = stationary(C, LAM, TAU)
    assert np.abs(covariance_flow(g.S, C, LAM, TAU, 20.0) - g.S).max() < 1e-10
    assert np.abs(covariance_velocity(g.S, C, LAM, TAU)).max() < 1e-13
    ts = np.linspace(0, 3, 7)
    S = covariance_flow(S0, C, 0.0, 0.0, ts)
    assert np.allclose(S[:, 0, 0] - S[:, 1, 1], S0[0, 0] - S0[1, 1], rtol=0, atol=1e-9)
    S = covariance_flow(S0, C, 0.0, 0.5, ts)
    assert np.allclose(S[:, 0, 0] - S[:, 1, 1], S0[0, 0] - S0[1, 1], rtol=0, atol=1e-9)
    # with decay the difference decays exactly as exp(-2 lam t)
    S = covariance_flow(S0, C, LAM, TAU, ts)
    assert np.allclose(S[:, 0, 0] - S[:, 1, 1], (S0[0, 0] - S0[1, 1]) * np.exp(-2 * LAM * ts), rtol=1e-8)


# ----------------------------------------------------------------------------- fixed point
@pytest.fixture(scope="module")
def long_run():
    """20000 particles from N(0, S0), dt = 0.005, time-averaged over t in [6, 10] (the covariance
    transient, slowest rate 2.0, is below 1e-5 by t = 6)."""
    _, avg, cond = _mean_field_run(C, LAM, TAU, 0.005, [], seed=2, window=(6.0, 10.0))
    return avg, cond


def test_long_run_particles_reach_the_stationary_covariance(long_run):
    """Time-averaged particle covariance against stationary(): every entry within 4 replica SE
    (SE ~ 0.3 % of S*). The EM stationary bias at dt = 0.005 (exact, from the EM covariance map:
    +0.13 % on the diagonal) is below one SE, so the comparison with the dt -> 0 fixed point is
    fair; the particles are also within 4 SE of that EM fixed point, their exact target. The risk
    (c - S12)^2 / 2 is checked against R* = m*^2 / 2 the same way."""
    avg, _ = long_run
    g = stationary(C, LAM, TAU)
    z, se = _z(avg, g.S)
    assert np.all(np.abs(z[IDX]) < 4), (z[IDX], avg.mean(0)[IDX], g.S[IDX])
    em_star = euler_maruyama_covariance(g.S, C, LAM, TAU, 0.005, 8000)[-1]
    assert np.all(np.abs(em_star - g.S)[IDX] < se[IDX])
    z_em, _ = _z(avg, em_star)
    assert np.all(np.abs(z_em[IDX]) < 4), z_em[IDX]
    z_risk, _ = _z(0.5 * (C - avg[:, 0, 1]) ** 2, g.risk)
    assert abs(z_risk) < 4
    # the check resolves a factor-2 temperature error in the fixed point (the sqrt(tau) noise bug)
    z_half, _ = _z(avg, stationary(C, LAM, TAU / 2).S)
    assert np.max(np.abs(z_half[IDX])) > 20


def test_leimkuhler_matthews_reaches_the_exact_gibbs_law_at_a_large_step():
    """At the fixed point the particles follow a linear SDE with constant symmetric drift matrix
    (the Hessian of Ψ + λ|θ|²/2), i.e. independent Ornstein–Uhlenbeck modes, whose stationary law
    the Leimkuhler–Matthews scheme has exactly (meanfield_solvers/integrators/leimkuhler_matthews.py);
    the self-consistency equations are then those of the flow, so its particles reach the dt -> 0
    Gibbs law at dt = 0.1, where Euler-Maruyama's is off by 11 SE (and sits at its own exact
    fixed point, from the EM covariance map)."""
    from meanfield_solvers.integrators import get_integrator

    g = stationary(C, LAM, TAU)
    dt = 0.1
    _, lm, _ = _mean_field_run(C, LAM, TAU, dt, [], seed=4, window=(6.0, 12.0), every=1,
                               integrator=get_integrator("leimkuhler_matthews"))
    _, em, _ = _mean_field_run(C, LAM, TAU, dt, [], seed=4, window=(6.0, 12.0), every=1)
    z, _ = _z(lm, g.S)
    assert np.all(np.abs(z[IDX]) < 4), (z[IDX], lm.mean(0)[IDX], g.S[IDX])
    z_em, _ = _z(em, g.S)
    assert np.max(np.abs(z_em[IDX])) > 8, z_em[IDX]  # measured 11 SE on the diagonal
    z_own, _ = _z(em, euler_maruyama_covariance(g.S, C, LAM, TAU, dt, 400)[-1])
    assert np.all(np.abs(z_own[IDX]) < 4), z_own[IDX]


def test_stationary_solves_the_scalar_equation_and_matches_the_ode_limit():
    """For parameters across the regimes (c below/above/at lam, small/large tau, negative c):
    |m*| < lam, m* + tau m*/(lam^2 - m*^2) = c to 1e-13, q* = c - m* = S*12, and the ODE from two
    different starts ends at S* (after 25 / slowest covariance rate)."""
    for c, lam, tau in [(2.0, 1.0, 1.0), (0.5, 1.0, 0.2), (1.0, 1.0, 0.5), (-3.0, 1.5, 0.3),
                        (3.0, 1.0, 0.05), (0.0, 0.7, 0.4)]:
        g = stationary(c, lam, tau)
        assert abs(g.m) < lam
        assert abs(g.m + tau * g.m / (lam ** 2 - g.m ** 2) - c) < 1e-13 * max(1, abs(c))
        assert abs(g.q - (c - g.m)) < 1e-13 * max(1, abs(c)) and g.S[0, 1] == g.q
        assert np.isclose(g.risk, 0.5 * g.m ** 2) and np.sign(g.q) == np.sign(c)
        slow = relaxation_rates(c, lam, tau).covariance.real.min()
        for start in (S0, np.diag([3.0, 0.1])):
            end = covariance_flow(start, c, lam, tau, 25.0 / slow)
            assert np.abs(end - g.S).max() < 1e-8 * max(1.0, np.abs(g.S).max()), (c, lam, tau)


def test_relaxation_rates_predict_the_ode_convergence():
    """The distance |S(t) - S*| of the ODE decays at the slowest linearised covariance rate
    (log-slope over t in [6, 8], within 1 %)."""
    rates = relaxation_rates(C, LAM, TAU)
    slow = rates.covariance.real.min()
    assert np.all(np.abs(rates.covariance.imag) < 1e-12)  # real spectrum here
    ts = np.array([6.0, 8.0])
    d = [np.abs(S - stationary(C, LAM, TAU).S).max() for S in covariance_flow(S0, C, LAM, TAU, ts)]
    observed = -np.diff(np.log(d))[0] / np.diff(ts)[0]
    assert abs(observed / slow - 1) < 0.01, (observed, slow)
    assert np.isclose(rates.mean[0], LAM - abs(stationary(C, LAM, TAU).m))


def test_zero_temperature_limit_is_soft_thresholding():
    """tau -> 0: q* -> sign(c) (|c| - lam)_+ (the minimiser of (c-q)^2/2 + lam |q|); at |c| = lam,
    q* ~ sign(c) sqrt(tau/2). Also exercises the root bracketing with m* within ~1e-9 of lam."""
    lam, tau = 1.0, 1e-9
    for c in (-3.0, -0.5, 0.25, 0.9, 1.1, 4.0):
        g = stationary(c, lam, tau)
        assert abs(g.q - np.sign(c) * max(abs(c) - lam, 0.0)) < 1e-6, (c, g.q)
        assert abs(g.m) < lam and np.all(np.linalg.eigvalsh(g.S) > 0)
    assert np.isclose(stationary(1.0, lam, tau).q, np.sqrt(tau / 2), rtol=1e-3)
    # small c at moderate tau: q* = tau c / (lam^2 - c^2) + O(tau^2), not 0 (no threshold at tau > 0)
    g = stationary(0.3, 1.0, 1e-4)
    assert np.isclose(g.q, 1e-4 * 0.3 / (1 - 0.09), rtol=1e-3)


# ----------------------------------------------------------------------------- free energy
def _chol_to_cov(v):
    L = np.array([[np.exp(v[0]), 0.0], [v[1], np.exp(v[2])]])
    return L @ L.T


def test_free_energy_decreases_along_the_flow_with_the_stated_dissipation():
    """Along the ODE from several starts: F never increases (diffs <= 1e-12), strictly decreases
    while the dissipation is above 1e-9, and dF/dt (central differences of F(S(t))) equals
    -4 tr(G S G) to 1e-5 relative (measured 6e-7: the O(h^2) of the differences)."""
    for c, lam, tau, start in [(C, LAM, TAU, S0), (0.5, 1.0, 0.2, np.diag([4.0, 0.05])),
                               (-3.0, 1.5, 0.3, np.array([[1.0, 0.9], [0.9, 1.0]])),
                               (1.0, 1.0, 0.5, 0.01 * np.eye(2))]:
        ts = np.linspace(0.0, 12.0, 1201)
        S = covariance_flow(start, c, lam, tau, ts)
        F = free_energy(S, c, lam, tau)
        diss = dissipation(S, c, lam, tau)
        dF = np.diff(F)
        assert np.all(dF <= 1e-12), dF.max()
        busy = (diss[:-1] > 1e-9) & (diss[1:] > 1e-9)
        assert busy.sum() > 100 and np.all(dF[busy] < 0)
        h = 1e-4
        for t in (0.3, 1.0, 3.0):
            Ss = covariance_flow(start, c, lam, tau, [t - h, t, t + h])
            Fs = free_energy(Ss, c, lam, tau)
            dFdt = (Fs[2] - Fs[0]) / (2 * h)
            assert np.isclose(dFdt, -dissipation(Ss[1], c, lam, tau), rtol=1e-5, atol=1e-12), (t, dFdt)
        g = stationary(c, lam, tau)
        assert F[-1] >= g.free_energy - 1e-12 and abs(F[-1] - g.free_energy) < 1e-8


def test_free_energy_is_minimised_at_the_stationary_covariance():
    """At S*: the analytic gradient G vanishes (1e-12) and so do central finite differences of F in
    (S11, S22, S12) (1e-7); away from S* the differences match (G11, G22, 2 G12); F(S*) is below F
    at 500 random covariances near and far; an unconstrained minimisation of F over Cholesky
    factors (BFGS, not using G) lands on S* (1e-6)."""
    g = stationary(C, LAM, TAU)

    def fd(S, h=1e-6):
        out = []
        for E in (np.array([[1, 0], [0, 0]]), np.array([[0, 0], [0, 1]]), np.array([[0, 1], [1, 0]])):
            out.append((free_energy(S + h * E, C, LAM, TAU) - free_energy(S - h * E, C, LAM, TAU)) / (2 * h))
        return np.array(out)

    assert np.abs(free_energy_gradient(g.S, C, LAM, TAU)).max() < 1e-12
    assert np.abs(fd(g.S)).max() < 1e-7
    S = np.array([[1.2, 0.4], [0.4, 0.9]])
    G = free_energy_gradient(S, C, LAM, TAU)
    assert np.allclose(fd(S), [G[0, 0], G[1, 1], 2 * G[0, 1]], rtol=1e-7, atol=1e-9)
    assert np.abs(G).max() > 0.1
    rng = np.random.default_rng(4)
    for scale in (0.01, 0.3, 2.0):
        L0 = np.linalg.cholesky(g.S)
        for _ in range(500 // 3):
            L = L0 + scale * rng.standard_normal((2, 2)) * np.tril(np.ones((2, 2)))
            assert free_energy(L @ L.T, C, LAM, TAU) >= g.free_energy
    res = optimize.minimize(lambda v: free_energy(_chol_to_cov(v), C, LAM, TAU), np.zeros(3),
                            method="BFGS", options={"gtol": 1e-11})
    assert np.abs(_chol_to_cov(res.x) - g.S).max() < 1e-6
    assert abs(res.fun - g.free_energy) < 1e-12


# ----------------------------------------------------------------------------- Gibbs conditional
def test_fixed_point_has_the_gibbs_conditional_law_of_a_given_w(long_run):
    r"""The Gibbs conditional of a given w (README, mean-field Langevin) as N -> infinity, derived for this case: h(w) = E[r sigma(w x)] = (c - q) w =
    m w, so a | w ~ N(m w / lam, tau / lam) (and w | a ~ N(m a / lam, tau / lam) by symmetry). For a
    centred Gaussian: E[a | w] = (S12/S22) w, Var[a | w] = S11 - S12^2/S22.

    Checked (i) on the long-time ODE solution (not on stationary(), which is built from the Gibbs
    form), with m = c - S12 read from the same S, for several parameter sets, to 1e-9; (ii) on
    stationary() itself; (iii) on the particles: per replica, the regression slope minus
    (c - q_hat)/lam and the residual variance, time-averaged, within 4 replica SE of 0 and tau/lam
    (finite-particle corrections are O(1/1250), EM's O(dt) ~ 0.3 %)."""
    for c, lam, tau in [(C, LAM, TAU), (0.5, 1.0, 0.2), (-3.0, 1.5, 0.3), (1.0, 2.0, 3.0)]:
        slow = relaxation_rates(c, lam, tau).covariance.real.min()
        for S in (covariance_flow(S0, c, lam, tau, 30.0 / slow), stationary(c, lam, tau).S):
            m = c - S[0, 1]
            assert abs(S[0, 1] / S[1, 1] - m / lam) < 1e-9
            assert abs(S[0, 0] - S[0, 1] ** 2 / S[1, 1] - tau / lam) < 1e-9
            assert abs(S[0, 1] / S[0, 0] - m / lam) < 1e-9  # w | a
    _, cond = long_run
    z_slope, se_slope = _z(cond[:, 0], 0.0)
    z_var, se_var = _z(cond[:, 1], TAU / LAM)
    assert abs(z_slope) < 4 and abs(z_var) < 4, (z_slope, z_var)
    assert se_slope < 0.01 and se_var < 0.01


# ----------------------------------------------------------------------------- finite N
def _radial_moments(c, lam, tau, n):
    r"""E_N[c - q], E_N[(c - q)^2] by an independent reduction of pi_N (no Hubbard-Stratonovich).

    Given w, U is quadratic in a: precision beta (lam I + w w^T / N), linear term beta c w, so
    a | w is Gaussian and a^T w | w has mean c r^2 / (lam + r^2/N), variance r^2 / (beta (lam + r^2/N)),
    r = |w|. With s = r^2 / N: E[c - q | s] = c lam / (lam + s),
    E[(c - q)^2 | s] = (c lam / (lam + s))^2 + tau s / (N (lam + s)); integrating a out and w over
    spheres leaves the density p(s) ~ s^(N/2 - 1) (lam + s)^(-1/2) exp(-(N / 2 tau)(lam s + c^2 lam/(lam + s))).
    """
    def logp(x):  # x = log s, density in x (Jacobian s)
        s = np.exp(x)
        return (n / 2) * x - 0.5 * np.log(lam + s) - (n / (2 * tau)) * (lam * s + c * c * lam / (lam + s))

    x0 = optimize.minimize_scalar(lambda x: -logp(x), bounds=(-20, 10), method="bounded").x
    ref = logp(x0)
    lo, hi = x0 - 12 - 60 / np.sqrt(n), x0 + 8 + 60 / np.sqrt(n)

    def avg(f):
        val = integrate.quad(lambda x: np.exp(logp(x) - ref) * f(np.exp(x)), lo, hi, points=[x0],
                             epsabs=0, epsrel=1e-13, limit=400)[0]
        return val

    Z = avg(lambda s: 1.0)
    e1 = avg(lambda s: c * lam / (lam + s)) / Z
    e2 = avg(lambda s: (c * lam / (lam + s)) ** 2 + tau * s / (n * (lam + s))) / Z
    return e1, e2


def test_finite_n_risk_matches_an_independent_reduction_and_brute_force():
    """The Hubbard-Stratonovich contour integral against (i) the radial reduction above for N = 1 ...
    64 and several parameter sets (1e-9 relative), (ii) brute-force 2-d quadrature of pi_1 at N = 1."""
    for c, lam, tau in [(C, LAM, TAU), (1.0, 1.0, 0.5), (0.5, 1.0, 0.2), (3.0, 1.0, 0.05), (-2.0, 1.5, 0.7)]:
        for n in (1, 2, 3, 8, 64):
            f = finite_n_risk(c, lam, tau, n)
            e1, e2 = _radial_moments(c, lam, tau, n)
            assert np.isclose(f.mean_residual, e1, rtol=1e-9, atol=1e-12), (c, lam, tau, n)
            assert np.isclose(f.mean_sq_residual, e2, rtol=1e-9), (c, lam, tau, n)
            assert np.isclose(f.risk, 0.5 * e2, rtol=1e-9) and f.var_q > 0
    # N = 1: pi_1(a, w) ~ exp(-beta [(c - a w)^2/2 + lam (a^2 + w^2)/2]) on a grid (trapezoid rule,
    # spectrally accurate for this smooth, fast-decaying integrand)
    x = np.linspace(-9, 9, 1801)
    a, w = np.meshgrid(x, x, indexing="ij")
    logp = -((C - a * w) ** 2 / 2 + LAM * (a * a + w * w) / 2) / TAU
    p = np.exp(logp - logp.max())
    f = finite_n_risk(C, LAM, TAU, 1)
    assert np.isclose((p * (C - a * w)).sum() / p.sum(), f.mean_residual, rtol=1e-9)
    assert np.isclose((p * (C - a * w) ** 2).sum() / p.sum(), f.mean_sq_residual, rtol=1e-9)


def test_finite_n_bias_has_the_derived_one_over_n_constant():
    """N (E_N[R] - R*), N (E_N[c - q] - m*) and N Var q, extrapolated from N = 1000 and 10000
    (X_N = b + b2/N), equal finite_n_expansion's constants to 1e-5 relative; and the constant is
    not trivially small: E_N[R] - R* ~ 0.7/N here."""
    for c, lam, tau in [(C, LAM, TAU), (0.5, 1.0, 0.2), (-3.0, 1.5, 0.3)]:
        g = stationary(c, lam, tau)
        ex = finite_n_expansion(c, lam, tau)
        n1, n2 = 1000, 10000
        f1, f2 = finite_n_risk(c, lam, tau, n1), finite_n_risk(c, lam, tau, n2)

        def extrap(x1, x2):
            return (n2 * x2 - n1 * x1) / (n2 - n1)

        b_risk = extrap(n1 * (f1.risk - g.risk), n2 * (f2.risk - g.risk))
        b_res = extrap(n1 * (f1.mean_residual - g.m), n2 * (f2.mean_residual - g.m))
        b_var = extrap(n1 * f1.var_q, n2 * f2.var_q)
        assert np.isclose(b_risk, ex.risk, rtol=1e-5), (b_risk, ex.risk)
        assert np.isclose(b_res, ex.residual, rtol=1e-5), (b_res, ex.residual)
        assert np.isclose(b_var, ex.var_q, rtol=1e-5), (b_var, ex.var_q)
    assert finite_n_expansion(C, LAM, TAU).risk > 0.5


class _Given(Noise):
    """A Noise whose next increment is set from outside (couples a coarse and a fine run)."""

    def __init__(self, diffusion):
        super().__init__(diffusion)
        self.dw = None

    def increment(self, state, dt):
        return self.dw.copy()  # the integrator scales it in place


@pytest.fixture(scope="module")
def finite_n_run():
    return _finite_n_coupled(seed=5)


def _finite_n_coupled(seed):
    """2000 replicas of N = 2 particles, started from the mean-field Gibbs law, EM at dt = 0.01 and
    0.005 on the same Brownian paths (coarse increments = sums of two fine ones), averages over
    t in [4, 16] every 0.05. Returns per-replica time averages for (coarse, fine): the risk
    (c - q_N)^2/2, and the standardised conditional residual z_i of a_i given the rest."""
    n, reps, dt, t0, t1, every = 2, 2000, 0.01, 4.0, 16.0, 5
    g = stationary(C, LAM, TAU)
    rng = np.random.default_rng(seed)
    theta0 = rng.standard_normal((reps, n, 2)) @ np.linalg.cholesky(g.S).T
    noise = _Given(np.sqrt(2 * TAU))
    terms = _terms(C, LAM, noise)
    states = [ParticleState(theta0.copy()), ParticleState(theta0.copy())]  # coarse, fine
    sums = np.zeros((2, 3, reps))
    count = 0
    for k in range(1, int(round(t1 / dt)) + 1):
        d1 = rng.standard_normal((reps, n, 2)) * np.sqrt(dt / 2)
        d2 = rng.standard_normal((reps, n, 2)) * np.sqrt(dt / 2)
        noise.dw = d1
        states[1] = EM.step(terms, states[1], dt / 2)
        noise.dw = d2
        states[1] = EM.step(terms, states[1], dt / 2)
        noise.dw = d1 + d2
        states[0] = EM.step(terms, states[0], dt)
        if k >= int(round(t0 / dt)) and k % every == 0:
            for j, st in enumerate(states):
                a, w = st.theta[..., 0], st.theta[..., 1]
                q = np.mean(a * w, axis=-1)
                # the finite-N Gibbs conditional, derived here: U is quadratic in a_i with precision
                # beta (lam + w_i^2/N) and linear coefficient beta (c - q_{-i}) w_i
                q_minus = q[:, None] - a * w / n
                prec = LAM + w * w / n
                zi = (a - (C - q_minus) * w / prec) * np.sqrt(prec / TAU)
                sums[j, 0] += 0.5 * (C - q) ** 2
                sums[j, 1] += zi.mean(-1)
                sums[j, 2] += (zi * zi).mean(-1)
            count += 1
    return sums / count


def test_finite_n_particles_match_the_exact_stationary_risk(finite_n_run):
    """N = 2 particles (2000 replicas): the Richardson-extrapolated (2 fine - coarse, removing EM's
    O(dt) bias) time-averaged risk is within 4 replica SE of finite_n_risk (SE ~ 0.4 % of it). The
    same numbers reject the mean-field R* and the first-order R* + b/N (by > 10 SE): the exact
    finite-N integral is needed at this N. The conditional residual of a_i | rest is standard
    normal (mean 0, variance 1 within 4 SE), the finite-N Gibbs conditional (derived above)."""
    coarse, fine = finite_n_run
    extrap = 2 * fine - coarse
    exact = finite_n_risk(C, LAM, TAU, 2).risk
    z, se = _z(extrap[0], exact)
    assert abs(z) < 4, (extrap[0].mean(), exact, se)
    assert se < 0.006 * exact
    g = stationary(C, LAM, TAU)
    assert abs(extrap[0].mean() - g.risk) > 10 * se
    assert abs(extrap[0].mean() - (g.risk + finite_n_expansion(C, LAM, TAU).risk / 2)) > 10 * se
    z_mean, _ = _z(extrap[1], 0.0)
    z_var, se_var = _z(extrap[2], 1.0)
    assert abs(z_mean) < 4 and abs(z_var) < 4, (z_mean, z_var, extrap[2].mean())
    assert se_var < 0.01


def test_inputs_are_validated():
    with pytest.raises(ValueError):
        stationary(1.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        stationary(1.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        gibbs_covariance(1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        covariance_flow(np.array([[1.0, 0.5], [0.0, 1.0]]), 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        covariance_flow(np.eye(2), 1.0, 1.0, 1.0, [1.0, 0.5])
    with pytest.raises(ValueError):
        finite_n_risk(1.0, 1.0, 1.0, 0)
    assert free_energy(np.diag([1.0, 0.0]), 1.0, 1.0, 1.0) == np.inf
