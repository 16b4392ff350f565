r"""The two-layer mean-field velocity field, in both expectation modes.

Model and scaling
-----------------
A neuron is :math:`\theta_i = (a_i, w_i, b_i)` stored as a row ``[a, w_1..w_d, (b)]`` of an array
``theta`` of shape (..., N, p), p = 1 + d (+1 with bias); leading axes batch independent
networks (seeds). The network is

.. math::  f(x) = \frac{\alpha}{N}\sum_{i=1}^N a_i\,\sigma(w_i\cdot x + b_i).

With a loss :math:`\ell(y, f)` and residual :math:`r = -\partial_f \ell` (square loss:
:math:`r = y - f`), the risk is :math:`R = E\,\ell(y, f(x))` and the particles move by

.. math::
    \dot\theta_i = \frac{N}{\alpha^2}\,\Lambda\,(-\nabla_{\theta_i} R)
                 = \frac{1}{\alpha}\,\Lambda\, E\big[r(x)\,\nabla_\theta\, a_i\sigma(w_i\cdot x+b_i)\big],

:math:`\Lambda = \mathrm{diag}(\lambda_a, \lambda_w I_d, \lambda_b)` per-group learning-rate
multipliers (:math:`\lambda_a = 0` freezes the output weights). For :math:`\alpha = 1` this is the
Wasserstein gradient flow :math:`\dot\theta = -\nabla_\theta\Psi(\theta;\mu_t)` of Mei–Montanari–
Nguyen (2018) and Chizat–Bach (2018) at the empirical measure of the particles. Large
:math:`\alpha` with the objective scaled by :math:`1/\alpha^2` is the lazy regime of
Chizat–Oyallon–Bach (2019), on the same time axis.

Expectation modes
-----------------
* :func:`mc_risk_velocity`: :math:`E` is an average over given samples (x, y).
* :func:`population_risk_velocity`: exact population expectations for inputs drawn from a
  mixture of centred isotropic Gaussians :math:`x\sim\sum_k\pi_k N(0, s_k^2 I_d)` and targets
  :math:`y = \sum_m c_{km}\sigma_\star(v_m\cdot x) + y_{0k} + \varepsilon` (component k), which
  covers the teacher–student task (one component, s = 1, :math:`y_0 = 0`) and the isotropic
  Gaussians classification of Mei–Montanari–Nguyen (two components, :math:`s = 1\pm\Delta`,
  :math:`y_0 = \pm 1`, no teacher). Square loss, no bias, and the student's activation equal to the
  teacher's (so that every cross term is a closed-form kernel of :mod:`meanfield_solvers.gaussian`):

  .. math::
      R = \tfrac12 E[y^2] - \frac{\alpha}{N}\sum_i a_i\,T_i
          + \frac{\alpha^2}{2N^2}\sum_{ij} a_i a_j\,\bar K_{ij},

  with :math:`T_i = E[y\,\sigma(w_i\cdot x)]` and
  :math:`\bar K_{ij} = E[\sigma(w_i\cdot x)\sigma(w_j\cdot x)]`; the velocity follows by
  differentiating in the first slot. Cost O(N² d) per evaluation through the backend's pairwise
  kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import gaussian
from ..losses import LOSSES, loss_and_residual
from ..fused import fused_for
from .base import ParticleModel, Samples, UnsupportedData

__all__ = [
    "TwoLayer",
    "GaussianPopulation",
    "LOSSES",
    "loss_and_residual",
    "mc_risk_velocity",
    "population_risk_velocity",
]


@dataclass(frozen=True)
class TwoLayer(ParticleModel):
    r"""The two-layer network as a particle model (no state: the state is ``theta``).

    A particle is the row ``[a, w[0] .. w[d-1], (b)]`` of ``theta`` (..., N, p), p = 1 + d (+1 with
    bias); :attr:`columns` names them and :meth:`column` reads the groups ``"a"``, ``"w"``,
    ``"b"``. With masses :math:`m_i` (``mass``; None = 1/N) the output is
    :math:`f(x) = \alpha\sum_i m_i a_i\sigma(w_i\cdot x + b_i)`, the first variation of
    :math:`R/\alpha^2` is :math:`\Psi(\theta;\mu) = -\tfrac1\alpha E[r(x)\,a\,\sigma(w\cdot x+b)]`
    and the velocity :math:`-\Lambda\nabla_\theta\Psi` (see the module docstring).

    Attributes
    ----------
    activation : str
        Name in :data:`meanfield_solvers.gaussian.ACTIVATIONS`.
    d : int
        Input dimension.
    alpha : float
        Output scale α (1: mean field; large: lazy).
    bias : bool
        Whether neurons carry a bias column.
    lr_a, lr_w, lr_b : float
        Learning-rate multipliers λ per parameter group; 0 freezes a group.
    a_init, a_std, a_value, w_std, b_std, antithetic :
        The initial law ρ₀ (:meth:`draw`): :math:`a\sim N(0, a_{std}^2)` (``a_init = "gaussian"``)
        or :math:`a = a_{value}` (``"constant"``), :math:`w\sim N(0, w_{std}^2 I_d/d)`,
        :math:`b\sim N(0, b_{std}^2)`; ``antithetic`` draws pairs (a, w, b), (−a, w, b).
    """

    activation: str
    d: int
    alpha: float = 1.0
    bias: bool = False
    lr_a: float = 1.0
    lr_w: float = 1.0
    lr_b: float = 1.0
    a_init: str = "gaussian"
    a_std: float = 1.0
    a_value: float = 1.0
    w_std: float = 1.0
    b_std: float = 0.0
    antithetic: bool = False

    kind = "two_layer"
    output_group = "a"

    @property
    def paired(self) -> bool:  # type: ignore[override]
        return self.antithetic

    @property
    def columns(self) -> tuple:
        return ("a",) + tuple(f"w[{j}]" for j in range(self.d)) + (("b",) if self.bias else ())

    @property
    def groups(self) -> dict:
        g = {"a": slice(0, 1), "w": slice(1, 1 + self.d)}
        if self.bias:
            g["b"] = slice(1 + self.d, 2 + self.d)
        return g

    @property
    def p(self) -> int:
        """Number of columns of a neuron row."""
        return 1 + self.d + int(self.bias)

    @property
    def energy_scale(self) -> float:
        """1/α²: Ψ is the first variation of R/α²."""
        return 1.0 / (self.alpha * self.alpha)

    @property
    def lr_multipliers(self) -> np.ndarray:
        """Λ = (λ_a, λ_w (d times), λ_b with bias)."""
        return np.array([self.lr_a] + [self.lr_w] * self.d + ([self.lr_b] if self.bias else []), dtype=float)

    def split(self, theta):
        """Views ``(a, w, b)`` of shapes (..., N), (..., N, d), (..., N) or None."""
        a = theta[..., 0]
        w = theta[..., 1 : 1 + self.d]
        b = theta[..., 1 + self.d] if self.bias else None
        return a, w, b

    def weighted(self, theta, mass):
        r"""``(a_eff, coef)`` with :math:`f = \mathrm{coef}\sum_i a_{\mathrm{eff},i}\sigma_i`:
        ``(a, α/N)`` for uniform masses (the historical operation order), ``(a m, α)`` otherwise."""
        a = theta[..., 0]
        if mass is None:
            return a, self.alpha / theta.shape[-2]
        return a * mass, self.alpha

    def output(self, backend, theta, x, mass=None):
        """Network output f on samples x (..., M, d): shape (..., M)."""
        _, w, b = self.split(theta)
        a, coef = self.weighted(theta, mass)
        return backend.mc_forward(self.activation, x, w, b, a, coef)

    def risk_velocity(self, backend, theta, data, mass=None, velocity=True):
        """Risk and velocity over ``data``: :class:`Samples` (any loss) or a
        :class:`GaussianPopulation` (closed forms). See :func:`mc_risk_velocity` and
        :func:`population_risk_velocity`."""
        if isinstance(data, Samples):
            return mc_risk_velocity(self, backend, theta, data.x, data.y, data.loss, velocity, mass=mass)
        if isinstance(data, GaussianPopulation):
            return population_risk_velocity(self, backend, theta, data, velocity, mass=mass)
        raise UnsupportedData(f"the two-layer model takes expectations over Samples or a GaussianPopulation, "
                              f"not {type(data).__name__}")

    def risk_rounding(self, backend, theta, data, mass=None):
        r"""Rounding-error bound of the closed-form population risk (None over :class:`Samples`).

        The closed form :math:`R = \tfrac12E y^2 - E[yf] + \tfrac12E f^2` subtracts terms that are each
        bounded by :math:`B = \tfrac12(\lVert y\rVert + \sum_i c\,|a_i|\,\lVert\sigma_i\rVert)^2`
        (Minkowski in :math:`L^2` of the input law; :math:`f = c\sum_i a_i\sigma(w_i\cdot x)`,
        :math:`\lVert\sigma_i\rVert^2 = \sum_k \pi_k E_k[\sigma(w_i\cdot x)^2]` from the activation's
        kernel on the diagonal). Each pairwise kernel value is off by at most
        :math:`r\lVert\sigma_i\rVert\lVert\sigma_j\rVert` (the activation's ``kernel_rounding``:
        16ε for erf/linear, :math:`2\sqrt{2\varepsilon}/\pi` for relu, whose
        :math:`\sqrt{q_1q_2-c^2}` loses half the digits for parallel neurons), so the quadratic
        terms are off by at most :math:`2rB`; the M² summed terms add about
        :math:`4\varepsilon\sqrt{M+1}\,B`. The bound returned is the sum. In the lazy regime (large
        ``alpha``) B grows like α² while R stays O(1): the bound says when the closed form has lost
        its precision (measured: relu, antithetic init, α = 1e6, M = 32: error 0.116, bound 4.3e3;
        α = 1: error 1.2e-13, bound 1.7e-8; erf, α = 1e6: error 7.3e-7, bound 1.5e-3).
        """
        if not isinstance(data, GaussianPopulation):
            return None
        _, w, _ = self.split(theta)
        a, k = self.weighted(theta, mass)
        q = np.einsum("...id,...id->...i", w, w)
        sq = np.zeros_like(q)
        for pi, s in zip(data.weights, data.scales):
            v = s * s * q
            sq = sq + pi * gaussian.kernel(self.activation, v, v, v)
        norm_f = k * np.einsum("...i,...i->...", np.abs(a), np.sqrt(np.maximum(sq, 0.0)))
        B = 0.5 * (np.sqrt(data.target_second_moment(backend)) + norm_f) ** 2
        eps = float(np.finfo(theta.dtype).eps if np.issubdtype(theta.dtype, np.floating) else np.finfo(float).eps)
        r = gaussian.get_activation(self.activation).kernel_rounding(eps)
        return (2.0 * r + 4.0 * eps * np.sqrt(theta.shape[-2] + 1.0)) * B

    def supports(self, data) -> str:
        if isinstance(data, GaussianPopulation):
            if self.bias:
                return "analytic expectations need bias = false (no closed form with biases)"
            if self.activation != data.activation:
                return (f"analytic expectations need the teacher's activation ({data.activation}) "
                        f"to equal the student's ({self.activation})")
            return ""
        if isinstance(data, Samples):
            return ""
        return f"no expectation over {type(data).__name__}"

    # ---------------------------------------------------------------- VJPs (contract: ParticleModel)
    def vjp_supports(self, data) -> str:
        from .two_layer_vjp import vjp_obstacle

        return vjp_obstacle(self, data)

    def velocity_vjp(self, backend, theta, data, cot, mass=None):
        """VJP of the velocity in positions and masses (:mod:`meanfield_solvers.models.two_layer_vjp`)."""
        from . import two_layer_vjp as V

        why = V.vjp_obstacle(self, data)
        if why:
            raise UnsupportedData(why)
        if isinstance(data, Samples):
            return V.mc_velocity_vjp(self, np.asarray(theta, float), data.x, data.y, data.loss, cot, mass)
        return V.population_velocity_vjp(self, backend, np.asarray(theta, float), data, cot, mass)

    def output_vjp(self, backend, theta, x, cot, mass=None):
        from .two_layer_vjp import output_vjp

        return output_vjp(self, np.asarray(theta, float), x, cot, mass)

    def risk_vjp(self, backend, theta, data, mass=None):
        from . import two_layer_vjp as V

        why = V.vjp_obstacle(self, data)
        if why:
            raise UnsupportedData(why)
        return V.risk_vjp(self, backend, np.asarray(theta, float), data, mass)

    def first_variation(self, backend, theta, data, mass=None):
        r""":math:`\Psi(\theta_i;\mu) = -\tfrac1\alpha a_i E[r(x)\sigma(w_i\cdot x+b_i)]`, shape (..., N)."""
        if isinstance(data, Samples):
            ga = _mc_expectations(self, backend, theta, data.x, data.y, data.loss, mass)[1]
        elif isinstance(data, GaussianPopulation):
            ga = _population_expectations(self, backend, theta, data, mass, True)[1]
        else:
            raise UnsupportedData(f"the two-layer model has no first variation over {type(data).__name__}")
        return -(theta[..., 0] * ga) / self.alpha

    def draw(self, rng, n):
        """Draw ``n`` neurons as rows ``[a, w, (b)]``; float64, shape (n, p)."""
        half = n // 2 if self.antithetic else n
        d = self.d
        th = np.empty((half, self.p))
        if self.a_init == "gaussian":
            th[:, 0] = self.a_std * rng.standard_normal(half)
        else:
            th[:, 0] = self.a_value
        th[:, 1 : 1 + d] = (self.w_std / np.sqrt(d)) * rng.standard_normal((half, d))
        if self.bias:
            th[:, 1 + d] = self.b_std * rng.standard_normal(half)
        if self.antithetic:
            mirror = th.copy()
            mirror[:, 0] *= -1.0
            th = np.concatenate([th, mirror])
        return th

    def velocity_scales(self):
        """``(ka, kw, kb)``: the velocity rows are ``[ka g^a_i, kw a_i g^w_i, kb a_i g^b_i]``."""
        s = 1.0 / self.alpha
        return (s * self.lr_a, s * self.lr_w, s * self.lr_b if self.bias else 0.0)

    def assemble(self, theta, ga, gw, gb):
        r"""Velocity from the expectations :math:`E[r\sigma]`, :math:`E[r\sigma' x]`, :math:`E[r\sigma']`."""
        a = theta[..., 0]
        v = np.empty_like(theta)
        s = 1.0 / self.alpha
        # written in place: one pass over the (…, N, d) block, no temporaries of its size
        np.multiply(ga, s * self.lr_a, out=v[..., 0])
        np.multiply(gw, ((s * self.lr_w) * a)[..., None], out=v[..., 1 : 1 + self.d])
        if self.bias:
            np.multiply(gb, (s * self.lr_b) * a, out=v[..., 1 + self.d])
        return v


def mc_risk_velocity(model: TwoLayer, backend, theta, x, y, loss: str = "square", velocity=True, mass=None):
    """Risk and velocity with expectations replaced by averages over samples.

    Parameters
    ----------
    theta : (..., N, p) array
    x : (..., M, d) array, shared or batched like ``theta``
    y : (..., M) array
    mass : (..., N) particle masses or None (uniform 1/N)

    Returns
    -------
    risk : (...) array
    v : (..., N, p) array, or None when ``velocity`` is false
    """
    _, w, b = model.split(theta)
    a, coef = model.weighted(theta, mass)
    both = getattr(backend, "mc_forward_backward", None)
    if velocity and both is not None:
        # optional fused entry of the protocol: the backend may keep the activations between passes,
        # and a backend registered for this model (see meanfield_solvers.particles.backends.fused_for) writes the
        # velocity rows itself; with masses the rows need the unweighted a, so the model assembles them
        rows = model.velocity_scales() if mass is None and fused_for(backend, model, "velocity_rows") else None
        if loss == "square":
            f, ga, gw, gb, v = both(model.activation, x, w, b, a, coef, "square", y, velocity=rows)
            r = y - f
            risk = 0.5 * np.mean(r * r, axis=-1)
            if v is not None:
                return risk, v.astype(theta.dtype, copy=False)
        else:
            held = []

            def residual(f):
                lval, r = loss_and_residual(loss, y, f)
                held.append(lval)
                return r

            _, ga, gw, gb, _ = both(model.activation, x, w, b, a, coef, residual)
            risk = held[0].mean(axis=-1)
        return risk, model.assemble(theta, ga, gw, gb)
    risk, ga, gw, gb = _mc_expectations(model, backend, theta, x, y, loss, mass, velocity)
    if not velocity:
        return risk, None
    return risk, model.assemble(theta, ga, gw, gb)


def _mc_expectations(model, backend, theta, x, y, loss, mass, grads=True):
    r"""Risk and :math:`E[r\sigma_i]`, :math:`E[r\sigma_i' x]`, :math:`E[r\sigma_i']` over samples."""
    _, w, b = model.split(theta)
    a, coef = model.weighted(theta, mass)
    f = backend.mc_forward(model.activation, x, w, b, a, coef)
    lval, r = loss_and_residual(loss, y, f)
    risk = lval.mean(axis=-1)
    if not grads:
        return risk, None, None, None
    ga, gw, gb = backend.mc_backward(model.activation, x, w, b, r)
    return (risk, ga, gw, gb)


@dataclass(frozen=True)
class GaussianPopulation:
    r"""A population law with closed-form expectations (see the module docstring).

    Attributes
    ----------
    weights : (K,) mixture weights π_k (sum to 1)
    scales : (K,) input standard deviations s_k
    offsets : (K,) constant targets y_{0k}
    teacher_w : (m, d) teacher neurons v_m (m may be 0)
    teacher_c : (K, m) teacher output coefficients per component
    activation : str, the teacher's activation (must equal the student's)
    noise_var : float, variance of additive label noise ε
    """

    weights: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray
    teacher_w: np.ndarray
    teacher_c: np.ndarray
    activation: str
    noise_var: float = 0.0
    _ey2: list = field(default_factory=list, repr=False, compare=False)

    def target_second_moment(self, backend) -> float:
        r""":math:`E[y^2]`, computed once and cached."""
        if not self._ey2:
            total = self.noise_var
            for pi, s, y0, c in zip(self.weights, self.scales, self.offsets, self.teacher_c):
                e = y0 * y0
                if self.teacher_w.shape[0]:
                    F, _ = backend.pairwise(self.activation, self.teacher_w, self.teacher_w, c, s * s)
                    q = s * s * np.einsum("md,md->m", self.teacher_w, self.teacher_w)
                    e += float(c @ F) + 2.0 * y0 * float(c @ gaussian.mean(self.activation, q))
                total += pi * e
            self._ey2.append(float(total))
        return self._ey2[0]


def population_risk_velocity(model: TwoLayer, backend, theta, pop: GaussianPopulation, velocity=True, mass=None):
    """Exact population risk (½ square loss) and velocity; shapes as in :func:`mc_risk_velocity`."""
    risk, ga, gw = _population_expectations(model, backend, theta, pop, mass, velocity)
    if not velocity:
        return risk, None
    return risk, model.assemble(theta, ga, gw, None)


def _population_expectations(model, backend, theta, pop, mass, grads):
    r"""Population risk and :math:`E[r\sigma_i]`, :math:`E[r\sigma_i' x]` in closed form."""
    why = model.supports(pop)
    if why:
        raise ValueError(why)
    _, w, _ = model.split(theta)
    a, k = model.weighted(theta, mass)
    risk = np.full(theta.shape[:-2], 0.5 * pop.target_second_moment(backend), dtype=theta.dtype)
    ga = np.zeros_like(a)
    gw = np.zeros_like(w)
    q = np.einsum("...id,...id->...i", w, w)
    for pi, s, y0, c in zip(pop.weights, pop.scales, pop.offsets, pop.teacher_c):
        s2 = s * s
        Fs, Gs = backend.pairwise(model.activation, w, w, a, s2)
        T = np.zeros_like(a)
        Tg = np.zeros_like(w)
        if pop.teacher_w.shape[0]:
            T, Tg = backend.pairwise(model.activation, w, pop.teacher_w, c, s2)
        if y0 != 0.0:
            m, dm = gaussian.mean_and_grad(model.activation, s2 * q)
            T = T + y0 * m
            Tg = Tg + (2.0 * s2 * y0 * dm)[..., None] * w
        risk += pi * (-k * np.einsum("...i,...i->...", a, T) + 0.5 * k * k * np.einsum("...i,...i->...", a, Fs))
        if grads:
            ga += pi * (T - k * Fs)
            gw += pi * (Tg - k * Gs)
    return risk, ga, gw


#: public names of the expectation helpers, for the model's derivatives (:mod:`.two_layer_vjp`)
mc_expectations = _mc_expectations
population_expectations = _population_expectations
