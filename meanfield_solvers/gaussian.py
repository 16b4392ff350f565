r"""Closed-form Gaussian expectations of activations, by activation name, and quadrature.

The definitions (σ, its derivatives, and each activation's closed forms, with the formulas)
live in the registry :mod:`meanfield_solvers.activations`; the functions here look an activation up by
name and evaluate its closed form, raising
:class:`~meanfield_solvers.activations.MissingClosedForm` when it has none (e.g. tanh: use
:func:`gauss_hermite_kernel` or Monte Carlo). They are used by the two-layer population
dynamics, the NNGP/NTK recursions and the DMFT's initial kernels.

For a centred bivariate Gaussian :math:`(u, v)` with :math:`\mathrm{Var}\,u = q_1`,
:math:`\mathrm{Var}\,v = q_2`, :math:`\mathrm{Cov}(u, v) = c`:
:math:`K(q_1,q_2,c) = E[\sigma(u)\sigma(v)]`, :math:`\dot K = E[\sigma'(u)\sigma'(v)]`,
:math:`m(q) = E\,\sigma(u)`.
"""
from __future__ import annotations

import numpy as np

from . import activations as _reg
from .activations import ACTIVATIONS, Activation, get_activation

__all__ = [
    "Activation",
    "ACTIVATIONS",
    "get_activation",
    "CLOSED_FORM",
    "kernel",
    "kernel_and_grad",
    "dkernel",
    "mean",
    "mean_and_grad",
    "gauss_hermite_kernel",
    "trapezoid_pair_row",
]


def __getattr__(name):
    # CLOSED_FORM stays live: activations registered later appear in it
    if name == "CLOSED_FORM":
        return _reg.closed_form_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kernel_and_grad(name: str, q1, q2, c):
    r"""Return :math:`(K, \partial_{q_1}K, \partial_c K)` elementwise.

    Parameters
    ----------
    name : str
        A registered activation with a closed-form kernel (built in: linear, erf, relu).
    q1, q2, c : array_like, broadcastable
        Variances of u and v and their covariance; :math:`c^2 \le q_1 q_2` is assumed
        (round-off beyond it is clipped).

    Notes
    -----
    :math:`\partial_{q_2}K` follows by symmetry (swap q1 and q2).
    For relu at :math:`q_1 = 0` the kernel is 0 and its :math:`q_1`-derivative, which is
    unbounded there, is returned as 0 (only reached by an exactly vanishing weight vector).
    """
    return _reg.closed_form(name, "kernel_and_grad")(q1, q2, c)


def kernel(name: str, q1, q2, c):
    r""":math:`E[\sigma(u)\sigma(v)]` for the centred Gaussian pair described in the module doc."""
    return kernel_and_grad(name, q1, q2, c)[0]


def dkernel(name: str, q1, q2, c):
    r""":math:`E[\sigma'(u)\sigma'(v)]` (the derivative kernel of the NTK recursion)."""
    return _reg.closed_form(name, "dkernel")(q1, q2, c)


def mean_and_grad(name: str, q):
    r"""Return :math:`(m(q), m'(q))` with :math:`m(q) = E[\sigma(u)]`, :math:`u\sim N(0,q)`.

    Odd activations give 0; relu gives :math:`\sqrt{q/(2\pi)}`.
    """
    return _reg.closed_form(name, "mean_and_grad")(q)


def mean(name: str, q):
    r""":math:`E[\sigma(u)]` for :math:`u \sim N(0, q)`."""
    return mean_and_grad(name, q)[0]


def trapezoid_pair_row(f, g, q1, q2, c, h: float, Z: float = 9.0):
    r""":math:`E[f(u)g(v)]` for one u-variance ``q1`` against arrays ``q2``, ``c`` (one row of a matrix).

    With :math:`u = s_1z_1`, :math:`v = \beta z_1 + \gamma z_2` (:math:`s_1 = \sqrt{q_1}`,
    :math:`\beta = c/s_1`, :math:`\gamma^2 = q_2 - \beta^2`), the double integral against the
    standard normal density is the tensor trapezoid rule of step ``h`` on :math:`[-Z, Z]^2`. For
    integrands analytic in the strip :math:`|\mathrm{Im}\,z| < d` the error decays like
    :math:`e^{-2\pi d/h}` (plus the :math:`e^{-Z^2/2}` tail), and for an activation with poles at
    distance :math:`\pi/2` from the real axis (tanh, sech²) :math:`d = \pi/(2\max(s_1, s_2))`: the
    step must shrink like :math:`1/\sqrt q`, whereas a Gauss–Hermite rule of order n has node spacing
    about :math:`\pi/\sqrt{2n}` near 0 and needs an order growing like q (80 nodes reach only 1e-5 at
    q = 5). Returns an array of the shape of ``q2``.
    """
    z = h * np.arange(-int(np.ceil(Z / h)), int(np.ceil(Z / h)) + 1)
    w = h * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)
    q2, c = np.broadcast_arrays(np.asarray(q2, dtype=float), np.asarray(c, dtype=float))
    s1 = float(np.sqrt(max(float(q1), 0.0)))
    beta = c / s1 if s1 > 0 else np.zeros_like(c)
    gamma = np.sqrt(np.maximum(q2 - beta * beta, 0.0))
    fu = f(s1 * z) * w
    v = beta[..., None, None] * z[:, None] + gamma[..., None, None] * z[None, :]
    return np.einsum("...ij,i,j->...", g(v), fu, w)


def gauss_hermite_kernel(f, g, q1, q2, c, order: int = 64):
    r""":math:`E[f(u)g(v)]` for a centred Gaussian pair by tensor Gauss–Hermite quadrature.

    Works for any activation (tanh included). Exact for polynomials of degree < 2*order in each
    variable; for smooth activations the error decays faster than any power of the order.
    Arguments broadcast; the quadrature is evaluated elementwise.
    """
    x, wts = np.polynomial.hermite_e.hermegauss(order)  # weight exp(-x^2/2)
    wts = wts / np.sqrt(2.0 * np.pi)
    q1, q2, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, c)))
    s1 = np.sqrt(np.maximum(q1, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(s1 > 0, c / np.where(s1 > 0, s1, 1.0), 0.0)  # v = beta*z1 + gamma*z2
    gamma = np.sqrt(np.maximum(q2 - beta * beta, 0.0))
    u = s1[..., None, None] * x[:, None]
    v = beta[..., None, None] * x[:, None] + gamma[..., None, None] * x[None, :]
    return np.einsum("...ij,i,j->...", f(u) * g(v), wts, wts)
