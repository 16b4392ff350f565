"""Gaussian-units model (Rotskoff, Jelassi, Bruna & Vanden-Eijnden 2019): the closed forms in
experiments/custom_model.py checked against independent computations -- adaptive quadrature
of the defining integrals, finite differences of the energy, Monte Carlo over initial
networks, and the energy-dissipation identity along Euler steps of the flow."""
import importlib.util
import os
import sys

import numpy as np
import pytest
from scipy import integrate, stats

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "experiments", "custom_model.py")
_spec = importlib.util.spec_from_file_location("custom_model", _PATH)
cm = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("custom_model", cm)  # dataclasses look the module up by name
_spec.loader.exec_module(cm)

P = cm.DEFAULT
# A second parameter set: one common target width (the brief's f* form), a narrower unit,
# normal initial laws -- so nothing below is tuned to the defaults.
P2 = cm.UnitsParams(s=0.4, target_centres=(-1.5, 0.5, 2.5, 3.0), target_sd=(0.6,) * 4,
                    target_charges=(0.8, -1.2, 0.5, 0.3), init_y="normal", y_scale=1.5,
                    init_c="normal")
PARAMS = [pytest.param(P, id="paper"), pytest.param(P2, id="alt")]


def _quad(fun, points, lim=40.0):
    """int_R fun with adaptive quadrature, break points at every bump centre."""
    pts = sorted(set(float(p) for p in points if -lim < p < lim))
    val, err = integrate.quad(fun, -lim, lim, points=pts, epsabs=0.0, epsrel=1e-13, limit=500)
    return val


def _phi(x, y, p):
    return np.exp(-(x - y) ** 2 / (2 * p.s2)) / np.sqrt(2 * np.pi * p.s2)


def _fstar(x, p):
    return sum(b * np.exp(-(x - z) ** 2 / (2 * sd * sd)) / np.sqrt(2 * np.pi) / sd
               for z, sd, b in zip(p.target_centres, p.target_sd, p.target_charges))


