"""The discrete adjoint of Euler, Heun and RK4 (meanfield_solvers/integrators/adjoint.py): the gradient of
outputs at several times with respect to the particle masses equals central finite differences of the
registered integrator's own K-step map, relative 1e-6 (measured ~1e-9), whatever the checkpoint interval."""
import numpy as np
import pytest

from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.integrators.adjoint import (DriftVJP, adjoint_memory_bytes, adjoint_sweep, rk_step_vjp,
                                                   tableau_of)
from meanfield_solvers.models import GaussianPopulation, Samples, TwoLayer
from meanfield_solvers.particles.backends.numpy_backend import NumpyBackend
from meanfield_solvers.state import ParticleState

BE = NumpyBackend()


def _problem(kind):
    rng = np.random.default_rng(11)
    d = 2
    model = TwoLayer("erf", d, alpha=1.0, bias=kind == "mc", b_std=0.3, lr_w=1.5)
    if kind == "mc":
        x = rng.standard_normal((13, d))
        data = Samples(x, np.tanh(2 * x[:, 0]) - 0.5 * x[:, 1])
    else:
        data = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), np.array([[1.0, 0.0]]), np.ones((1, 1)), "erf")
    n = 9
    th = model.draw(rng, n)
    mass = np.full(n, 1.0 / n)
    field = DriftVJP(lambda t, m: model.risk_velocity(BE, t, data, mass=m)[1],
                     lambda t, m, c: model.velocity_vjp(BE, t, data, c, m))
    xs = rng.standard_normal((3, d))
    return model, data, th, mass, field, xs


def _outputs(model, xs, th, m):
    return model.output(BE, th, xs, mass=m)


@pytest.mark.parametrize("name", ["euler", "heun", "rk4"])
@pytest.mark.parametrize("kind", ["mc", "population"])
def test_adjoint_equals_finite_differences_of_the_discrete_map(name, kind):
    model, data, th0, mass, field, xs = _problem(kind)
    integ = get_integrator(name)
    h, K = 0.3, 7
    rec = (0, 3, 7)

    def seed(th):
        return model.output_vjp(BE, th, xs, np.eye(3), mass)

    def seed_risk(th):
        t, m = model.risk_vjp(BE, th, data, mass)
        return t[None], m[None]

    def both(th):
        a, b = seed(th)
        c, e = seed_risk(th)
        return np.concatenate([a, c]), np.concatenate([b, e])

    g = {}
    for c in (1, 3, K):
        g[c] = adjoint_sweep(field, integ, th0, mass, h, K, {k: both for k in rec}, checkpoint=c)
    for c in (1, 3):
        for k in rec:
            np.testing.assert_allclose(g[c][k], g[K][k], rtol=1e-12, atol=1e-14)

    def run(m):
        out, th = {0: None}, th0.copy()
        vals = {}
        for k in range(K + 1):
            if k in rec:
                vals[k] = np.concatenate([_outputs(model, xs, th, m),
                                          np.atleast_1d(model.risk_velocity(BE, th, data, mass=m, velocity=False)[0])])
            if k < K:
                th = integ.step(field.term(), ParticleState(th, mass=m), h).theta
        return vals

    eps = 1e-6
    for j in (0, 4, 8):
        e = np.zeros_like(mass)
        e[j] = eps
        vp, vm = run(mass + e), run(mass - e)
        for k in rec:
            fd = (vp[k] - vm[k]) / (2 * eps)
            np.testing.assert_allclose(g[K][k][:, j], fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("name", ["heun", "rk4"])
def test_one_reverse_step_passes_the_dot_product_test_in_positions(name):
    """<J_theta delta, cot> = <delta, theta_bar> for one step (finite differences in the positions)."""
    model, data, th0, mass, field, _ = _problem("mc")
    integ = get_integrator(name)
    rng = np.random.default_rng(2)
    cot = rng.standard_normal((2,) + th0.shape)
    tb, _ = rk_step_vjp(field, tableau_of(integ), th0, mass, 0.2, cot)
    delta = rng.standard_normal(th0.shape)
    eps = 1e-6
    step = lambda t: integ.step(field.term(), ParticleState(t, mass=mass), 0.2).theta
    jd = (step(th0 + eps * delta) - step(th0 - eps * delta)) / (2 * eps)
    np.testing.assert_allclose(np.einsum("cnp,np->c", cot, jd), np.einsum("cnp,np->c", tb, delta), rtol=1e-7)


def test_integrators_without_a_tableau_are_refused_and_memory_grows_like_sqrt_k():
    with pytest.raises(TypeError, match="no Runge-Kutta tableau"):
        tableau_of(get_integrator("euler_maruyama"))
    small = adjoint_memory_bytes(1000, 3, 10_000, 1, 4)
    store_all = adjoint_memory_bytes(1000, 3, 10_000, 1, 4, checkpoint=1)
    assert store_all > 40 * small
