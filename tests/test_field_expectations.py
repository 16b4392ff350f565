"""Closed-form population expectations against Monte Carlo, and velocities against gradients."""
import numpy as np
import pytest

from meanfield_solvers import gaussian
from meanfield_solvers.particles import (GaussianPopulation, TwoLayer, get_backend, mc_risk_velocity,
                               population_risk_velocity)

BE = get_backend("numpy")


def _teacher_pop(act, d, k, rng, noise=0.0):
    tw = rng.standard_normal((k, d)) / np.sqrt(d)
    c = rng.standard_normal(k) / k
    return GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), tw, c[None], act, noise**2)


def _sample(pop, rng, M):
    comp = rng.choice(len(pop.weights), size=M, p=pop.weights)
    x = rng.standard_normal((M, pop.teacher_w.shape[1])) * pop.scales[comp][:, None]
    y = pop.offsets[comp].astype(float)
    if pop.teacher_w.shape[0]:
        act = gaussian.get_activation(pop.activation)
        feats = act.fn(x @ pop.teacher_w.T)
        y = y + np.einsum("mk,mk->m", feats, pop.teacher_c[comp])
    return x, y + np.sqrt(pop.noise_var) * rng.standard_normal(M)


def _per_sample_terms(model, theta, x, y):
    """Per-sample loss and per-sample velocity contributions (for MC error bars)."""
    a, w, _ = model.split(theta)
    N = theta.shape[0]
    act = gaussian.get_activation(model.activation)
    z = x @ w.T
    s = act.fn(z)
    f = model.alpha / N * s @ a
    r = y - f
    loss = 0.5 * r * r
    va = r[:, None] * s / model.alpha                                # (M, N)
    vw = (r[:, None] * act.d1(z) * a)[:, :, None] * x[:, None, :] / model.alpha  # (M, N, d)
    return loss, np.concatenate([va[:, :, None], vw], axis=2)


@pytest.mark.parametrize("act", ["linear", "erf", "relu"])
@pytest.mark.parametrize("task", ["teacher", "mixture"])
def test_analytic_risk_and_velocity_match_monte_carlo(act, task):
    rng = np.random.default_rng(11)
    d, N = 4, 6
    if task == "teacher":
        pop = _teacher_pop(act, d, 3, rng, noise=0.3)
    else:  # Mei-Montanari-Nguyen isotropic Gaussians
        pop = GaussianPopulation(np.array([0.5, 0.5]), np.array([1.4, 0.6]), np.array([1.0, -1.0]),
                                 np.zeros((0, d)), np.zeros((2, 0)), act)
    model = TwoLayer(act, d, alpha=1.3)
    theta = rng.standard_normal((N, 1 + d))
    theta[:, 1:] /= np.sqrt(d)
    R, v = population_risk_velocity(model, BE, theta, pop)
    x, y = _sample(pop, rng, 200_000)
    loss, vs = _per_sample_terms(model, theta, x, y)
    M = len(loss)
    # the helper reproduces the library's MC estimator exactly
    Rm, vm = mc_risk_velocity(model, BE, theta, x, y)
    assert np.allclose(Rm, loss.mean()) and np.allclose(vm, vs.mean(0))
    z_risk = (R - loss.mean()) / (loss.std() / np.sqrt(M))
    z_vel = (v - vs.mean(0)) / (vs.std(0) / np.sqrt(M))
    assert abs(z_risk) < 4.5
    assert np.max(np.abs(z_vel)) < 4.5, np.max(np.abs(z_vel))


