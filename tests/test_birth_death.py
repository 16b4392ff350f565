r"""Stochastic birth–death jumps (:class:`meanfield_solvers.terms.BirthDeath`, integrator
``birth_death``): reproducibility, fixed N and valid lineage, the one-step reaction in expectation,
agreement with weighted balanced WFR, scheme 2's neutral births, clipping and die-out.

Derivations (module docstring of :mod:`meanfield_solvers.terms.birth_death`):

* one step, scheme 1, centred and unclipped, pᵢ = κh|Ψᵢ − Ψ̄|, vᵢ = pᵢ(1 − pᵢ):
  E[Δμ(φ)] = −κh Cov_μ(φ, Ψ) − (1/N) Cov_μ(φ, v) + O(κh/N²): the reaction plus the bias of the
  random population size N' that the uniform control divides by (E[μ_new(φ)] = E[S'/N'] exactly);
* scheme 2 (kills replaced by prior births, each clone displacing a uniform particle):
  E[Δμ(φ)] = −κh Cov_μ(φ, Ψ) + κh μ((Ψ − Ψ̄)₊)(μ_b(φ) − μ(φ)) + O(κh/N) (the test uses the
  formula with its 1/N terms, written once in :func:`_predicted_change`);
* mean-field limit of scheme 1: balanced WFR, ∂_tμ = ∇·(μΛ∇Ψ) − κμ(Ψ − ∫Ψdμ).
"""
import warnings

import numpy as np
import pytest

from meanfield_solvers.integrators import UnsupportedTermError, get_integrator
from meanfield_solvers.models import GaussianPopulation, TwoLayer
from meanfield_solvers.particles import get_backend
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import BirthDeath, Drift, PopulationDiedOut, Reaction

BE = get_backend("numpy")
MODEL = TwoLayer("erf", 2)
# a two-neuron erf teacher in d = 2, population (closed-form) risk
POP = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), np.array([[1.5, 0.3], [-0.4, 1.2]]),
                         np.array([[1.0, -0.8]]), "erf")


def _drift():
    return Drift(lambda th, m: MODEL.risk_velocity(BE, th, POP, mass=m)[1])


def _prior(gen, n):
    """Full-support prior μ_b: a ~ N(0, 1), w ~ N((1, 1), I) (before zeroing a)."""
    return np.column_stack([gen.standard_normal(n), 1.0 + gen.standard_normal((n, 2))])


def _gens(seeds):
    return tuple(np.random.default_rng(s) for s in seeds)


def _run(theta0, gens, scheme, steps=8, kappa=3.0, h=0.1):
    kw = {} if scheme == 1 else dict(prior=_prior, zero_on_birth=0)
    terms = [_drift(), BirthDeath.from_model(MODEL, BE, POP, kappa, scheme=scheme, **kw)]
    st = ParticleState(theta0.copy(), rng=gens)
    integ = get_integrator("birth_death", transport="euler")
    for _ in range(steps):
        st = integ.step(terms, st, h)
    return st


@pytest.mark.parametrize("scheme", [1, 2])
def test_same_seed_same_bits_and_each_seed_its_own_stream(scheme):
    theta0 = MODEL.draw(np.random.default_rng(0), 3 * 24).reshape(3, 24, MODEL.p)
    a = _run(theta0, _gens([1, 2, 3]), scheme)
    b = _run(theta0, _gens([1, 2, 3]), scheme)
    assert a.step == 8 and a.jumps.killed.sum() > 0 and a.jumps.cloned.sum() > 0  # jumps happened
    assert a.theta.tobytes() == b.theta.tobytes() and np.array_equal(a.parent, b.parent)
    assert all(np.array_equal(getattr(a.jumps, k), getattr(b.jumps, k)) for k in ("killed", "cloned", "born"))
    # seed 1's path depends on its generator only: change the others, or run it alone
    c = _run(theta0, _gens([7, 2, 9]), scheme)
    alone = _run(theta0[1:2], _gens([2]), scheme)
    assert c.theta[1].tobytes() == a.theta[1].tobytes() and np.array_equal(c.parent[1], a.parent[1])
    assert alone.theta[0].tobytes() == a.theta[1].tobytes() and np.array_equal(alone.parent[0], a.parent[1])
    assert not np.array_equal(c.theta[0], a.theta[0])  # ... and the others did change


