r"""Activations and their closed-form Gaussian expectations.

One place for every Gaussian integral the project uses: the two-layer population dynamics
(the arcsin kernel of erf units, the arc-cosine kernel of relu units), the NNGP/NTK recursions and
the DMFT's initial kernels.

For a centred bivariate Gaussian :math:`(u, v)` with :math:`\mathrm{Var}\,u = q_1`,
:math:`\mathrm{Var}\,v = q_2`, :math:`\mathrm{Cov}(u, v) = c`:

=========  ===========================================================  ===============================================
activation :math:`K(q_1,q_2,c) = E[\sigma(u)\sigma(v)]`                   :math:`\dot K = E[\sigma'(u)\sigma'(v)]`
=========  ===========================================================  ===============================================
linear     :math:`c`                                                     :math:`1`
erf        :math:`\frac{2}{\pi}\arcsin\frac{c}{\sqrt{(1+q_1)(1+q_2)}}`    :math:`\frac{2}{\pi}\frac{1}{\sqrt{(1+q_1)(1+q_2)-c^2}}`
relu       :math:`\frac{1}{2\pi}\big(\sqrt{q_1q_2-c^2}+(\pi-\theta)c\big)`   :math:`\frac{\pi-\theta}{2\pi}`
=========  ===========================================================  ===============================================

with :math:`\cos\theta = c/\sqrt{q_1 q_2}` and erf meaning :math:`\sigma(z)=\mathrm{erf}(z/\sqrt2)`
(so that :math:`\sigma'(z) = \sqrt{2/\pi}\,e^{-z^2/2}`). tanh has no closed form; use
:func:`gauss_hermite_kernel`.

The partial derivatives used by gradient flows are

* erf: :math:`\partial_c K = \frac{2}{\pi}\frac{1}{\sqrt{(1+q_1)(1+q_2)-c^2}}`,
  :math:`\partial_{q_1} K = -\frac{c}{2(1+q_1)}\partial_c K`;
* relu: :math:`\partial_c K = \frac{\pi-\theta}{2\pi}`,
  :math:`\partial_{q_1} K = \frac{\sqrt{q_1q_2-c^2}}{4\pi q_1}`;
* linear: :math:`\partial_c K = 1`, :math:`\partial_{q_1}K = 0`.

References: Williams (1997) for the arcsin kernel; Cho & Saul (2009) for the arc-cosine kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

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
]

_SQRT2 = np.sqrt(2.0)
_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_TWO_OVER_PI = 2.0 / np.pi


def _relu(z):
    return np.maximum(z, 0.0)


def _relu_d1(z):
    return (z > 0).astype(np.result_type(z, np.float32))


def _relu_d2(z):
    return np.zeros_like(z)


def _erf(z):
    return special.erf(z / _SQRT2)


def _erf_d1(z):
    return _SQRT_2_OVER_PI * np.exp(-0.5 * z * z)


def _erf_d2(z):
    return -z * _SQRT_2_OVER_PI * np.exp(-0.5 * z * z)


def _tanh_d1(z):
    t = np.tanh(z)
    return 1.0 - t * t


def _tanh_d2(z):
    t = np.tanh(z)
    return -2.0 * t * (1.0 - t * t)


@dataclass(frozen=True)
class Activation:
    """A scalar activation with its first two derivatives (vectorised over numpy arrays).

    ``closed_form`` says whether :func:`kernel` knows its Gaussian expectation.
    ``odd`` marks sigma(-z) = -sigma(z), which makes antithetic initialisations exact.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    d1: Callable[[np.ndarray], np.ndarray]
    d2: Callable[[np.ndarray], np.ndarray]
    closed_form: bool
    odd: bool

    def __call__(self, z):
        return self.fn(z)


ACTIVATIONS = {
    "linear": Activation("linear", lambda z: z, np.ones_like, np.zeros_like, True, True),
    "relu": Activation("relu", _relu, _relu_d1, _relu_d2, True, False),
    "erf": Activation("erf", _erf, _erf_d1, _erf_d2, True, True),
    "tanh": Activation("tanh", np.tanh, _tanh_d1, _tanh_d2, False, True),
}
CLOSED_FORM = tuple(k for k, v in ACTIVATIONS.items() if v.closed_form)


