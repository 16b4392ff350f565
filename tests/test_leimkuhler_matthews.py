r"""The Leimkuhler–Matthews scheme (``leimkuhler_matthews``): θₙ₊₁ = θₙ + h v(θₙ) + g(ΔWₙ + ΔWₙ₊₁)/2.

Claims (derivations in the module docstring of :mod:`meanfield_solvers.integrators.leimkuhler_matthews`):

* Ornstein–Uhlenbeck dθ = −kθ dt + √(2τ) dW: the stationary variance of the scheme is exactly τ/k
  at every stable step (Euler–Maruyama's is τ/(k(1 − kh/2)), also checked, so the test can fail);
* a non-Gaussian stationary law (U(x) = x²/2 + 0.8 cos x, τ = 1, ⟨x²⟩ by adaptive quadrature):
  Euler–Maruyama's bias is first order in h (fitted c₁h + c₂h², c₁ ≠ 0) and tens of standard errors large,
  the scheme's stays within the Monte Carlo error (its leading term is O(h²));
* strong order 1/2 on OU against the exact solution on the same Brownian path (fitted slope);
* without noise it is bitwise Euler; multiplicative noise is refused; same seed, same bits.
"""
import math

import numpy as np
import pytest
from scipy import integrate

from meanfield_solvers.integrators import UnsupportedTermError, get_integrator
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import Drift, Noise

from helpers import ou_exact_path

LM = get_integrator("leimkuhler_matthews")
EM = get_integrator("euler_maruyama")


def _run(integ, drift, tau, x0, h, steps, seed, burn=0):
    """Chains x0 (R,) as a state (R, 1, 1); returns the final positions and the time average of x²
    over the steps after ``burn``."""
    terms = [Drift(lambda th, m: drift(th)), Noise(math.sqrt(2 * tau))]
    st = ParticleState(np.asarray(x0, float).reshape(-1, 1, 1).copy(), rng=np.random.default_rng(seed))
    acc = np.zeros(len(x0))
    for k in range(steps):
        st = integ.step(terms, st, h)
        if k >= burn:
            acc += st.theta[:, 0, 0] ** 2
    return st.theta[:, 0, 0], acc / max(steps - burn, 1)


@pytest.mark.parametrize("h", [0.2, 0.9])
def test_ornstein_uhlenbeck_stationary_variance_is_exact(h):
    """k = 1, τ = 0.5, 40 000 chains started at the exact law and run 40 steps (|1 − kh| ≤ 0.8:
    the memory of the start is below 1e-4): variance τ/k = 0.5 within 4 SE (SE = V√(2/R))."""
    k, tau, R = 1.0, 0.5, 40000
    x0 = np.random.default_rng(0).standard_normal(R) * math.sqrt(tau / k)
    se = lambda v: v * math.sqrt(2.0 / R)  # noqa: E731
    lm, _ = _run(LM, lambda th: -k * th, tau, x0, h, 40, 1)
    em, _ = _run(EM, lambda th: -k * th, tau, x0, h, 40, 1)
    v_lm, v_em = lm.var(), em.var()
    want_em = tau / (k * (1 - k * h / 2))
    assert abs(v_lm - tau / k) < 4 * se(tau / k), v_lm
    assert abs(v_em - want_em) < 4 * se(want_em), (v_em, want_em)
    if h == 0.9:  # there EM's bias is 82 %: the two formulas are told apart by far
        assert abs(v_lm - want_em) > 40 * se(want_em)


def test_nonlinear_stationary_average_is_second_order():
    """⟨x²⟩ under exp(−U), U = x²/2 + 0.8 cos x (U'' ∈ [0.2, 1.8]: stable for h < 1.1), from
    50 000 chains × time 40 after a burn-in of 10 at h = 0.4, 0.2, 0.1. Measured with 100 000
    chains: EM bias 0.146, 0.063, 0.030 (± 0.001); the scheme's −0.002, −0.002, −0.0001 (± 0.001)."""
    U = lambda x: x**2 / 2 + 0.8 * np.cos(x)  # noqa: E731
    Z = integrate.quad(lambda x: np.exp(-U(x)), -np.inf, np.inf, epsabs=1e-13)[0]
    m2 = integrate.quad(lambda x: x * x * np.exp(-U(x)), -np.inf, np.inf, epsabs=1e-13)[0] / Z
    R = 50000
    x0 = np.random.default_rng(2).standard_normal(R) * math.sqrt(m2)
    hs, bias_em, bias_lm, ses = [0.4, 0.2, 0.1], [], [], []
    for h in hs:
        burn, steps = int(round(10 / h)), int(round(50 / h))
        for integ, out in ((EM, bias_em), (LM, bias_lm)):
            _, est = _run(integ, lambda th: -th + 0.8 * np.sin(th), 1.0, x0, h, steps, 3, burn)
            out.append(est.mean() - m2)
        ses.append(est.std(ddof=1) / math.sqrt(R))
    # EM: bias = c1 h + c2 h² with c1 ≠ 0 (first order; c2 h is a 20 % correction at h = 0.1, so
    # a log-log slope would read 1.2): c1 by least squares with its propagated standard error
    A = np.column_stack([hs, np.square(hs)])
    pinv = np.linalg.pinv(A)
    c1 = (pinv @ np.asarray(bias_em))[0]
    c1_se = math.sqrt(np.sum((pinv[0] * np.asarray(ses)) ** 2))
    assert c1 > 8 * c1_se, (c1, c1_se, bias_em)  # measured 0.244 ± 0.020
    for b_em, b_lm, se in zip(bias_em, bias_lm, ses):
        assert b_em > 10 * se and abs(b_lm) < 4 * se, (b_em, b_lm, se)
    # and where the O(h²) term could show, it is at most a tenth of EM's O(h) bias
    assert abs(bias_lm[0]) < 0.1 * bias_em[0]


