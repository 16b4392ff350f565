r"""Residual networks at infinite width and t = 0: NNGP/NTK recursion, closed forms, depth ODE.

Network (docs/residual.md §1): L hidden layers of width N, L − 1 residual blocks with branch multiplier
:math:`b` (depth-muP: :math:`b = \beta/\sqrt L`), weights iid :math:`N(0,1)`,

.. math::
    h^1 = W^0x/\sqrt D,\qquad h^{\ell+1} = h^\ell + b\,W^\ell\phi(h^\ell)/\sqrt N\ (\ell=1..L-1),\qquad
    f = w\cdot\phi(h^L)/(\gamma_0N).

Recursion (docs/residual.md §2). At :math:`N\to\infty`, :math:`h^\ell` is Gaussian with covariance
:math:`H^\ell` over the points, :math:`\Phi^\ell = E_{N(0,H^\ell)}[\phi\phi^\top]`,
:math:`\dot\Phi^\ell = E_{N(0,H^\ell)}[\phi'\phi'^\top]`:

.. math::
    H^1 = \Phi^0 = XX^\top/D,\quad H^{\ell+1} = H^\ell + b^2\Phi^\ell,\qquad
    G^L = \dot\Phi^L,\quad G^\ell = G^{\ell+1}\odot(1 + b^2\dot\Phi^\ell),

    K_0 = \Phi^L + b^2\sum_{\ell=1}^{L-1}G^{\ell+1}\odot\Phi^\ell + G^1\odot\Phi^0 .

Closed forms for positively homogeneous :math:`\phi` on the diagonal (:math:`E\phi^2 = aq`,
:math:`E\phi'^2 = c`; linear: a = c = 1 on every entry; relu: a = c = ½ on the diagonal):

.. math:: K_0 = (1+ab^2)^{L-2}\,q\,[(a+c)(1+ab^2) + (L-1)\,a c\,b^2].

Depth ODE (:math:`b = \beta/\sqrt L`, :math:`\tau=\ell/L`, :math:`L\to\infty`):

.. math::
    \frac{dH}{d\tau} = \beta^2\Phi(H),\ H(0) = \Phi^0;\qquad
    G(\tau) = \dot\Phi(H(1))\odot\exp\Big(\beta^2\int_\tau^1\dot\Phi(H(s))\,ds\Big);

    K_\infty = \Phi(1) + \beta^2\int_0^1 G\odot\Phi\,d\tau + G(0)\odot\Phi^0,

with the linear closed form :math:`K_\infty = (2+\beta^2)e^{\beta^2}\Phi^0` and the relu diagonal
:math:`e^{\beta^2/2}q(1+\beta^2/4)`. The recursion approaches the ODE at :math:`O(1/L)` (its sums are
left Riemann sums of the integrals and :math:`(1+\beta^2/L)^L = e^{\beta^2}(1 + O(1/L))`).

At b = 0 (or L = 1) the recursion is :func:`meanfield_solvers.dmft.ntk.init_kernels` of the one-layer
network (tested).
"""
from __future__ import annotations

import numpy as np

from .. import gaussian
from .ntk import InitKernels, NTKResult, kernel_flow, train_loss
from .ntk import pair_expectation  # closed forms, else the checked quadrature

__all__ = ["residual_init_kernels", "residual_depth_limit", "residual_ntk_closed_form",
           "residual_ntk_depth_limit_closed_form", "solve_residual_ntk"]


def residual_init_kernels(X, L: int, branch: float, activation: str = "tanh") -> InitKernels:
    r"""Infinite-width kernels of a residual network at initialisation (the recursion of the module doc).

    Parameters
    ----------
    X : (n_pts, D) array — all points
    L : int ≥ 1 — hidden layers (L − 1 residual blocks)
    branch : float — branch multiplier b (depth-muP: :math:`\beta/\sqrt L`)
    activation : a registered activation

    Returns
    -------
    InitKernels
        ``Phi[l]`` = :math:`\Phi^\ell` (l = 0..L), ``Phidot[l]`` (l ≥ 1), ``G[l]`` (l = 1..L+1, ``G[L+1]`` = 1),
        ``K``. (The pre-activation covariances :math:`H^\ell` are not stored; :math:`\Phi^\ell` are.)
    """
    if L < 1:
        raise ValueError(f"need at least one hidden layer, got L={L}")
    act = gaussian.get_activation(activation)
    X = np.asarray(X, dtype=float)
    n, D = X.shape
    b2 = float(branch) ** 2
    Phi = np.empty((L + 1, n, n))
    Phidot = np.full((L + 1, n, n), np.nan)
    Phi[0] = X @ X.T / D
    H = Phi[0].copy()
    for l in range(1, L + 1):
        Phi[l] = pair_expectation(act, "fn", H)
        Phidot[l] = pair_expectation(act, "d1", H)
        H = H + b2 * Phi[l]
    G = np.full((L + 2, n, n), np.nan)
    G[L + 1] = 1.0
    G[L] = Phidot[L]
    for l in range(L - 1, 0, -1):
        G[l] = G[l + 1] * (1.0 + b2 * Phidot[l])
    K = Phi[L] + G[1] * Phi[0]
    for l in range(1, L):
        K = K + b2 * G[l + 1] * Phi[l]
    return InitKernels(Phi=Phi, Phidot=Phidot, G=G, K=K)