@pytest.mark.parametrize("scheme", [1, 2])
def test_population_stays_n_and_lineage_is_valid(scheme):
    """Without transport every particle must be a bitwise copy of the initial particle its parent
    names (or, scheme 2, a prior birth with a = 0); N never changes; the counts balance."""
    N, S = 30, 4
    theta0 = MODEL.draw(np.random.default_rng(5), S * N).reshape(S, N, MODEL.p)
    kw = {} if scheme == 1 else dict(prior=_prior, zero_on_birth=0)
    psi0 = MODEL.first_variation(BE, theta0, POP)
    bd = BirthDeath.from_model(MODEL, BE, POP, 2.0, scheme=scheme, **kw)
    zero = Drift(lambda th, m: np.zeros_like(th))
    integ = get_integrator("birth_death", transport="euler")
    st = ParticleState(theta0.copy(), rng=_gens(range(S)))
    h = 0.3 / (2.0 * np.abs(psi0 - psi0.mean(-1, keepdims=True)).max())
    for _ in range(25):
        st = integ.step([zero, bd], st, h)
        assert st.theta.shape == (S, N, MODEL.p) and st.mass is None and st.parent.shape == (S, N)
    par, j = st.parent, st.jumps
    assert par.min() >= (-1 if scheme == 2 else 0) and par.max() < N
    src = np.take_along_axis(theta0, np.maximum(par, 0)[..., None], axis=1)
    old = par >= 0
    assert np.array_equal(st.theta[old], src[old])  # clones are exact copies of their ancestor
    assert np.mean(par != np.arange(N)) > 0.3  # the lineage has really moved
    if scheme == 1:
        assert np.array_equal(j.killed + j.control_killed, j.cloned + j.control_cloned)
        assert j.born.sum() == 0
    else:
        assert np.array_equal(j.born, j.killed) and np.array_equal(j.control_killed, j.cloned)
        newborn = st.theta[par == -1]
        assert newborn.shape[0] > 0 and np.all(newborn[:, 0] == 0) and np.all(newborn[:, 1:] != 0)
    assert j.clipped.sum() == 0 and np.all(j.max_prob < 0.5)


def _predicted_change(scheme, f, dev, kh, N, prior_mean=None):
    """E[Δμ(φ)] of one jump step, to O(κh/N²) (module docstring): Ā/(1+P) + the two 1/N terms."""
    pp, pm = kh * np.clip(-dev, 0, None), kh * np.clip(dev, 0, None)  # clone, kill probabilities
    mu = np.mean
    if scheme == 1:
        abar, P, v = mu(f) + mu((pp - pm) * f), mu(pp - pm), pp + pm - (pp - pm) ** 2
    else:
        abar, P, v = mu(f) - mu(pm * f) + mu(pm) * prior_mean + mu(pp * f), mu(pp), pp * (1 - pp)
    return abar / (1 + P) - mu(f * v) / (N * (1 + P) ** 2) + abar * mu(v) / (N * (1 + P) ** 3) - mu(f)


@pytest.mark.parametrize("scheme", [1, 2])
def test_expected_one_step_change_is_the_reaction(scheme):
    """40 000 replicas of one jump step from the same 40 particles (Ψ from the model, largest
    probability 0.35), φ = w₀ + a·w₁. Measured with 12 × 40 000 replicas: scheme 1 −0.03828 ± 8e-5
    against −0.03828 predicted (the leading −κh Cov alone: −0.03818); scheme 2 −0.01449 ± 8e-5
    against −0.01447 (the prior's source is +0.024). Pooled z: 0.07 and −0.26."""
    N, R, kappa = 40, 40000, 1.0
    theta0 = MODEL.draw(np.random.default_rng(3), N)
    psi = MODEL.first_variation(BE, theta0[None], POP)[0]
    dev = psi - psi.mean()
    kh = 0.35 / np.abs(dev).max()  # largest probability 0.35
    phi = lambda th: th[..., 1] + th[..., 0] * th[..., 2]  # noqa: E731
    f = phi(theta0)
    kw = {} if scheme == 1 else dict(prior=_prior, zero_on_birth=0)
    bd = BirthDeath(lambda th, m: np.broadcast_to(psi, th.shape[:-1]), kappa, scheme=scheme, **kw)
    st = ParticleState(np.broadcast_to(theta0, (R, N, MODEL.p)).copy(), rng=np.random.default_rng(10 + scheme))
    change = phi(bd.jump(st, kh / kappa).theta).mean(-1) - f.mean()
    got, se = change.mean(), change.std(ddof=1) / np.sqrt(R)
    prior_mean = 1.0  # μ_b(φ) for a born particle (a = 0): E w₀ = 1
    want = _predicted_change(scheme, f, dev, kh, N, prior_mean)
    lead = -kh * np.mean(dev * (f - f.mean()))  # −κh Cov_μ(φ, Ψ)
    tol = 4 * se + 0.35 / N**2  # Monte Carlo + the O(κh/N²) remainder
    assert abs(got - want) < tol, (got, se, want, lead)
    # able to fail: no reaction, or twice the rate, is > 10 tolerances away
    assert abs(got) > 10 * tol and abs(got - 2 * lead) > 10 * tol
    if scheme == 2:  # the prior's source is resolved: far from the pure reaction
        assert abs(got - lead) > 10 * tol