@pytest.mark.parametrize("act", ["linear", "erf", "relu"])
def test_analytic_velocity_is_minus_scaled_gradient(act):
    """v_i = -(N/alpha^2) Lambda grad_{theta_i} R, per neuron, by central differences."""
    rng = np.random.default_rng(3)
    d, N = 3, 5
    pop = _teacher_pop(act, d, 2, rng)
    model = TwoLayer(act, d, alpha=0.7, lr_a=0.5, lr_w=2.0)
    theta = rng.standard_normal((N, 1 + d))
    _, v = population_risk_velocity(model, BE, theta, pop)
    g = _fd_grad(lambda th: population_risk_velocity(model, BE, th, pop, velocity=False)[0], theta)
    lam = np.array([0.5] + [2.0] * d)
    assert np.allclose(v, -N / model.alpha**2 * lam * g, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("act", ["linear", "erf", "relu", "tanh"])
@pytest.mark.parametrize("loss", ["square", "logistic"])
def test_mc_velocity_is_minus_scaled_gradient(act, loss):
    rng = np.random.default_rng(4)
    d, N, M = 3, 5, 50
    model = TwoLayer(act, d, alpha=1.5, bias=True, lr_a=1.0, lr_w=0.3, lr_b=0.3)
    theta = rng.standard_normal((N, 2 + d))
    x = rng.standard_normal((M, d))
    y = np.sign(rng.standard_normal(M))
    _, v = mc_risk_velocity(model, BE, theta, x, y, loss)
    g = _fd_grad(lambda th: mc_risk_velocity(model, BE, th, x, y, loss, velocity=False)[0], theta)
    lam = np.array([1.0] + [0.3] * (d + 1))
    # relu is piecewise linear: central differences are exact away from kinks (none at these draws)
    assert np.allclose(v, -N / model.alpha**2 * lam * g, rtol=1e-6, atol=1e-9)


def test_batched_seed_axis_equals_loop():
    rng = np.random.default_rng(5)
    d, N, S = 3, 7, 4
    pop = _teacher_pop("erf", d, 2, rng)
    model = TwoLayer("erf", d)
    theta = rng.standard_normal((S, N, 1 + d))
    R, v = population_risk_velocity(model, BE, theta, pop)
    x = rng.standard_normal((S, 20, d))
    y = rng.standard_normal((S, 20))
    Rm, vm = mc_risk_velocity(model, BE, theta, x, y)
    for s in range(S):
        r1, v1 = population_risk_velocity(model, BE, theta[s], pop)
        assert np.allclose(R[s], r1, rtol=1e-14) and np.allclose(v[s], v1, rtol=1e-13, atol=1e-15)
        r2, v2 = mc_risk_velocity(model, BE, theta[s], x[s], y[s])
        assert np.allclose(Rm[s], r2, rtol=1e-14) and np.allclose(vm[s], v2, rtol=1e-13, atol=1e-15)


def _fd_grad(fun, theta, eps=1e-6):
    g = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        tp, tm = theta.copy(), theta.copy()
        tp[idx] += eps
        tm[idx] -= eps
        g[idx] = (fun(tp) - fun(tm)) / (2 * eps)
    return g


def test_gaussian_closed_forms_against_quadrature():
    q1, q2, c = 1.3, 0.7, 0.5
    for name in ("linear", "erf"):
        act = gaussian.get_activation(name)
        assert np.isclose(gaussian.kernel(name, q1, q2, c), gaussian.gauss_hermite_kernel(act.fn, act.fn, q1, q2, c), rtol=1e-12)
        assert np.isclose(gaussian.dkernel(name, q1, q2, c), gaussian.gauss_hermite_kernel(act.d1, act.d1, q1, q2, c), rtol=1e-12)
    # relu has a kink: quadrature converges slowly, so compare with a large Monte Carlo sample
    rng = np.random.default_rng(0)
    L = np.linalg.cholesky(np.array([[q1, c], [c, q2]]))
    uv = rng.standard_normal((2_000_000, 2)) @ L.T
    prod = np.maximum(uv[:, 0], 0) * np.maximum(uv[:, 1], 0)
    assert abs(gaussian.kernel("relu", q1, q2, c) - prod.mean()) < 4 * prod.std() / np.sqrt(len(prod))
    dprod = (uv[:, 0] > 0) * (uv[:, 1] > 0)
    assert abs(gaussian.dkernel("relu", q1, q2, c) - dprod.mean()) < 4 * dprod.std() / np.sqrt(len(dprod))
    assert np.isclose(gaussian.mean("relu", 2.0), np.sqrt(2.0 / (2 * np.pi)))
