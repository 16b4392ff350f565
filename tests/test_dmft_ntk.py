"""Lazy (gamma0 -> 0) limit: NNGP/NTK recursions at t = 0 and the Euler kernel flow."""
import numpy as np
import pytest

from meanfield_solvers import gaussian
from meanfield_solvers.dmft import init_kernels, kernel_flow, solve_ntk


def _data(P=4, D=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((P, D)), rng.standard_normal(P)


def test_linear_recursion_is_input_kernel():
    """phi = id: Phi^l = Phi^0, Phidot = 1, G^l = 1 and K0 = (L+1) Phi^0 exactly (docs/dmft.md §5d)."""
    X, _ = _data()
    ker = init_kernels(X, 3, "linear")
    Phi0 = X @ X.T / X.shape[1]
    for l in range(4):
        np.testing.assert_allclose(ker.Phi[l], Phi0, rtol=0, atol=1e-14)
    for l in range(1, 5):
        np.testing.assert_allclose(ker.G[l], 1.0, rtol=0, atol=0)
    np.testing.assert_allclose(ker.K, 4 * Phi0, rtol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "erf", "relu"])
def test_recursion_matches_monte_carlo_of_the_recursion(activation):
    """Each layer's E[phi(u)phi(u)^T], E[phi'(u)phi'(u)^T] (closed form or Gauss–Hermite) equals a
    2e5-sample Monte Carlo of u ~ N(0, Phi^{l-1}) to 5 standard errors (catches any factor-2 or
    erf(z) vs erf(z/sqrt 2) convention slip)."""
    X, _ = _data(P=3)
    L = 2
    ker = init_kernels(X, L, activation)
    act = gaussian.get_activation(activation)
    rng = np.random.default_rng(1)
    S = 200_000
    for l in range(1, L + 1):
        C = np.linalg.cholesky(ker.Phi[l - 1] + 1e-12 * np.eye(3))
        u = C @ rng.standard_normal((3, S))
        for est, exact in ((act.fn(u), ker.Phi[l]), (act.d1(u), ker.Phidot[l])):
            prods = est[:, None, :] * est[None, :, :]
            mc, se = prods.mean(-1), prods.std(-1) / np.sqrt(S)
            assert np.all(np.abs(mc - exact) <= 5 * se + 1e-12), (l, mc, exact)
    np.testing.assert_allclose(ker.G[L], ker.Phidot[L])
    np.testing.assert_allclose(ker.G[1], ker.Phidot[1] * ker.Phidot[2])
    np.testing.assert_allclose(ker.K, ker.Phi[0] * ker.G[1] + ker.Phi[1] * ker.G[2] + ker.Phi[2])


def test_kernel_flow_is_exact_euler_solution():
    """Static K: Delta[k] = (I - dt/P K_tt)^k y on training points, and test points follow
    f_test = K_qt K_tt^{-1} f_train (both exact for the Euler recursion)."""
    X, y = _data(P=3)
    Xq = np.random.default_rng(5).standard_normal((2, X.shape[1]))
    res = solve_ntk(X, y, L=2, dt=0.3, T=25, activation="erf", X_test=Xq)
    K = res.kernels.K
    Ktt, Kqt = K[:3, :3], K[3:, :3]
    step = np.eye(3) - 0.3 / 3 * Ktt
    for k in (0, 1, 7, 25):
        np.testing.assert_allclose(y - res.f[k, :3], np.linalg.matrix_power(step, k) @ y, atol=1e-12)
        np.testing.assert_allclose(res.f[k, 3:], Kqt @ np.linalg.solve(Ktt, res.f[k, :3]), atol=1e-10)
    np.testing.assert_allclose(res.loss, 0.5 * np.mean((y - res.f[:, :3]) ** 2, axis=1))


def test_kernel_flow_time_dependent_kernel_uses_left_point():
    """A time-dependent K uses K[k] on the step k -> k+1 (left-point rule, as in the DMFT)."""
    y = np.array([1.0, -2.0])
    K = np.stack([np.eye(2) * (1 + k) for k in range(4)])
    f = kernel_flow(K, y, dt=0.1, T=3)
    g = np.zeros(2)
    for k in range(3):
        g = g + 0.1 / 2 * (1 + k) * (y - g)
        np.testing.assert_allclose(f[k + 1], g, rtol=1e-15)