def test_scheme_one_tracks_weighted_balanced_wfr_at_n_200():
    r"""Seed means of the population risk, birth–death (scheme 1) against weighted balanced WFR
    (Reaction + lie(euler), same h), each seed's WFR started from that seed's 200 particles.

    For the square-loss population risk, with δf = f_BD − f_WFR,
    R_BD − R_WFR = ⟨f_WFR − y, δf⟩ + ½‖δf‖² exactly. The quadratic term Q = ½‖δf‖² is the
    variance the jumps inject, O(1/N) (measured N·Q̄ = 0.08–0.2 at N = 100, 200, 400): that is the
    O(1/N) allowance, computed here in closed form per seed (f_WFR as a teacher). The linear term
    has mean zero up to the O(1/N) bias of the mean measure and the O(κh) difference between the
    jump probabilities κh|Ψ − Ψ̄| and the exact frozen-rate reaction (measured 1e-3 at h = 0.05,
    i.e. < 0.4 SE here). Measured with 256 seeds at N = 200: mean(R_BD − R_WFR) − Q̄ =
    −1e-4, 1.0e-3, 5e-4 (± 9e-4, 9e-4, 2e-4) at t = 0.5, 1, 2. This test (32 seeds): R_BD =
    0.3002, 0.2088, 0.0908 against R_WFR = 0.3012, 0.2077, 0.0882 at t = 0.25, 0.5, 1
    (differences ± 2.2e-3, 3.0e-3, 2.6e-3; Q̄ = 2e-4, 5e-4, 1.1e-3; pure transport 0.344, 0.282,
    0.194). Over 10 other seed roots the linear part stayed within −1.0 and 2.7 SE.
    """
    N, S, kappa, h, steps = 200, 32, 2.0, 0.05, 20
    seq = np.random.SeedSequence(7).spawn(2 * S)
    theta0 = np.stack([MODEL.draw(np.random.default_rng(k), N) for k in seq[:S]])
    drift = _drift()
    risk = lambda th, m=None: MODEL.risk_velocity(BE, th, POP, mass=m, velocity=False)[0]  # noqa: E731

    def rate(th, m):
        psi = MODEL.first_variation(BE, th, POP, mass=m)
        return -kappa * (psi - (np.sum(m * psi, -1) / np.sum(m, -1))[..., None])

    bd_terms = [drift, BirthDeath.from_model(MODEL, BE, POP, kappa)]
    wfr_terms = [drift, Reaction(rate, conserve_mass=True)]
    bd = ParticleState(theta0.copy(), rng=tuple(np.random.default_rng(k) for k in seq[S:]))
    wfr = ParticleState(theta0.copy(), mass=np.full((S, N), 1.0 / N))
    w = ParticleState(theta0[:8].copy())
    jump, lie, euler = (get_integrator("birth_death", transport="euler"), get_integrator("lie", transport="euler"),
                        get_integrator("euler"))
    for n in range(1, steps + 1):
        bd, wfr = jump.step(bd_terms, bd, h), lie.step(wfr_terms, wfr, h)
        w = euler.step(drift, w, h)
        if n not in (5, 10, 20):
            continue
        diff = risk(bd.theta) - risk(wfr.theta, wfr.mass)
        q = np.array([_half_sq_distance(bd.theta[s], wfr.theta[s], wfr.mass[s]) for s in range(S)])
        lin = diff - q
        se = lin.std(ddof=1) / np.sqrt(S)
        assert abs(lin.mean()) < 3 * se, (n * h, diff.mean(), q.mean(), se)
        assert 0 < N * q.mean() < 1.0, q.mean()  # the allowance is O(1/N) and the jumps do act
        gap = np.mean(risk(w.theta) - risk(wfr.theta[:8], wfr.mass[:8]))  # pure transport is far off
        assert gap > 5 * (3 * se + q.mean()), (gap, se, q.mean())
    assert bd.jumps.clipped.sum() == 0 and bd.jumps.killed.sum() > 1000


def _half_sq_distance(theta, theta_ref, mass_ref):
    """½ E_x (f(x; θ) − f(x; θ_ref, m_ref))², x ~ N(0, I), in closed form: the risk of θ against
    the teacher f(·; θ_ref, m_ref)."""
    a, w = theta_ref[:, 0], theta_ref[:, 1:]
    teacher = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), w, (MODEL.alpha * mass_ref * a)[None], "erf")
    return float(MODEL.risk_velocity(BE, theta[None], teacher, velocity=False)[0][0])