def get_activation(name: str) -> Activation:
    """Look an activation up by name, with an error that lists the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def _need_closed_form(name):
    if name not in CLOSED_FORM:
        raise ValueError(
            f"activation {name!r} has no closed-form Gaussian kernel (known: {list(CLOSED_FORM)}); "
            "use Monte Carlo expectations or gauss_hermite_kernel"
        )


def kernel_and_grad(name: str, q1, q2, c):
    r"""Return :math:`(K, \partial_{q_1}K, \partial_c K)` elementwise.

    Parameters
    ----------
    name : {'linear', 'erf', 'relu'}
    q1, q2, c : array_like, broadcastable
        Variances of u and v and their covariance; :math:`c^2 \le q_1 q_2` is assumed
        (round-off beyond it is clipped).

    Notes
    -----
    :math:`\partial_{q_2}K` follows by symmetry (swap q1 and q2).
    For relu at :math:`q_1 = 0` the kernel is 0 and its :math:`q_1`-derivative, which is
    unbounded there, is returned as 0 (only reached by an exactly vanishing weight vector).
    """
    _need_closed_form(name)
    q1, q2, c = np.broadcast_arrays(*(np.asarray(v) for v in (q1, q2, c)))
    if name == "linear":
        return c.copy(), np.zeros_like(c), np.ones_like(c)
    if name == "erf":
        p1 = 1.0 + q1
        det = np.maximum(p1 * (1.0 + q2) - c * c, np.finfo(c.dtype).tiny)
        dc = _TWO_OVER_PI / np.sqrt(det)
        s = np.clip(c / np.sqrt(p1 * (1.0 + q2)), -1.0, 1.0)
        k = _TWO_OVER_PI * np.arcsin(s)
        return k, -0.5 * c / p1 * dc, dc
    # relu
    qq = q1 * q2
    det = np.sqrt(np.maximum(qq - c * c, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(qq > 0, c / np.sqrt(qq), 0.0)
        theta = np.arccos(np.clip(rho, -1.0, 1.0))
        k = (det + (np.pi - theta) * c) / (2.0 * np.pi)
        dq1 = np.where(q1 > 0, det / (4.0 * np.pi * q1), 0.0)
    return k, dq1, (np.pi - theta) / (2.0 * np.pi)


def kernel(name: str, q1, q2, c):
    r""":math:`E[\sigma(u)\sigma(v)]` for the centred Gaussian pair described in the module doc."""
    return kernel_and_grad(name, q1, q2, c)[0]


def dkernel(name: str, q1, q2, c):
    r""":math:`E[\sigma'(u)\sigma'(v)]` (the derivative kernel of the NTK recursion)."""
    _need_closed_form(name)
    q1, q2, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q1, q2, c)))
    if name == "linear":
        return np.ones_like(c)
    if name == "erf":
        det = np.maximum((1.0 + q1) * (1.0 + q2) - c * c, np.finfo(float).tiny)
        return _TWO_OVER_PI / np.sqrt(det)
    qq = q1 * q2
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(qq > 0, c / np.sqrt(qq), 0.0)
    return (np.pi - np.arccos(np.clip(rho, -1.0, 1.0))) / (2.0 * np.pi)


def mean_and_grad(name: str, q):
    r"""Return :math:`(m(q), m'(q))` with :math:`m(q) = E[\sigma(u)]`, :math:`u\sim N(0,q)`.

    Odd activations give 0; relu gives :math:`\sqrt{q/(2\pi)}`.
    """
    _need_closed_form(name)
    q = np.asarray(q, dtype=float)
    if name == "relu":
        s = np.sqrt(np.maximum(q, 0.0) / (2.0 * np.pi))
        with np.errstate(divide="ignore"):
            dm = np.where(q > 0, 1.0 / (4.0 * np.pi * np.maximum(s, 1e-300)), 0.0)
        return s, dm
    return np.zeros_like(q), np.zeros_like(q)


def mean(name: str, q):
    r""":math:`E[\sigma(u)]` for :math:`u \sim N(0, q)`."""
    return mean_and_grad(name, q)[0]


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
