r"""Euler–Maruyama and the Noise term: strong orders on SDEs with exact solutions, the law of the
Brownian increments, and bitwise reproducibility of the random streams (per seed, whatever runs
beside it).

Strong errors :math:`\mathbb E|X^{h}_T - X_T|` are estimated over P paths vectorised in the
leading axes of the state (theta of shape (P, 1, 1)); every step size uses the *same* Brownian
paths, the coarse increments being sums of the fine ones (a test double of :class:`Noise` replays
them). The slope of :math:`\log\mathbb E|\cdot|` against :math:`\log\Delta t` is fitted by least
squares; its Monte Carlo standard error comes from the delta method with the covariance of the
per-path errors across step sizes (same paths, hence strongly correlated levels).
"""
import math

import numpy as np
import pytest

from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.state import ParticleState
from meanfield_solvers.terms import Drift, Noise, Reaction

from helpers import ou_exact_path

P = 20000  # paths: puts the slopes' MC standard error near 0.003 (OU) and 0.005 (GBM)
# Allowance for the pre-asymptotic terms of the error expansion (relative O(dt) corrections,
# at most a few percent at the coarsest dt here; measured slope bias over seeds ~0.015). The
# tolerance is this plus 4 MC standard errors: about 0.06 (OU) and 0.07 (GBM), far from the
# 0.5 that separates the two orders.
ALLOWANCE = 0.05


class _Replayed(Noise):
    """A Noise whose increments are given: step k returns ``dws[:, k]`` (shape (P, 1, 1))."""

    def __init__(self, diffusion, dws):
        super().__init__(diffusion)
        self.dws = dws

    def increment(self, state, dt):
        return self.dws[:, state.step].copy()  # the integrator may scale it in place


def _strong_errors(drift, diffusion, x0, dw_fine, exact, ns, T):
    """Per-path |X^h_T - X_T| (len(ns), P) of EM with n steps, for each n in ns (n | n_fine)."""
    paths, n_fine = dw_fine.shape
    em = get_integrator("euler_maruyama")
    errs = []
    for n in ns:
        dws = dw_fine.reshape(paths, n, n_fine // n).sum(-1)[:, :, None, None]
        terms = [Drift(drift), _Replayed(diffusion, dws)]
        state = ParticleState(np.full((paths, 1, 1), x0))
        for _ in range(n):
            state = em.step(terms, state, T / n)
        errs.append(np.abs(state.theta[:, 0, 0] - exact))
    return np.array(errs)


def _slope(ns, errs):
    """Fitted order (slope of log mean error vs log dt) and its MC standard error."""
    mean = errs.mean(axis=1)
    x = -np.log(np.asarray(ns, float))  # log dt up to a constant
    w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)  # least-squares slope = w @ log(mean)
    cov_log = np.cov(errs) / errs.shape[1] / np.outer(mean, mean)
    return w @ np.log(mean), math.sqrt(w @ cov_log @ w)


def test_strong_order_one_on_ornstein_uhlenbeck():
    r"""dX = -λX dt + σ dW (additive noise): EM is strong order 1.

    Exact solution on the fine grid :math:`h = T/n_f`, jointly with the Brownian increments:
    variation of constants gives :math:`X_{t+h} = e^{-λh}X_t + σI`,
    :math:`I = \int_t^{t+h} e^{-λ(t+h-u)}\,\mathrm dW_u`. The pair :math:`(ΔW, I)` is a centred
    Gaussian with, by Itô's isometry, :math:`\operatorname{Var}ΔW = h`,
    :math:`\operatorname{Var}I = v = (1-e^{-2λh})/(2λ)` and
    :math:`\operatorname{Cov}(ΔW, I) = \int_0^h e^{-λ(h-u)}\mathrm du = c = (1-e^{-λh})/λ`. So with
    :math:`Z_1, Z_2` iid standard normal, :math:`ΔW = \sqrt h Z_1` and
    :math:`I = (c/\sqrt h) Z_1 + \sqrt{v - c^2/h}\,Z_2`: the recursion is exact at the grid
    points, with no discretisation error of its own, and the coarse increments are sums of the
    :math:`ΔW`.
    """
    lam, sig, T, ns = 1.0, 1.0, 1.0, [8, 16, 32, 64]
    dw, x = ou_exact_path(P, lam, sig, T, ns[-1], seed=0)
    errs = _strong_errors(lambda th, m: -lam * th, sig, 1.0, dw, x, ns, T)
    slope, se = _slope(ns, errs)
    assert abs(slope - 1.0) < ALLOWANCE + 4 * se, (slope, se, errs.mean(axis=1))
    assert get_integrator("euler_maruyama").strong_order_for([Drift(None), Noise(sig)]) == 1.0


