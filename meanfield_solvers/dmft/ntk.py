r"""The lazy (:math:`\gamma_0 \to 0`) limit: NNGP/NTK recursions at initialisation and kernel flow.

Conventions (project-wide): inputs :math:`x_\mu \in \mathbb R^D`, :math:`L` hidden layers, weights iid
:math:`N(0,1)`, :math:`h^1 = W^0 x/\sqrt D`, :math:`h^{\ell+1} = W^\ell\phi(h^\ell)/\sqrt N`,
:math:`f = w\cdot\phi(h^L)/(\gamma_0 N)`, loss :math:`\frac1P\sum_\mu \frac12 (y_\mu-f_\mu)^2`,
:math:`d\theta/dt = -\gamma_0^2 N\nabla\hat L`.

At :math:`t=0` and :math:`N\to\infty` (docs/dmft.md §5d)

.. math::

    \Phi^0 = XX^\top/D,\qquad
    \Phi^\ell = E_{u\sim N(0,\Phi^{\ell-1})}[\phi(u)\phi(u)^\top],\qquad
    \dot\Phi^\ell = E[\phi'(u)\phi'(u)^\top],

    G^{L+1} = 1,\qquad G^\ell = G^{\ell+1}\odot\dot\Phi^\ell,\qquad
    K_0 = \sum_{\ell=0}^{L} G^{\ell+1}\odot\Phi^\ell .

There is no factor 2 (as in He-initialised NTK conventions): weights are :math:`N(0,1)` and every
layer divides by :math:`\sqrt{\text{fan-in}}`. The pairwise Gaussian integrals come from
:mod:`meanfield_solvers.activations` (an activation's closed forms where it has them, as linear/relu/erf;
otherwise a trapezoid rule whose step is chosen from the variances and checked against half of it to
``QUAD_TOL``, as for tanh: :func:`_quadrature_matrix`, docs/dmft.md §5e).

As :math:`\gamma_0\to0` the kernels freeze and the outputs follow the kernel flow. On the grid
:math:`t_k = k\,dt` the discrete DMFT reduces exactly to the forward-Euler flow

.. math::  f[k+1] = f[k] + \frac{dt}{P} K_0[:, \text{train}]\,\Delta[k],\qquad
           \Delta[k] = y - f_{\text{train}}[k],\quad f[0]=0,

so comparing a DMFT solve with :func:`kernel_flow` at the same ``dt`` carries no time-step error
(the DMFT deviation is :math:`O(\gamma_0^2)`).

References
----------
Bordelon & Pehlevan (2022), *Self-Consistent Dynamical Field Theory of Kernel Evolution in Wide
Neural Networks*, arXiv:2205.09653 (the :math:`\gamma_0\to0` limit, their §4).
Jacot, Gabriel & Hongler (2018), *Neural Tangent Kernel*.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import gaussian

__all__ = ["InitKernels", "NTKResult", "init_kernels", "kernel_flow", "pair_expectation", "solve_ntk",
           "train_loss"]

#: accuracy the quadrature of activations without a closed form is checked to (step h against h/2)
QUAD_TOL = 1e-12
#: initial trapezoid step in units of the largest standard deviation: s_max h = 0.3 puts the rule's
#: error exp(-pi^2/(s_max h)) near 1e-14 for tanh-like poles at distance pi/2 (gaussian.trapezoid_pair_row)
QUAD_SPACING = 0.3
#: the most nodes per dimension before the quadrature gives up
QUAD_MAX_NODES = 4097


class QuadratureNotConverged(ValueError):
    """The pair expectations of an activation without closed form did not converge (step h vs h/2)."""


@dataclass(frozen=True)
class InitKernels:
    r"""NNGP/NTK quantities at :math:`t=0` for ``n_pts`` points.

    Attributes
    ----------
    Phi : (L+1, n_pts, n_pts)
        ``Phi[l]`` is :math:`\Phi^\ell`, l = 0..L (``Phi[0] = XX^T/D``).
    Phidot : (L+1, n_pts, n_pts)
        ``Phidot[l]`` is :math:`\dot\Phi^\ell` for l = 1..L; index 0 is NaN (undefined).
    G : (L+2, n_pts, n_pts)
        ``G[l]`` is :math:`G^\ell` for l = 1..L+1 (``G[L+1]`` all ones); index 0 is NaN.
    K : (n_pts, n_pts)
        The NTK :math:`K_0=\sum_{\ell=0}^L G^{\ell+1}\odot\Phi^\ell`.
    """

    Phi: np.ndarray
    Phidot: np.ndarray
    G: np.ndarray
    K: np.ndarray

    @property
    def depth(self) -> int:
        return self.Phi.shape[0] - 1


def pair_expectation(act, which, Q):
    """E[a(u)a(v)] for all pairs of a Gaussian vector with covariance Q; a = act.fn or act.d1.

    The activation's closed form (``kernel_and_grad`` for fn, ``dkernel`` for d1) when it has
    one, otherwise :func:`_quadrature_matrix`.
    """
    q = np.diag(Q)
    closed = act.kernel_and_grad if which == "fn" else act.dkernel
    if closed is not None:
        out = closed(q[:, None], q[None, :], Q)
        if which == "fn":
            out = out[0]
    else:
        out = _quadrature_matrix(act.fn if which == "fn" else act.d1, Q, f"{act.name} ({which})")
    return 0.5 * (out + out.T)


def _quadrature_matrix(f, Q, name="activation"):
    r"""E[f(u_m)f(u_n)] for all pairs by the trapezoid rule, with a step chosen from the variances
    and checked against half that step.

    The step starts at ``QUAD_SPACING / s_max`` (:math:`s_{max}^2` the largest variance, capped at
    0.5). The row of the largest variance holds the pairs with the narrowest analyticity strip (the
    rule's error depends on the pair through :math:`\max(s_1, s_2)`, see
    :func:`meanfield_solvers.gaussian.trapezoid_pair_row`); it is recomputed at half the step and the
    step is halved until the two agree to ``QUAD_TOL``. The whole matrix is then computed at the
    accepted step. Raises :class:`QuadratureNotConverged` beyond ``QUAD_MAX_NODES`` nodes per axis
    (an activation that is not smooth enough, or variances too large).
    """
    q = np.maximum(np.diag(Q), 0.0)
    top = int(np.argmax(q))
    s_max = float(np.sqrt(q[top]))
    h = min(0.5, QUAD_SPACING / s_max) if s_max > 0 else 0.5
    row = gaussian.trapezoid_pair_row(f, f, q[top], q, Q[top], h)
    while True:
        finer = gaussian.trapezoid_pair_row(f, f, q[top], q, Q[top], h / 2)
        gap = float(np.max(np.abs(finer - row)))
        if gap <= QUAD_TOL:
            break
        h /= 2
        row = finer
        if 18.0 / h + 1 > QUAD_MAX_NODES:
            raise QuadratureNotConverged(
                f"the Gaussian pair expectations of {name} did not converge (trapezoid step h against h/2 still "
                f"differ by {gap:.2e} > {QUAD_TOL:g} at {int(18 / h) + 1} nodes per axis; largest variance "
                f"{q[top]:.4g}): normalise the inputs (|x|^2/D of order 1) or use an activation with a closed form")
    out = np.empty_like(Q)
    for m in range(Q.shape[0]):  # row by row keeps the (n, nodes, nodes) work array small
        out[m] = row if m == top else gaussian.trapezoid_pair_row(f, f, q[m], q, Q[m], h)
    return out


def init_kernels(X, L: int, activation: str = "tanh") -> InitKernels:
    r"""NNGP kernels, derivative kernels, backward kernels and NTK at initialisation.

    Parameters
    ----------
    X : (n_pts, D) array
        All points (train and test); ``Phi[0] = X X^T / D``.
    L : int
        Number of hidden layers (≥ 1).
    activation : str
        A registered activation (:mod:`meanfield_solvers.activations`); ``erf`` means
        :math:`\mathrm{erf}(z/\sqrt2)`.

    Returns
    -------
    InitKernels
    """
    if L < 1:
        raise ValueError(f"need at least one hidden layer, got L={L}")
    act = gaussian.get_activation(activation)
    X = np.asarray(X, dtype=float)
    n_pts, D = X.shape
    Phi = np.empty((L + 1, n_pts, n_pts))
    Phidot = np.full((L + 1, n_pts, n_pts), np.nan)
    Phi[0] = X @ X.T / D
    for l in range(1, L + 1):
        Phi[l] = pair_expectation(act, "fn", Phi[l - 1])
        Phidot[l] = pair_expectation(act, "d1", Phi[l - 1])
    G = np.full((L + 2, n_pts, n_pts), np.nan)
    G[L + 1] = 1.0
    for l in range(L, 0, -1):
        G[l] = G[l + 1] * Phidot[l]
    K = sum(G[l + 1] * Phi[l] for l in range(L + 1))
    return InitKernels(Phi=Phi, Phidot=Phidot, G=G, K=K)


def kernel_flow(K, y, dt: float, T: int, f0=None):
    r"""Forward-Euler kernel gradient flow of the outputs on the DMFT's time grid.

    .. math::  f[k+1] = f[k] + \frac{dt}{P}\,K(t_k)[:, \text{train}]\,(y - f_{\text{train}}[k])

    Parameters
    ----------
    K : (n_pts, n_pts) or (T+1, n_pts, n_pts) array
        A static kernel, or one per time step (only ``K[0..T-1]`` are used).
    y : (P,) array
        Targets of the first ``P`` points (the training points); the others are test points.
    dt : float
    T : int
        Number of steps; the output has ``T+1`` times.
    f0 : (n_pts,) array, optional
        Initial outputs (default 0, the infinite-width value).

    Returns
    -------
    f : (T+1, n_pts) array
    """
    K = np.asarray(K, dtype=float)
    y = np.asarray(y, dtype=float)
    P = y.shape[0]
    n_pts = K.shape[-1]
    f = np.zeros((T + 1, n_pts))
    if f0 is not None:
        f[0] = f0
    for k in range(T):
        Kk = K if K.ndim == 2 else K[k]
        f[k + 1] = f[k] + dt / P * (Kk[:, :P] @ (y - f[k, :P]))
    return f


def train_loss(f, y):
    r""":math:`\hat L(t) = \frac1P\sum_{\mu\le P}\frac12(y_\mu - f_\mu(t))^2` for ``f`` of shape (T+1, n_pts)."""
    y = np.asarray(y, dtype=float)
    return 0.5 * np.mean((y[None, :] - f[:, : y.shape[0]]) ** 2, axis=1)


@dataclass(frozen=True)
class NTKResult:
    r"""Lazy-limit trajectory on the grid ``t = dt * arange(T+1)``.

    Attributes
    ----------
    t : (T+1,)
    f : (T+1, n_pts)   outputs (train points first, then test points)
    loss : (T+1,)      training loss
    kernels : InitKernels (frozen kernels, K the NTK)
    """

    t: np.ndarray
    f: np.ndarray
    loss: np.ndarray
    kernels: InitKernels


def solve_ntk(X, y, L: int, dt: float, T: int, activation: str = "tanh", X_test=None) -> NTKResult:
    r"""The :math:`\gamma_0\to0` solution: frozen NTK at initialisation and Euler kernel flow.

    Parameters
    ----------
    X : (P, D) array
        Training inputs.
    y : (P,) array
        Targets.
    L : int
        Network depth (hidden layers, see :func:`init_kernels`).
    dt : float
        Time step.
    T : int
        Number of steps.
    activation : str
        A registered activation (see :func:`init_kernels`).
    X_test : (Q, D) array, optional
        Extra points that carry no loss.

    Returns
    -------
    NTKResult
    """
    Xall = X if X_test is None else np.concatenate([X, X_test], axis=0)
    ker = init_kernels(Xall, L, activation)
    f = kernel_flow(ker.K, y, dt, T)
    return NTKResult(t=dt * np.arange(T + 1), f=f, loss=train_loss(f, y), kernels=ker)