def _rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("p", PARAMS)
def test_closed_forms_match_quadrature(p):
    """C_f, F, F', K, d_1K equal their defining integrals over R to ~1e-10 relative."""
    z = p.target_centres
    cf = _quad(lambda x: 0.5 * _fstar(x, p) ** 2, z)
    assert _rel(cm.C_f(p), cf) < 1e-10
    for y in (-4.3, -2.0, -0.7, 0.35, 1.9, 3.6, 6.0):
        F = _quad(lambda x: _fstar(x, p) * _phi(x, y, p), list(z) + [y])
        dF = _quad(lambda x: _fstar(x, p) * (x - y) / p.s2 * _phi(x, y, p), list(z) + [y])
        assert _rel(float(cm.potential(y, p)), F) < 1e-10, y
        assert _rel(float(cm.potential_grad(y, p)), dF) < 1e-10, y
    for y, y2 in ((0.0, 0.0), (0.3, -0.4), (1.0, 2.2), (-3.0, -1.1)):
        K = _quad(lambda x: _phi(x, y, p) * _phi(x, y2, p), [y, y2])
        assert _rel(float(cm.interaction(y, y2, p)), K) < 1e-10
        if y != y2:
            dK = _quad(lambda x: (x - y) / p.s2 * _phi(x, y, p) * _phi(x, y2, p), [y, y2])
            assert _rel(float(cm.interaction_grad(y, y2, p)), dK) < 1e-10
    assert _rel(cm.self_energy(p), float(cm.interaction(1.7, 1.7, p))) < 1e-14
    assert float(cm.interaction_grad(1.7, 1.7, p)) == 0.0
    # the vectorised target is the sum of bumps
    xs = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(cm.target(xs, p), _fstar(xs, p), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("p", PARAMS)
@pytest.mark.parametrize("weighted", [False, True])
def test_energy_matches_quadrature(p, weighted):
    """The closed-form E(mu) equals 1/2 int (f(x; mu) - f*(x))^2 dx, for each of a batch of
    random small networks, with uniform or random (Dirichlet) masses."""
    rng = np.random.default_rng(1)
    n, B = 5, 3
    theta = np.stack([rng.normal(0, 1.5, (B, n)), rng.uniform(-3, 3, (B, n))], axis=-1)
    mass = rng.dirichlet(np.ones(n), size=B) if weighted else None
    E = cm.energy(theta, mass, p)
    assert E.shape == (B,)
    for b in range(B):
        m = mass[b] if weighted else None

        def sq(x):
            f = cm.output(theta[b], np.array([x]), m, p)[0]
            return 0.5 * (f - _fstar(x, p)) ** 2

        ref = _quad(sq, list(p.target_centres) + list(theta[b, :, 1]))
        assert _rel(E[b], ref) < 1e-10
    # the output itself is sum_i m_i c_i phi(x; y_i)
    xs = np.linspace(-4, 4, 7)
    m = np.full(n, 1 / n) if mass is None else mass[0]
    direct = (m * theta[0, :, 0] * _phi(xs[:, None], theta[0, :, 1], p)).sum(-1)
    np.testing.assert_allclose(cm.output(theta[0], xs, None if mass is None else mass[0], p), direct,
                               rtol=1e-13)


def _fd_grad(fun, x, h):
    """Central differences of a scalar function of an array."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        g[idx] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("p", PARAMS)
def test_velocity_is_gradient_descent_on_n_times_energy(p):
    """v(theta_i) = -Lambda d(nE)/d theta_i at uniform masses: the width-n GD step with the
    factor n is the Euler step of the flow (checked by central differences of n E)."""
    rng = np.random.default_rng(2)
    n = 6
    theta = cm.draw_initial(rng, n, p)
    theta[:, 0] += rng.normal(0, 0.5, n)  # break the +-1 charges
    lr = (0.7, 1.3)
    fd = _fd_grad(lambda t: n * float(cm.energy(t, None, p)), theta, 1e-5)
    v = cm.velocity(theta, None, lr, p)
    np.testing.assert_allclose(v, -np.array(lr) * fd, rtol=1e-7, atol=1e-9 * np.abs(fd).max())
    # and with masses m_i: dE/dtheta_i = m_i grad Psi(theta_i)
    m = rng.dirichlet(np.ones(n))
    fd = _fd_grad(lambda t: float(cm.energy(t, m, p)), theta, 1e-5)
    g = cm.grad_first_variation(theta, m, p)
    np.testing.assert_allclose(m[:, None] * g, fd, rtol=1e-7, atol=1e-9 * np.abs(fd).max())


@pytest.mark.parametrize("p", PARAMS)
def test_velocity_is_minus_gradient_of_first_variation(p):
    """v(theta') = -Lambda grad_theta' Psi(theta'; mu) with mu frozen, at probe points off the
    particles and at the particles themselves (weighted masses)."""
    rng = np.random.default_rng(3)
    n = 7
    theta = np.stack([rng.normal(0, 1, n), rng.uniform(-2.5, 2.5, n)], axis=-1)
    m = rng.dirichlet(np.ones(n))
    lr = (1.0, 0.4)
    probes = np.concatenate([np.stack([rng.normal(0, 1, 4), rng.uniform(-4, 4, 4)], -1), theta[:2]])
    v = cm.velocity(theta, m, lr, p, at=probes)
    h = 1e-5
    for k, pr in enumerate(probes):
        g = _fd_grad(lambda q: float(cm.first_variation(theta, m, p, at=q[None])[0]), pr, h)
        np.testing.assert_allclose(v[k], -np.array(lr) * g, rtol=1e-7, atol=1e-10)
    # at=None evaluates at the particles
    np.testing.assert_allclose(cm.velocity(theta, m, lr, p), cm.velocity(theta, m, lr, p, at=theta),
                               rtol=0, atol=0)


@pytest.mark.parametrize("p", PARAMS)
def test_first_variation_is_directional_derivative(p):
    """d/de E((1-e) mu + e delta_theta)|_{e=0} = Psi(theta) - int Psi dmu.  E is quadratic in
    the masses, so the central difference is exact up to rounding."""
    rng = np.random.default_rng(4)
    n = 6
    theta = np.stack([rng.normal(0, 1, n), rng.uniform(-3, 3, n)], axis=-1)
    m = rng.dirichlet(np.ones(n))
    psi_bar = float(np.sum(m * cm.first_variation(theta, m, p)))
    probes = [np.array([0.8, -1.2]), np.array([-1.5, 2.1]), np.array([0.3, 5.0]), theta[3].copy()]
    eps = 1e-3
    for q in probes:
        def E(e):
            th = np.concatenate([theta, q[None]], axis=0)
            return float(cm.energy(th, np.append((1 - e) * m, e), p))
        fd = (E(eps) - E(-eps)) / (2 * eps)
        psi = float(cm.first_variation(theta, m, p, at=q[None])[0])
        assert abs(fd - (psi - psi_bar)) < 1e-10 * max(1.0, abs(psi)), (q, fd, psi - psi_bar)


@pytest.mark.parametrize("p", PARAMS)
def test_expected_initial_energy_monte_carlo(p):
    """E[E_n(0)] = C_f + K(0)/(2n) for n iid units from rho_0: Monte Carlo means within 4
    standard errors at n = 2, 8, 32 (and far from the alternatives C_f and C_f + K(0)/n), and
    the log-log slope of E[E_n(0)] - C_f against n is -1 within 3 of its standard errors."""
    rng = np.random.default_rng(5)
    M = 20000
    ns = np.array([2, 8, 32])
    cf, k0 = cm.C_f(p), cm.self_energy(p)
    means, ses = [], []
    for n in ns:
        e = cm.energy(cm.draw_initial(rng, int(n), p, size=(M,)), None, p)
        mean, se = e.mean(), e.std(ddof=1) / np.sqrt(M)
        ref = cm.expected_initial_energy(int(n), p)
        assert ref == pytest.approx(cf + k0 / (2 * n), rel=1e-15)
        assert abs(mean - ref) < 4 * se, (n, mean, ref, se)
        assert abs(mean - cf) > 8 * se and abs(mean - (cf + k0 / n)) > 8 * se  # the test has power
        means.append(mean)
        ses.append(se)
    excess = np.array(means) - cf
    sig = np.array(ses) / excess  # standard error of log(excess)
    w = 1 / sig ** 2
    X = np.log(ns)
    xb = np.sum(w * X) / w.sum()
    slope = np.sum(w * (X - xb) * np.log(excess)) / np.sum(w * (X - xb) ** 2)
    slope_se = 1 / np.sqrt(np.sum(w * (X - xb) ** 2))
    assert slope_se < 0.05
    assert abs(slope + 1) < 3 * slope_se, (slope, slope_se)


@pytest.mark.parametrize("p", PARAMS)
def test_initial_law(p):
    """draw_initial samples rho_0: c independent of y, E[c] = 0, E[c^2] = 1, y from the stated
    law (KS test), so the mean-field output at t = 0 vanishes."""
    rng = np.random.default_rng(6)
    th = cm.draw_initial(rng, 50, p, size=(400,))
    assert th.shape == (400, 50, 2)
    c, y = th[..., 0].ravel(), th[..., 1].ravel()
    N = c.size
    assert abs(c.mean()) < 4 / np.sqrt(N)
    assert abs((c ** 2).mean() - 1) < 4 * np.sqrt(2 / N)
    if p.init_c == "rademacher":
        assert set(np.unique(c)) == {-1.0, 1.0}
    law = (stats.uniform(-p.y_scale, 2 * p.y_scale) if p.init_y == "uniform" else stats.norm(0, p.y_scale))
    assert stats.kstest(y, law.cdf).pvalue > 1e-3
    assert abs(np.corrcoef(c, y)[0, 1]) < 4 / np.sqrt(N)
    # average output over all 20000 units: zero up to its Monte Carlo error at each x
    xs = np.linspace(-3, 3, 7)
    f = cm.output(th.reshape(1, -1, 2), xs, None, p)[0]
    sd = np.sqrt(np.mean(_phi(xs[:, None], y[None, :], p) ** 2 * (c ** 2)[None, :], axis=1) / N)
    assert np.all(np.abs(f) < 4 * sd)


@pytest.mark.parametrize("weighted", [False, True])
def test_euler_flow_dissipates_energy(weighted):
    """Euler steps of the velocity decrease E monotonically, and dE/dt = -D with
    D = sum_i m_i |Lambda^{1/2} grad Psi(theta_i)|^2: exactly in the step direction (central
    differences), and along the trajectory with the first-order Euler error (halves with dt)."""
    p = P
    rng = np.random.default_rng(7)
    n = 16
    theta0 = cm.draw_initial(rng, n, p)
    m = rng.dirichlet(np.ones(n)) if weighted else None
    lr = (1.0, 0.5)

    def run(dt, T=3.0):
        th = theta0.copy()
        Es, Ds = [float(cm.energy(th, m, p))], []
        for _ in range(int(round(T / dt))):
            Ds.append(float(cm.dissipation(th, m, lr, p)))
            th = th + dt * cm.velocity(th, m, lr, p)
            Es.append(float(cm.energy(th, m, p)))
        return np.array(Es), np.array(Ds), th

    Es, Ds, _ = run(0.01)
    assert np.all(np.diff(Es) < 0)
    assert Es[-1] < 0.5 * Es[0]  # the flow does real work here, the check is not vacuous
    # instantaneous identity at a few states along the path
    th = theta0.copy()
    for k in range(60):
        v = cm.velocity(th, m, lr, p)
        if k % 20 == 0:
            d = 1e-5
            dEdt = (float(cm.energy(th + d * v, m, p)) - float(cm.energy(th - d * v, m, p))) / (2 * d)
            D = float(cm.dissipation(th, m, lr, p))
            assert abs(dEdt + D) < 1e-7 * D
        th = th + 0.05 * v
    # integrated identity E(T) - E(0) = -int D dt, Euler error O(dt)
    errs = []
    for dt in (0.02, 0.01):
        Es, Ds, _ = run(dt)
        errs.append((Es[-1] - Es[0]) + dt * Ds.sum())
    drop = Es[0] - Es[-1]
    assert abs(errs[1]) < 0.02 * drop
    assert 1.7 < errs[0] / errs[1] < 2.3


def test_batch_axis_and_chunking(monkeypatch):
    """A batch of measures evaluates as each measure alone, and the chunked pair sums (forced
    by a tiny MAX_PAIR_ELEMENTS) agree with the one-shot ones."""
    rng = np.random.default_rng(8)
    th = cm.draw_initial(rng, 9, P, size=(2, 3))
    m = rng.dirichlet(np.ones(9), size=(2, 3))
    xs = np.linspace(-3, 3, 13)
    E, V, Psi, f = (cm.energy(th, m), cm.velocity(th, m, (1, 2)), cm.first_variation(th, m),
                    cm.output(th, xs, m))
    assert E.shape == (2, 3) and V.shape == (2, 3, 9, 2) and Psi.shape == (2, 3, 9) and f.shape == (2, 3, 13)
    for i in np.ndindex(2, 3):
        assert E[i] == pytest.approx(float(cm.energy(th[i], m[i])), rel=1e-14)
        np.testing.assert_allclose(V[i], cm.velocity(th[i], m[i], (1, 2)), rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(f[i], cm.output(th[i], xs, m[i]), rtol=1e-13, atol=1e-16)
    monkeypatch.setattr(cm, "MAX_PAIR_ELEMENTS", 20)
    np.testing.assert_allclose(cm.energy(th, m), E, rtol=1e-14)
    np.testing.assert_allclose(cm.velocity(th, m, (1, 2)), V, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(cm.output(th, xs, m), f, rtol=1e-13, atol=1e-16)
