r"""The particle-model protocol on the two-layer model: masses, first variation and velocity.

Claims checked (each a derivation, not a stored number):

* uniform masses m_i = 1/N give the risk and velocity of the unweighted (width-N) code;
* the first variation is the derivative of the risk along a mass perturbation:
  d/dε R((1−ε)μ + εδ_θ) / α² at ε = 0 equals Ψ(θ;μ) − Σ_i m_i Ψ(θ_i;μ);
* the velocity is −Λ∇_θΨ: a zero-mass probe particle leaves μ unchanged, so finite differences of
  Ψ at the probe give its velocity;
* named columns address the same numbers as the layout.
"""
import numpy as np
import pytest

from meanfield_solvers.models import GaussianPopulation, Samples, TwoLayer
from meanfield_solvers.particles import get_backend

BE = get_backend("numpy")


def _setup(bias, rng):
    d, N = 3, 7
    model = TwoLayer("tanh" if bias else "erf", d, alpha=1.7, bias=bias, lr_a=0.8, lr_w=1.3, lr_b=0.6)
    theta = rng.standard_normal((N, model.p))
    mass = rng.random(N)
    mass /= mass.sum()
    if bias:
        x = rng.standard_normal((50, d))
        data = Samples(x, np.sin(x[:, 0]) + 0.3 * x[:, 1], "square")
    else:
        tw = rng.standard_normal((2, d)) / np.sqrt(d)
        data = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), tw, np.ones((1, 2)) / 2, "erf")
    return model, theta, mass, data


@pytest.mark.parametrize("bias", [False, True])
def test_uniform_masses_equal_the_unweighted_network(bias):
    model, theta, _, data = _setup(bias, np.random.default_rng(0))
    N = theta.shape[0]
    r0, v0 = model.risk_velocity(BE, theta, data)
    r1, v1 = model.risk_velocity(BE, theta, data, mass=np.full(N, 1.0 / N))
    assert np.allclose(r0, r1, rtol=1e-13, atol=1e-15) and np.allclose(v0, v1, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bias", [False, True])
def test_first_variation_is_the_mass_derivative_of_the_risk(bias):
    rng = np.random.default_rng(1)
    model, theta, mass, data = _setup(bias, rng)
    probe = rng.standard_normal(model.p)
    th = np.vstack([theta, probe])
    psi = model.first_variation(BE, th, data, mass=np.append(mass, 0.0))
    want = psi[-1] - np.dot(mass, psi[:-1])
    eps = 1e-5

    def R(e):
        return model.risk_velocity(BE, th, data, mass=np.append((1 - e) * mass, e), velocity=False)[0]

    got = (R(eps) - R(-eps)) / (2 * eps) / model.alpha**2
    assert np.isclose(got, want, rtol=1e-7, atol=1e-10), (got, want)


@pytest.mark.parametrize("bias", [False, True])
def test_velocity_is_minus_lambda_grad_first_variation(bias):
    rng = np.random.default_rng(2)
    model, theta, mass, data = _setup(bias, rng)
    probe = rng.standard_normal(model.p)
    m = np.append(mass, 0.0)  # the probe carries no mass: mu is unchanged as it moves
    v = model.risk_velocity(BE, np.vstack([theta, probe]), data, mass=m)[1][-1]
    lam = np.array([model.lr_a] + [model.lr_w] * model.d + ([model.lr_b] if bias else []))
    grad = np.empty(model.p)
    h = 1e-6
    for j in range(model.p):
        e = np.zeros(model.p)
        e[j] = h
        up = model.first_variation(BE, np.vstack([theta, probe + e]), data, mass=m)[-1]
        dn = model.first_variation(BE, np.vstack([theta, probe - e]), data, mass=m)[-1]
        grad[j] = (up - dn) / (2 * h)
    assert np.allclose(v, -lam * grad, rtol=1e-6, atol=1e-9), (v, -lam * grad)


def test_named_columns_address_the_layout():
    model = TwoLayer("erf", 2, bias=True)
    assert model.columns == ("a", "w[0]", "w[1]", "b") and model.p == 4
    th = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(model.column(th, "a"), th[:, 0])
    assert np.array_equal(model.column(th, "w"), th[:, 1:3])
    assert np.array_equal(model.column(th, "b"), th[:, 3])
    with pytest.raises(KeyError, match="no column group 'c'"):
        model.column(th, "c")


def test_antithetic_draw_pairs_and_subsample_keeps_pairs():
    model = TwoLayer("erf", 3, antithetic=True)
    th = model.draw(np.random.default_rng(0), 10)
    assert np.array_equal(th[5:, 0], -th[:5, 0]) and np.array_equal(th[5:, 1:], th[:5, 1:])
    rows, idx = model.subsample(th, 4, np.random.default_rng(1))
    assert np.array_equal(idx[2:], idx[:2] + 5) and np.array_equal(rows, th[idx])
