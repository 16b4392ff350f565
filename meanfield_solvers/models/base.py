r"""The particle-model protocol: what a mean-field model tells the solvers and the product.

A *particle model* describes a measure over parameters :math:`\theta\in\mathbb R^p`, held as
particles :math:`\mu = \sum_{i=1}^N m_i\,\delta_{\theta_i}` (masses :math:`m_i\ge 0`,
:math:`\sum_i m_i = 1`; ``mass=None`` means the uniform :math:`m_i = 1/N` of a width-N network),
a function :math:`f(x;\mu)` and a risk :math:`R(\mu)` whose expectation over the data is given by
a *data* object (a sample, a population law with closed forms, a model's own target). Its
first variation :math:`\Psi(\theta;\mu)` (the model's scaling of :math:`\delta R/\delta\mu`,
written once in each model's docstring) drives every dynamics the product runs:

* the Wasserstein gradient flow moves particles with the velocity
  :math:`v(\theta;\mu) = -\Lambda\nabla_\theta\Psi(\theta;\mu)` (Λ: the model's per-column
  learning-rate multipliers). Gradient descent on a width-N network with step η is the Euler
  step of this flow at uniform masses: one step advances mean-field time by η at every width;
* reaction (birth–death, Wasserstein–Fisher–Rao) dynamics change masses at a rate built from
  :math:`\Psi(\theta_i;\mu)`;
* noisy (Langevin) dynamics add a diffusion to the same velocity.

Arrays: ``theta`` has shape ``(..., N, p)`` (leading axes batch independent systems, e.g. seeds),
``mass`` ``(..., N)`` or None, samples ``x`` ``(..., M, d)`` shared or batched like ``theta``.
Columns are named (:attr:`ParticleModel.columns`); nothing outside a model's own module relies on
their order: plots, analysis and stored results ask the model (or the stored ``column`` names).

A contributor adds a model by writing one subclass (``experiments/custom_model.py`` shows one
written outside the package through the public API).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

__all__ = ["ParticleModel", "Samples", "UnsupportedData"]


class UnsupportedData(TypeError):
    """A model was handed data it has no expectation for (the message says which and what to use)."""


@dataclass(frozen=True)
class Samples:
    r"""An empirical expectation: :math:`E_x[\cdot]` is the mean over the rows of ``x``.

    Attributes
    ----------
    x : (..., M, d) array
    y : (..., M) array of targets
    loss : str, a name in :data:`meanfield_solvers.losses.LOSSES`
    """

    x: np.ndarray
    y: np.ndarray
    loss: str = "square"


class ParticleModel(abc.ABC):
    """Base class of particle models; see the module docstring for the conventions.

    Subclasses set :attr:`kind` and implement :attr:`columns`, :meth:`output`,
    :meth:`risk_velocity` and :meth:`draw`; :meth:`first_variation` where reaction dynamics
    are wanted. Models are immutable descriptions (the state is the particle array).
    """

    #: short name of the model family (stored in results)
    kind: str = ""
    #: the column group that carries a particle's output weight (its contribution to f is linear in
    #: it), or None: births from a prior can set it to zero so that a birth leaves f unchanged
    output_group = None
    #: :meth:`draw` returns antithetic pairs: rows i and i + n/2 belong together (so subsamples
    #: must keep both, see :meth:`subsample`)
    paired: bool = False

    # ---------------------------------------------------------------- layout
    @property
    @abc.abstractmethod
    def columns(self) -> tuple:
        """Names of the p columns of a particle, e.g. ``("a", "w[0]", "w[1]", "b")``."""

    @property
    def groups(self) -> dict:
        """Named groups of columns, ``name -> slice``; default: one group per column."""
        return {c: slice(i, i + 1) for i, c in enumerate(self.columns)}

    @property
    def energy_scale(self) -> float:
        r"""The factor that makes the risk the energy whose first variation is Ψ (the two-layer network:
        :math:`1/\alpha^2`); the regularised energy is ``energy_scale * R + (λ/2) ∫|θ|² dμ``."""
        return 1.0

    @property
    def lr_multipliers(self) -> np.ndarray:
        r"""Λ, the per-column learning-rate multipliers (p,): the flow is :math:`-\Lambda\nabla\Psi`, and
        weight decay and Langevin noise are preconditioned by the same Λ (decay :math:`-\lambda\Lambda\theta`,
        noise :math:`\sqrt{2\tau}\Lambda^{1/2}dB`) so that the stationary law stays Gibbs. Default: ones."""
        return np.ones(self.p)

    @property
    def plot_columns(self) -> tuple:
        """The two columns a generic particle scatter plot puts on its x and y axes (default: the
        first two)."""
        return tuple(self.columns[:2])

    @property
    def p(self) -> int:
        """Number of columns of a particle."""
        return len(self.columns)

    def column(self, theta, name):
        """View of the named column group of ``theta`` (..., N, p): a one-column group is (..., N),
        a wider one (..., N, k). Unknown names raise a KeyError listing the groups."""
        groups = self.groups
        if name not in groups:
            raise KeyError(f"model {self.kind!r} has no column group {name!r}; it has {sorted(groups)}")
        sl = groups[name]
        return theta[..., sl.start] if sl.stop - sl.start == 1 else theta[..., sl]

    # ---------------------------------------------------------------- the measure's function and risk
    @abc.abstractmethod
    def output(self, backend, theta, x, mass=None):
        r""":math:`f(x;\mu)` at inputs ``x`` (..., Q, d) (or the model's own input format): (..., Q)."""

    @abc.abstractmethod
    def risk_velocity(self, backend, theta, data, mass=None, velocity=True):
        r"""Risk :math:`R(\mu)` (shape ``theta.shape[:-2]``) and the velocity
        :math:`-\Lambda\nabla_\theta\Psi(\theta_i;\mu)` of every particle (like ``theta``, a new
        array), or None when ``velocity`` is false. ``data``: :class:`Samples` or a population
        object the model has closed forms for; anything else raises :class:`UnsupportedData`."""

    def risk_rounding(self, backend, theta, data, mass=None):
        r"""A bound on the rounding error of :meth:`risk_velocity`'s risk over ``data`` (shape
        ``theta.shape[:-2]``), or None when the risk is a mean of non-negative losses (no
        cancellation). A closed form that subtracts large terms returns its bound here; the run
        then never reports a risk below it (README, *Reliability*)."""
        return None

    def first_variation(self, backend, theta, data, mass=None):
        r""":math:`\Psi(\theta_i;\mu)` at every particle, shape (..., N)."""
        raise NotImplementedError(f"model {self.kind!r} does not define its first variation Psi; "
                                  "reaction (birth-death) dynamics need it")

    def supports(self, data) -> str:
        """Why this model cannot take expectations over ``data`` ('' when it can)."""
        return ""

    # ---------------------------------------------------------------- derivatives (optional)
    # The contract of the three VJPs, stated once. They differentiate ONE system (``theta`` (n, p),
    # ``mass`` (n,), None = 1/n; no leading batch axes) with respect to the positions AND the masses,
    # the masses entering only through the measure (f and the expectations), never renormalised.
    # Cotangents carry a leading channel axis C (several outputs in one reverse sweep) and every VJP
    # returns ``(theta_bar (C, n, p), mass_bar (C, n))`` (risk_vjp: one channel, no C axis). They are
    # exact derivatives of what output / risk_velocity compute (tested against finite differences);
    # the discrete adjoint of the integrators (meanfield_solvers.integrators.adjoint) and the
    # fluctuation prediction (docs/fluctuations.md) are built on them.
    def vjp_supports(self, data) -> str:
        """Why the VJPs below cannot run over ``data`` ('' when they can); default: not implemented."""
        return f"model {self.kind!r} does not implement the velocity VJP (ParticleModel.velocity_vjp)"

    def velocity_vjp(self, backend, theta, data, cot, mass=None):
        r"""VJP of :math:`(\theta, m)\mapsto v(\theta_i;\mu)` (risk_velocity's velocity):
        ``cot`` (C, n, p) -> ``(theta_bar, mass_bar)`` (see the contract above)."""
        raise NotImplementedError(self.vjp_supports(data) or f"model {self.kind!r} has no velocity_vjp")

    def output_vjp(self, backend, theta, x, cot, mass=None):
        r"""VJP of :math:`f(x_q;\mu)`: ``cot`` (C, Q) -> ``(theta_bar (C, n, p), mass_bar (C, n))``."""
        raise NotImplementedError(f"model {self.kind!r} has no output_vjp")

    def risk_vjp(self, backend, theta, data, mass=None):
        r"""Gradient of :math:`R(\mu)` over ``data``: ``(theta_bar (n, p), mass_bar (n,))``."""
        raise NotImplementedError(f"model {self.kind!r} has no risk_vjp")

    # ---------------------------------------------------------------- the initial law
    @abc.abstractmethod
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        r"""``n`` iid particles from the initial law :math:`\rho_0` (float64, (n, p)); with
        :attr:`paired`, rows i and i + n/2 are an antithetic pair."""

    def draw_prior(self, rng: np.random.Generator, n: int) -> np.ndarray:
        r"""``n`` iid particles from the model's full-support *prior* (births of the birth–death
        dynamics with births from a prior); default: the initial law ρ₀ (pairs dropped if paired).
        A model whose initial law can be concentrated overrides it with a law of full support."""
        return self.draw(rng, 2 * n)[:n] if self.paired else self.draw(rng, n)

    def subsample(self, particles, n, rng):
        """``n`` rows of ``particles`` without replacement (whole pairs when :attr:`paired`).

        Returns ``(rows, idx)``: the (n, p) copy and the particle indices it was taken from.
        """
        M = particles.shape[0]
        if self.paired:
            idx = rng.choice(M // 2, size=n // 2, replace=False)
            idx = np.concatenate([idx, idx + M // 2])
        else:
            idx = rng.choice(M, size=n, replace=False)
        return particles[idx].copy(), idx