def test_zero_output_births_leave_f_unchanged():
    """Scheme 2 with zero_on_birth: after the step f is exactly the survivors' (+ clones') sum, so
    the births added nothing; with the prior's own output weights they would."""
    N = 50
    theta0 = MODEL.draw(np.random.default_rng(4), N)[None]
    x = np.random.default_rng(5).standard_normal((64, 2))
    psi = lambda th, m: MODEL.first_variation(BE, th, POP)  # noqa: E731
    outs = {}
    for zero in (0, None):
        bd = BirthDeath(psi, 1.0, scheme=2, prior=_prior, zero_on_birth=zero)
        st = bd.jump(ParticleState(theta0.copy(), rng=np.random.default_rng(6)), 0.5)
        born = st.parent == -1
        assert born.sum() > 3  # births happened (and the same ones in both runs)
        kept = np.where(born[..., None], 0.0, st.theta)  # the same population without the births
        outs[zero] = (MODEL.output(BE, st.theta, x), MODEL.output(BE, kept, x))
    f_all, f_kept = outs[0]
    assert np.max(np.abs(f_all - f_kept)) < 1e-15
    f_all, f_kept = outs[None]
    assert np.max(np.abs(f_all - f_kept)) > 1e-3


def test_clipping_is_counted_and_a_dying_population_is_refused():
    psi = np.array([[-3.0, -1.0, 0.0, 0.5, 1.0, 2.5]])  # mean 0: deviations are these values
    bd = BirthDeath(lambda th, m: psi, 1.0)
    st = ParticleState(np.zeros((1, 6, 3)), rng=np.random.default_rng(0))
    integ = get_integrator("birth_death", transport="euler")
    zero = Drift(lambda th, m: np.zeros_like(th))
    with pytest.warns(RuntimeWarning, match="clipped at 1"):
        st = integ.step([zero, bd], st, 0.5)  # kh|dev| = 1.5, .5, 0, .25, .5, 1.25: two clipped
    assert st.jumps.clipped.tolist() == [2] and st.jumps.clipped_steps.tolist() == [1]
    assert st.jumps.max_prob.tolist() == [1.5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = integ.step([zero, bd], st, 0.1)  # no clipping: no warning, counts unchanged
    assert st.jumps.clipped.tolist() == [2] and st.jumps.clipped_steps.tolist() == [1]
    assert "CLIPPED 2" in st.jumps.report()

    # raw (uncentred) rates all positive with kappa*h*Psi >= 1: everyone dies in step 7
    doomed = BirthDeath(lambda th, m: np.full(th.shape[:-1], 2.0), 1.0, centred=False)
    state = ParticleState(np.zeros((2, 5, 3)), rng=np.random.default_rng(1), step=6)
    with pytest.raises(PopulationDiedOut, match=r"step 7: every one of the N = 5 particles of system \(0,\)") as e:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            integ.step([zero, doomed], state, 0.5)
    assert e.value.step == 7 and "centred=True" in str(e.value)


def test_registry_orders_and_refusals():
    integ = get_integrator("birth_death", transport="euler")
    bd = BirthDeath(lambda th, m: np.zeros(th.shape[:-1]), 1.0)
    drift = Drift(lambda th, m: -th)
    assert integ.order_for([drift, bd]) == 1 and integ.strong_order_for([drift, bd]) is None
    with pytest.raises(UnsupportedTermError, match="needs a jump term"):
        integ.check([drift])
    with pytest.raises(UnsupportedTermError, match="Reaction"):
        integ.check([drift, bd, Reaction(lambda th, m: -m)])
    with pytest.raises(UnsupportedTermError, match=r"get_integrator\('birth_death', transport='rk4'\)"):
        get_integrator("rk4").check([drift, bd])
    st = ParticleState(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="needs a random stream"):
        bd.jump(st, 0.1)
    with pytest.raises(ValueError, match="equal-weight"):
        bd.jump(st.replace(mass=np.array([0.1, 0.2, 0.3, 0.4]), rng=np.random.default_rng(0)), 0.1)
    with pytest.raises(ValueError, match="scheme 2 needs prior"):
        BirthDeath(bd.potential, 1.0, scheme=2)
    with pytest.raises(ValueError, match="scheme must be 1"):
        BirthDeath(bd.potential, 1.0, scheme=3)
    with pytest.raises(ValueError, match=">= 0"):
        BirthDeath(bd.potential, -1.0)
    # kappa = 0 moves nothing but advances the stream as any kappa does
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    theta = np.random.default_rng(0).standard_normal((4, 3))
    out = BirthDeath(lambda th, m: th[..., 0], 0.0).jump(ParticleState(theta, rng=g1), 0.1)
    BirthDeath(lambda th, m: th[..., 0], 5.0).jump(ParticleState(theta, rng=g2), 0.1)
    assert out.theta.tobytes() == theta.tobytes() and g1.random() == g2.random()
    assert out.parent.tolist() == [0, 1, 2, 3] and out.jumps.killed.sum() == 0
