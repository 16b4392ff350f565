"""The two-layer model's VJPs (velocity, output, risk; positions AND masses) against central finite
differences of the model's own forward code, by the dot-product test <cot, J delta> = <J^T cot, delta>
(docs/fluctuations.md, step 1). Relative agreement 1e-6 (measured: 1e-11 .. 1e-8)."""
import zlib

import numpy as np
import pytest

from meanfield_solvers.models import GaussianPopulation, Samples, TwoLayer, UnsupportedData
from meanfield_solvers.particles.backends.numpy_backend import NumpyBackend

BE = NumpyBackend()
EPS = 1e-5
TOL = 1e-6


def _point(model, rng, n=7):
    th = model.draw(rng, n)
    th[:, 0] += 0.3
    return th, rng.uniform(0.5, 1.5, n) / n, rng.standard_normal((n, model.p)), rng.standard_normal(n) / n


def _rel(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(a))


def _check_all(model, data, rng):
    th, m, dth, dm = _point(model, rng)
    cot = rng.standard_normal((3,) + th.shape)
    gt, gm = model.velocity_vjp(BE, th, data, cot, m)
    vp = model.risk_velocity(BE, th + EPS * dth, data, mass=m + EPS * dm)[1]
    vm = model.risk_velocity(BE, th - EPS * dth, data, mass=m - EPS * dm)[1]
    fd = np.einsum("cnp,np->c", cot, (vp - vm) / (2 * EPS))
    assert _rel(fd, np.einsum("cnp,np->c", gt, dth) + gm @ dm) < TOL
    t, mm = model.risk_vjp(BE, th, data, m)
    rp = model.risk_velocity(BE, th + EPS * dth, data, mass=m + EPS * dm, velocity=False)[0]
    rm = model.risk_velocity(BE, th - EPS * dth, data, mass=m - EPS * dm, velocity=False)[0]
    assert _rel(np.atleast_1d((rp - rm) / (2 * EPS)), np.atleast_1d(np.sum(t * dth) + mm @ dm)) < TOL
    x = rng.standard_normal((4, model.d))
    cq = rng.standard_normal((2, 4))
    t, mm = model.output_vjp(BE, th, x, cq, m)
    fd = cq @ ((model.output(BE, th + EPS * dth, x, mass=m + EPS * dm)
                - model.output(BE, th - EPS * dth, x, mass=m - EPS * dm)) / (2 * EPS))
    assert _rel(fd, np.einsum("cnp,np->c", t, dth) + mm @ dm) < TOL


@pytest.mark.parametrize("act", ["erf", "tanh", "linear"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("loss", ["square", "logistic"])
def test_samples_vjp_matches_finite_differences(act, bias, loss):
    rng = np.random.default_rng(zlib.crc32(f"{act}{bias}{loss}".encode()))
    d = 3
    model = TwoLayer(act, d, alpha=1.3, bias=bias, lr_a=0.7, lr_w=1.2, lr_b=0.9, b_std=0.5)
    x = rng.standard_normal((11, d))
    y = np.sin(x[:, 0]) if loss == "square" else np.sign(x[:, 0])
    _check_all(model, Samples(x, y, loss), rng)


@pytest.mark.parametrize("act", ["erf", "linear"])
def test_population_vjp_matches_finite_differences(act):
    """Two mixture components with different scales and a teacher: every pair, self and teacher term."""
    rng = np.random.default_rng(3)
    d = 3
    model = TwoLayer(act, d, alpha=1.3, lr_a=0.7, lr_w=1.2)
    pop = GaussianPopulation(np.array([0.4, 0.6]), np.array([0.8, 1.2]), np.zeros(2),
                             rng.standard_normal((2, d)) / np.sqrt(d), rng.standard_normal((2, 2)), act)
    _check_all(model, pop, rng)


def test_channels_are_independent_and_uniform_mass_is_default():
    """A channel block gives the same rows as one channel at a time; mass=None is the 1/n measure."""
    rng = np.random.default_rng(5)
    model = TwoLayer("erf", 2)
    th = model.draw(rng, 6)
    x = rng.standard_normal((9, 2))
    data = Samples(x, np.cos(x[:, 1]))
    cot = rng.standard_normal((4, 6, 3))
    t, m = model.velocity_vjp(BE, th, data, cot)
    t1, m1 = model.velocity_vjp(BE, th, data, cot[2:3], np.full(6, 1 / 6))
    np.testing.assert_allclose(t[2:3], t1, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m[2:3], m1, rtol=1e-13, atol=1e-15)


def test_unsupported_data_is_refused_with_the_reason():
    model = TwoLayer("relu", 2)
    x = np.ones((3, 2))
    with pytest.raises(UnsupportedData, match="not smooth"):
        model.velocity_vjp(BE, model.draw(np.random.default_rng(0), 4), Samples(x, x[:, 0]), np.zeros((1, 4, 3)))
    pop = GaussianPopulation(np.ones(1), np.ones(1), np.zeros(1), np.zeros((0, 2)), np.zeros((1, 0)), "relu")
    assert "second partials" in model.vjp_supports(pop)
