r"""Parametrisations of the deep network: small objects in a registry (``model.parametrisation``).

A parametrisation turns the iid :math:`N(0,1)` weights of :class:`~meanfield.deep.network.DeepNet`
into a network and a flow by fixing, for a network of depth L, input dimension D and width N, one
forward scale :math:`s_\ell` and one learning-rate multiplier :math:`c_\ell` per weight group
(:math:`W^0\in\mathbb R^{N\times D}`, :math:`W^\ell\in\mathbb R^{N\times N}`, readout :math:`w`):

.. math::
    h^1 = s_0 W^0x,\quad h^{\ell+1} = [h^\ell +]\; s_\ell W^\ell\phi(h^\ell),\quad f = s_L\,w\cdot\phi(h^L),
    \qquad \frac{dW^\ell}{dt} = -c_\ell\nabla_{W^\ell}\hat L,

and a discrete step of size :math:`\eta` (``train.lr``) is :math:`W\leftarrow W-\eta c\nabla\hat L`.
The three registered parametrisations (README, "Parametrisations and residual networks"):

============  ==================  =====================  ===========================  ====================
name          s_0, s_ℓ            s_L (readout)          c_ℓ (every group)            limit methods
============  ==================  =====================  ===========================  ====================
``mup``       1/√D, 1/√N          1/(γ₀N)                γ₀²N                         dmft, dmft_linear, ntk
``ntk``       1/√D, 1/√N          1/(γ₀√N)               γ₀²                          ntk
``standard``  1/√D, 1/√N          1/(γ₀√N)               fan-in (D for W⁰, else N)    none
============  ==================  =====================  ===========================  ====================

* **muP** (mean field, Yang & Hu 2021; docs/dmft.md §1): the feature-learning limit at fixed
  :math:`\gamma_0` is the DMFT; ``ntk`` is admitted as its :math:`\gamma_0\to0` reference.
* **NTK parametrisation** (Jacot et al. 2018) is muP with :math:`\gamma = \gamma_0/\sqrt N`
  (check: :math:`1/(\gamma N) = 1/(\gamma_0\sqrt N)`, :math:`\gamma^2N = \gamma_0^2`), hence lazy as N
  grows at fixed :math:`\gamma_0`: its limit is the kernel flow with the initial NTK (``ntk``), the same
  K as muP's at t = 0; only the initial outputs differ, :math:`f(0)\sim GP(0,\Phi^L/\gamma_0^2)`, whose
  seed mean is zero, so seed means follow the ``ntk`` flow.
* **Standard** (what practitioners write): stored weights :math:`W'^\ell = s_\ell W^\ell\sim N(0, 1/\text{fan-in})`
  trained by plain GD at one global rate :math:`\eta` on :math:`W'`. Since
  :math:`\nabla_{W} = s\nabla_{W'}` and :math:`\dot W = \dot W'/s`, that is :math:`c_\ell = 1/s_\ell^2 =`
  fan-in in our convention. :math:`\gamma_0` is an output multiplier (default 1). The NTK grows ∝ N, so
  no width-independent step exists and no limit is admitted (``limit.method = 'none'``).

Adam (``train.optimizer = 'adam'``, :mod:`meanfield.deep.optim`): Adam normalises each gradient entry,
so its step size per entry, :math:`\eta a_\ell`, is what a parametrisation must scale. Each declares
:math:`a_\ell` (``adam_rates``; docs/residual.md §4): muP :math:`a_0 = \gamma_0/\sqrt D`,
:math:`a_\ell = \gamma_0/\sqrt N`, :math:`a_L = \gamma_0` (Yang et al. 2022, Tensor Programs V, Table 3/8:
hidden matrices at Adam rate ∝ 1/fan-in, vectors unscaled, as ``mup.MuAdam``); ``ntk`` the same at
:math:`\gamma = \gamma_0/\sqrt N`; ``standard`` one global rate on the stored weights,
:math:`a_\ell = \sqrt{\text{fan-in}}`. Residual blocks multiply the hidden rate by :math:`\beta L^{\kappa-1}`.

Residual networks (every parametrisation): ``residual = True`` gives
:math:`h^{\ell+1} = h^\ell + b_L\,s_\ell W^\ell\phi(h^\ell)` for ℓ = 1..L−1 (L − 1 blocks) with branch
multiplier :math:`b_L = \beta/L^\kappa` (``branch_scale`` β, ``branch_exponent`` κ; κ = ½ is depth-muP,
Bordelon et al. 2023 / Yang et al. 2023; κ = 0 has no depth limit). The multiplier is an explicit factor
in :math:`s_\ell`, not folded into the initial variance, so the learning rates :math:`c_\ell` stay those of
the table (folding it in would make the same rate L times larger on the blocks: not depth-muP).

The backward fields :math:`g^\ell = \text{g\_scale}\cdot\partial f/\partial h^\ell` are O(1) at
initialisation in every parametrisation (g_scale = :math:`\gamma_0N` in muP, :math:`\gamma_0\sqrt N` otherwise),
so the recorded gradient kernels :math:`G^\ell = gg^\top/N` are comparable across parametrisations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LayerScales", "Parametrisation", "MuP", "NTKParam", "Standard", "PARAMETRISATIONS",
           "make_parametrisation", "get_parametrisation_class"]


@dataclass(frozen=True)
class LayerScales:
    r"""Numbers a network of fixed (L, D, N) reads from its parametrisation.

    Attributes
    ----------
    forward : tuple of L+1 floats
        :math:`s_0..s_L` (``forward[L]`` multiplies the readout; a residual branch multiplier is
        included in :math:`s_1..s_{L-1}`).
    lr : tuple of L+1 floats
        :math:`c_0..c_L`, learning-rate multipliers of :math:`-\nabla\hat L` per weight group.
    g_scale : float
        :math:`g^\ell = \text{g\_scale}\cdot\partial f/\partial h^\ell` defines the backward fields whose
        Gram matrices are the gradient kernels :math:`G^\ell = g g^\top/N`.
    residual : bool
        False: plain MLP; True: residual blocks :math:`h^{\ell+1} = h^\ell + s_\ell W^\ell\phi(h^\ell)`
        for ℓ = 1..L-1.
    adam : tuple of L+1 floats or None
        :math:`a_0..a_L`, per-entry Adam step multipliers: an Adam step of size η moves every entry of
        :math:`W^\ell` by :math:`\eta a_\ell\,\hat m/(\sqrt{\hat v}+\epsilon)` (:mod:`meanfield.deep.optim`).
    """

    forward: tuple
    lr: tuple
    g_scale: float
    residual: bool = False
    adam: tuple | None = None


@dataclass(frozen=True)
class Parametrisation:
    r"""Base of the parametrisations: richness/output multiplier and the residual options.

    Subclasses set ``name``, ``limit_methods`` (the ``limit.method`` values whose limit this
    parametrisation has; ``'none'`` is always allowed) and implement :meth:`readout_scale`,
    :meth:`rates` and :meth:`g_scale_of`.
    """

    gamma0: float = 1.0
    residual: bool = False
    branch_exponent: float = 0.5
    branch_scale: float = 1.0

    name = ""
    limit_methods = ()
    doc = ""

    def __post_init__(self):
        if not (self.gamma0 > 0 and math.isfinite(self.gamma0)):
            raise ValueError(f"gamma0 must be a positive finite number, got {self.gamma0!r}")
        if not math.isfinite(self.branch_exponent) or not (math.isfinite(self.branch_scale) and self.branch_scale >= 0):
            raise ValueError("branch_exponent must be finite and branch_scale finite and >= 0, got "
                             f"{self.branch_exponent!r}, {self.branch_scale!r}")

    def branch(self, L: int) -> float:
        r"""Residual branch multiplier :math:`b_L = \beta L^{-\kappa}` (1 for a plain network)."""
        return self.branch_scale * float(L) ** (-self.branch_exponent) if self.residual else 1.0

    def scales(self, L: int, D: int, N: int) -> LayerScales:
        hidden = 1.0 / math.sqrt(N)
        if self.residual:
            hidden = hidden * self.branch(L)
        fwd = (1.0 / math.sqrt(D),) + (hidden,) * (L - 1) + (self.readout_scale(N),)
        return LayerScales(forward=fwd, lr=self.rates(L, D, N), g_scale=self.g_scale_of(N),
                           residual=bool(self.residual), adam=self.adam_rates(L, D, N))

    # -- per-parametrisation pieces
    def readout_scale(self, N: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def rates(self, L: int, D: int, N: int) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def g_scale_of(self, N: int) -> float:
        return float(self.gamma0) * math.sqrt(N)

    def adam_rates(self, L: int, D: int, N: int) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def _block_adam(self, L: int) -> float:
        r"""Depth factor of the hidden-block Adam rates: :math:`\beta L^{\kappa-1}` for residual blocks
        (the L − 1 block updates add up coherently, each moving :math:`h` by :math:`b_L a\sqrt N`, so
        :math:`a\propto 1/(L b_L)` keeps their sum O(1); at κ = ½ this is :math:`b_L = \beta/\sqrt L`),
        1 for a plain network. docs/residual.md §4."""
        if not self.residual:
            return 1.0
        return self.branch_scale * float(L) ** (self.branch_exponent - 1.0)

    def _mup_adam(self, gamma: float, L: int, D: int, N: int) -> tuple:
        r"""The muP Adam rule at richness ``gamma``: :math:`a_0 = \gamma/\sqrt D`,
        :math:`a_\ell = \gamma\,\beta L^{\kappa-1}/\sqrt N` (plain: :math:`\gamma/\sqrt N`), :math:`a_L = \gamma`."""
        hidden = gamma * self._block_adam(L) / math.sqrt(N)
        return (gamma / math.sqrt(D),) + (hidden,) * (L - 1) + (gamma,)


@dataclass(frozen=True)
class MuP(Parametrisation):
    r"""muP / mean-field parametrisation with richness :math:`\gamma_0` (docs/dmft.md §1).

    :math:`s_0 = 1/\sqrt D`, :math:`s_\ell = 1/\sqrt N`, :math:`s_L = 1/(\gamma_0 N)`,
    :math:`c_\ell = \gamma_0^2 N`, :math:`g^\ell = \gamma_0 N\,\partial f/\partial h^\ell`.
    """

    name = "mup"
    limit_methods = ("dmft", "dmft_linear", "ntk")
    doc = "muP / mean field: f = w.phi(hL)/(gamma0 N), rate gamma0^2 N on every weight"

    def scales(self, L: int, D: int, N: int) -> LayerScales:
        if self.residual:
            return super().scales(L, D, N)
        # the historical expressions, kept verbatim so that muP runs stay bitwise unchanged
        g = float(self.gamma0)
        fwd = (1.0 / math.sqrt(D),) + (1.0 / math.sqrt(N),) * (L - 1) + (1.0 / (g * N),)
        lr = (g * g * N,) * (L + 1)
        return LayerScales(forward=fwd, lr=lr, g_scale=g * N, adam=self.adam_rates(L, D, N))

    def readout_scale(self, N):
        return 1.0 / (float(self.gamma0) * N)

    def rates(self, L, D, N):
        g = float(self.gamma0)
        return (g * g * N,) * (L + 1)

    def g_scale_of(self, N):
        return float(self.gamma0) * N

    def adam_rates(self, L, D, N):
        """muP Adam (Tensor Programs V, Table 3/8; ``mup.MuAdam``): hidden matrices at rate ∝ 1/fan-in."""
        return self._mup_adam(float(self.gamma0), L, D, N)


@dataclass(frozen=True)
class NTKParam(Parametrisation):
    r"""NTK parametrisation: :math:`s_L = 1/(\gamma_0\sqrt N)`, :math:`c_\ell = \gamma_0^2` (no width
    factor); muP with :math:`\gamma = \gamma_0/\sqrt N`, lazy as N grows."""

    name = "ntk"
    limit_methods = ("ntk",)
    doc = "NTK parametrisation: f = w.phi(hL)/(gamma0 sqrt N), rate gamma0^2 (lazy as N grows)"

    def readout_scale(self, N):
        return 1.0 / (float(self.gamma0) * math.sqrt(N))

    def rates(self, L, D, N):
        g = float(self.gamma0)
        return (g * g,) * (L + 1)

    def adam_rates(self, L, D, N):
        r"""The muP Adam rule at :math:`\gamma = \gamma_0/\sqrt N` (as for the GD rates): lazy as N grows."""
        return self._mup_adam(float(self.gamma0) / math.sqrt(N), L, D, N)


@dataclass(frozen=True)
class Standard(Parametrisation):
    r"""Standard parametrisation: stored weights :math:`N(0, 1/\text{fan-in})`, one global rate;
    :math:`c_0 = D`, :math:`c_\ell = N` (ℓ ≥ 1), readout :math:`s_L = 1/(\gamma_0\sqrt N)`."""

    name = "standard"
    limit_methods = ()
    doc = "standard: weights N(0, 1/fan_in), one global learning rate (no infinite-width limit)"

    def readout_scale(self, N):
        return 1.0 / (float(self.gamma0) * math.sqrt(N))

    def rates(self, L, D, N):
        return (float(D),) + (float(N),) * L

    def adam_rates(self, L, D, N):
        r"""One global Adam rate η on the stored weights :math:`W' = W/\sqrt{\text{fan-in}}`, i.e.
        :math:`a_\ell = \sqrt{\text{fan-in}}` on :math:`W` (the branch multiplier stays explicit)."""
        return (math.sqrt(D),) + (math.sqrt(N),) * L


#: name -> class of the parametrisations configs may name (``model.parametrisation``).
PARAMETRISATIONS = {"mup": MuP, "ntk": NTKParam, "standard": Standard}


def get_parametrisation_class(name: str):
    try:
        return PARAMETRISATIONS[name]
    except KeyError:
        raise ValueError(f"unknown parametrisation {name!r}; choose one of {sorted(PARAMETRISATIONS)}") from None


def make_parametrisation(name: str, gamma0: float, residual: bool = False, branch_exponent: float = 0.5,
                         branch_scale: float = 1.0):
    """Build a parametrisation by name (``'mup'``, ``'ntk'``, ``'standard'``) with the residual options."""
    cls = get_parametrisation_class(name)
    return cls(gamma0=gamma0, residual=residual, branch_exponent=branch_exponent, branch_scale=branch_scale)