def test_strong_order_half_on_geometric_brownian_motion():
    r"""dX = μX dt + σX dW (multiplicative noise): EM is strong order 1/2.

    Itô's formula on :math:`\log X` gives :math:`X_T = X_0\exp((μ - σ^2/2)T + σW_T)`, with
    :math:`W_T` the sum of all the fine increments.
    """
    mu, sig, T, ns = 0.5, 1.0, 1.0, [16, 32, 64, 128, 256]
    n_fine = ns[-1]
    dw = math.sqrt(T / n_fine) * np.random.default_rng(1).standard_normal((P, n_fine))
    x = np.exp((mu - sig**2 / 2) * T + sig * dw.sum(axis=1))
    errs = _strong_errors(lambda th, m: mu * th, lambda th: sig * th, 1.0, dw, x, ns, T)
    slope, se = _slope(ns, errs)
    assert abs(slope - 0.5) < ALLOWANCE + 4 * se, (slope, se, errs.mean(axis=1))
    em = get_integrator("euler_maruyama")
    assert em.strong_order == 0.5 and em.strong_order_for([Drift(None), Noise(lambda th: th)]) == 0.5


def test_step_is_bitwise_the_textbook_expression():
    """theta + dt*v(theta) + g(theta)*dW, with dW = sqrt(dt) * (the generator's normals)."""
    theta = np.random.default_rng(2).standard_normal((3, 4, 2))
    v, g = (lambda th, m: np.sin(th)), (lambda th: 0.3 + np.cos(th) ** 2)
    dt = 0.01
    state = ParticleState(theta, rng=np.random.default_rng(7))
    new = get_integrator("euler_maruyama").step([Drift(v), Noise(g)], state, dt)
    dw = math.sqrt(dt) * np.random.default_rng(7).standard_normal(theta.shape)
    assert new.theta.tobytes() == (theta + dt * v(theta, None) + g(theta) * dw).tobytes()
    assert new.step == 1 and new.rng is state.rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_increments_are_centred_with_variance_dt(dtype):
    """Mean within 5 SE of 0 and variance within 5 SE of dt, for both generator layouts; the
    state's dtype is kept (no silent float64 upcast of a float32 run)."""
    dt, shape = 0.04, (4, 5000, 3)
    for rng in (np.random.default_rng(3), tuple(np.random.default_rng(s) for s in range(4))):
        dw = Noise(1.0).increment(ParticleState(np.zeros(shape, dtype), rng=rng), dt)
        n = dw.size
        assert dw.dtype == dtype
        assert abs(dw.mean()) < 5 * math.sqrt(dt / n)
        assert abs(dw.var() / dt - 1) < 5 * math.sqrt(2 / n)


def _mean_field(th, m):
    """An interacting velocity (each particle feels its own system's empirical mean)."""
    return -th + np.tanh(th).mean(axis=-2, keepdims=True)


def _run(integ, terms, state, n):
    out = [state]
    for _ in range(n):
        out.append(integ.step(terms, out[-1], 0.05))
    return out


@pytest.mark.parametrize("name, noise", [
    ("euler_maruyama", Noise(0.7)),
    ("euler_maruyama", Noise(lambda th: 0.5 + 0.1 * th**2)),
    ("strang", Noise(0.7)),
])
def test_same_seed_same_bits_and_a_seed_does_not_feel_its_neighbours(name, noise):
    """Same seeds -> bitwise the same trajectory; with one generator per seed, seed 12's path
    (positions and masses) is bitwise the same run alone or between seeds 11 and 13."""
    integ = get_integrator(name, **({"transport": "euler_maruyama"} if name == "strang" else {}))
    terms = [Drift(_mean_field), noise]
    if name == "strang":
        terms.append(Reaction(lambda th, m: -np.sum(th**2, axis=-1), conserve_mass=True))
    theta = np.random.default_rng(0).standard_normal((3, 6, 2))
    seeds = (11, 12, 13)

    def state(idx):
        return ParticleState(theta[idx], rng=tuple(np.random.default_rng(seeds[i]) for i in idx))

    together = _run(integ, terms, state([0, 1, 2]), 20)
    again = _run(integ, terms, state([0, 1, 2]), 20)
    alone = _run(integ, terms, state([1]), 20)
    for a, b, c in zip(together, again, alone):
        assert a.theta.tobytes() == b.theta.tobytes()
        assert a.theta[1].tobytes() == c.theta[0].tobytes()
        if name == "strang" and a.step:
            assert a.mass[1].tobytes() == c.mass[0].tobytes()
    assert not np.array_equal(together[-1].theta[0], together[-1].theta[2])  # seeds differ