class _Sequence(Noise):
    """A Noise whose successive increments are given, one per call: ``dws[:, j]`` (P, 1, 1)."""

    def __init__(self, diffusion, dws):
        super().__init__(diffusion)
        self.dws, self.j = dws, 0

    def increment(self, state, dt):
        out = self.dws[:, self.j].copy()
        self.j += 1
        return out


def test_strong_order_one_half_on_ornstein_uhlenbeck():
    r"""dX = −X dt + dW to T = 1, 20 000 paths, exact solution on the fine grid (as in
    tests/helpers.ou_exact_path: (ΔW, ∫e^{−(h−u)}dW) jointly Gaussian); the coarse steps use sums
    of the fine increments, plus one independent increment after T, which the last step shares."""
    P, lam, T, ns = 20000, 1.0, 1.0, [8, 16, 32, 64, 128]
    n_fine = ns[-1]
    dw, x = ou_exact_path(P, lam, 1.0, T, n_fine, seed=0)
    extra = np.random.default_rng(1).standard_normal(P)
    errs = []
    for n in ns:
        coarse = dw.reshape(P, n, n_fine // n).sum(-1)
        dws = np.concatenate([coarse, math.sqrt(T / n) * extra[:, None]], axis=1)[:, :, None, None]
        terms = [Drift(lambda th, m: -lam * th), _Sequence(1.0, dws)]
        st = ParticleState(np.ones((P, 1, 1)))
        for _ in range(n):
            st = LM.step(terms, st, T / n)
        errs.append(np.abs(st.theta[:, 0, 0] - x))
    mean = np.array(errs).mean(axis=1)
    slope = np.polyfit(np.log(T / np.asarray(ns, float)), np.log(mean), 1)[0]
    assert abs(slope - 0.5) < 0.08, (slope, mean)
    assert LM.strong_order_for([Drift(None), Noise(1.0)]) == 0.5


def test_without_noise_it_is_euler_bit_for_bit_and_bad_noise_is_refused():
    th = np.random.default_rng(0).standard_normal((3, 5, 2))
    drift = Drift(lambda t, m: np.sin(t) - t**3)
    a = LM.step(drift, ParticleState(th), 0.1).theta
    b = get_integrator("euler").step(drift, ParticleState(th), 0.1).theta
    assert a.tobytes() == b.tobytes()
    with pytest.raises(UnsupportedTermError, match="additive noise.*euler_maruyama"):
        LM.step([drift, Noise(lambda t: t)], ParticleState(th, rng=np.random.default_rng(0)), 0.1)


def test_same_seed_same_bits_and_per_seed_streams():
    th = np.random.default_rng(0).standard_normal((3, 5, 2))
    terms = [Drift(lambda t, m: -t), Noise(0.7)]

    def go(seeds, x):
        st = ParticleState(x.copy(), rng=tuple(np.random.default_rng(s) for s in seeds))
        for _ in range(6):
            st = LM.step(terms, st, 0.1)
        return st.theta

    a, b, alone = go([1, 2, 3], th), go([1, 2, 3], th), go([2], th[1:2])
    assert a.tobytes() == b.tobytes() and alone[0].tobytes() == a[1].tobytes()


def test_limit_integrator_in_a_run():
    """``limit.integrator = "leimkuhler_matthews"``: without temperature the limit is bitwise the
    Euler run; with it the run is reproducible and its noise is not Euler-Maruyama's."""
    import meanfield

    from helpers import tiny

    base = {"train.seeds": 0, "limit.expectation": "analytic"}
    a = meanfield.run(tiny(**base, **{"limit.integrator": "leimkuhler_matthews"}))
    b = meanfield.run(tiny(**base, **{"limit.integrator": "euler"}))
    assert a["risk_mf"].tobytes() == b["risk_mf"].tobytes() and a["f_mf"].tobytes() == b["f_mf"].tobytes()
    hot = {**base, "dynamics.temperature": 0.1}
    c = meanfield.run(tiny(**hot, **{"limit.integrator": "leimkuhler_matthews"}))
    d = meanfield.run(tiny(**hot, **{"limit.integrator": "leimkuhler_matthews"}))
    e = meanfield.run(tiny(**hot, **{"limit.integrator": "euler_maruyama"}))
    assert c["risk_mf"].tobytes() == d["risk_mf"].tobytes()
    assert not np.array_equal(c["risk_mf"], e["risk_mf"]) and np.all(np.isfinite(c["risk_mf"]))