def residual_ntk_closed_form(q, L: int, branch: float, activation: str):
    r"""Closed-form :math:`K_0` on the diagonal (relu) or for every entry (linear, with ``q`` = :math:`\Phi^0`).

    ``q`` : array of input second moments :math:`x\cdot x/D` (relu) or the input kernel (linear).
    """
    a, c = {"linear": (1.0, 1.0), "relu": (0.5, 0.5)}[activation]
    b2 = float(branch) ** 2
    if L == 1:
        return (a + c) * np.asarray(q, dtype=float)
    return (1 + a * b2) ** (L - 2) * np.asarray(q, dtype=float) * ((a + c) * (1 + a * b2) + (L - 1) * a * c * b2)


def residual_ntk_depth_limit_closed_form(q, beta: float, activation: str):
    r""":math:`\lim_{L\to\infty}K_0` at :math:`b = \beta/\sqrt L`: linear :math:`(2+\beta^2)e^{\beta^2}q`, relu diagonal
    :math:`e^{\beta^2/2}q(1+\beta^2/4)`."""
    a, c = {"linear": (1.0, 1.0), "relu": (0.5, 0.5)}[activation]
    B = float(beta) ** 2
    return np.exp(a * B) * np.asarray(q, dtype=float) * (a + c + a * c * B)


def residual_depth_limit(X, beta: float, activation: str = "tanh", steps: int = 400) -> InitKernels:
    r"""The :math:`L\to\infty` kernels of depth-muP residual networks at initialisation (depth ODE).

    RK4 in :math:`\tau` with ``steps`` steps on the augmented forward system

    .. math::
        \dot H = \beta^2\Phi(H),\quad \dot I = \dot\Phi(H),\quad
        \dot J = e^{-\beta^2 I}\odot\Phi(H),\qquad H(0)=\Phi^0,\ I(0)=J(0)=0,

    so that :math:`G(\tau) = \dot\Phi(H(1))\odot e^{\beta^2(I(1)-I(\tau))}` and
    :math:`\int_0^1G\odot\Phi = \dot\Phi(H(1))\odot e^{\beta^2I(1)}\odot J(1)` (Hadamard products commute).
    Fourth order in 1/steps; the default leaves ~1e-12 relative error for smooth φ.

    Returns
    -------
    InitKernels with depth 1 in the layout of :func:`residual_init_kernels`: ``Phi[0]`` = :math:`\Phi^0`,
    ``Phi[1]`` = :math:`\Phi(1)`, ``Phidot[1]`` = :math:`\dot\Phi(1)`, ``G[1]`` = :math:`G(0)`, ``G[2]`` = 1,
    ``K`` = :math:`K_\infty`.
    """
    act = gaussian.get_activation(activation)
    X = np.asarray(X, dtype=float)
    n, D = X.shape
    B = float(beta) ** 2
    P0 = X @ X.T / D

    def rhs(H, I):
        Ph = pair_expectation(act, "fn", H)
        return B * Ph, pair_expectation(act, "d1", H), np.exp(-B * I) * Ph

    H, I, J = P0.copy(), np.zeros((n, n)), np.zeros((n, n))
    h = 1.0 / steps
    for _ in range(steps):
        k1 = rhs(H, I)
        k2 = rhs(H + 0.5 * h * k1[0], I + 0.5 * h * k1[1])
        k3 = rhs(H + 0.5 * h * k2[0], I + 0.5 * h * k2[1])
        k4 = rhs(H + h * k3[0], I + h * k3[1])
        H = H + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        I = I + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        J = J + h / 6 * (k1[2] + 2 * k2[2] + 2 * k3[2] + k4[2])
    Phi1 = pair_expectation(act, "fn", H)
    Pd1 = pair_expectation(act, "d1", H)
    G0 = Pd1 * np.exp(B * I)
    K = Phi1 + B * G0 * J + G0 * P0
    nan = np.full((n, n), np.nan)
    return InitKernels(Phi=np.stack([P0, Phi1]), Phidot=np.stack([nan, Pd1]),
                       G=np.stack([nan, G0, np.ones((n, n))]), K=K)


def solve_residual_ntk(X, y, L: int, branch: float, dt: float, T: int, activation: str = "tanh",
                       X_test=None) -> NTKResult:
    r"""γ₀ → 0 limit of a residual network: frozen residual NTK at initialisation and Euler kernel flow
    on ``t = dt * arange(T+1)`` (as :func:`meanfield_solvers.dmft.ntk.solve_ntk`)."""
    Xall = X if X_test is None else np.concatenate([X, X_test], axis=0)
    ker = residual_init_kernels(Xall, L, branch, activation)
    f = kernel_flow(ker.K, y, dt, T)
    return NTKResult(t=dt * np.arange(T + 1), f=f, loss=train_loss(f, y), kernels=ker)
