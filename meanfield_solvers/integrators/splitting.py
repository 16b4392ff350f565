r"""Operator splitting of transport and reaction (Wasserstein–Fisher–Rao-type dynamics).

The dynamics split into a transport part :math:`T` (drift and noise move the positions at
frozen masses) and a reaction part :math:`R` (the masses grow at fixed positions):

.. math::
    T:\ \mathrm d\theta = v(\theta; m)\,\mathrm dt + g(\theta)\odot\mathrm dW,\ \dot m = 0;
    \qquad R:\ \dot\theta = 0,\ \dot m_i = r_i(\theta, m)\, m_i .

:math:`T` is advanced by a transport integrator (any registered one that takes no reaction:
``euler``, ``heun``, ``rk4``, or ``euler_maruyama`` when there is noise) and :math:`R` by
:meth:`~meanfield_solvers.terms.Reaction.react` (:math:`m \leftarrow m\,e^{\Delta t\,r}`, exact for a frozen
rate; second order via a midpoint rate when the rate reads the masses).

* **Lie**: :math:`\Phi_{\Delta t} = R_{\Delta t}\circ T_{\Delta t}` (transport, then reaction):
  order :math:`\min(1, p)`.
* **Strang**: :math:`R_{\Delta t/2}\circ T_{\Delta t}\circ R_{\Delta t/2}`: symmetric, order
  :math:`\min(2, p)` for an order-:math:`p` transport (and a reaction sub-step of order
  :math:`\geq 2`).

With noise, the declared strong order is the transport's (:math:`\le 1`, below either scheme's
deterministic order); Strang's second order relies on the time symmetry of deterministic flows
and is not claimed for the stochastic part.
"""
from __future__ import annotations

from typing import ClassVar

from .base import Integrator, UnsupportedTermError, get_integrator, register_integrator

__all__ = ["Splitting", "LieSplitting", "StrangSplitting"]


class Splitting(Integrator):
    """Base of the splitting steps: a reaction composed with a transport integrator.

    Parameters
    ----------
    transport : str or Integrator
        The transport integrator, by registry name (``get_integrator(transport)``) or instance.
        It must not take a reaction itself.

    Attributes
    ----------
    order : float
        ``min(scheme_order, transport.order)`` (instance attribute).
    strong_order : float or None
        The transport's strong order (None if it takes no noise).
    """

    scheme_order: ClassVar[int]
    accepts = frozenset({"drift", "noise", "reaction"})
    requires = frozenset({"drift", "reaction"})

    def __init__(self, transport=None):
        if transport is None:  # no default: the transport sets the order, so say it
            raise TypeError(f"{self.name} needs a transport integrator, e.g. get_integrator("
                            f"{self.name!r}, transport='rk4') ('euler_maruyama' with noise)")
        t = get_integrator(transport) if isinstance(transport, str) else transport
        if not isinstance(t, Integrator):
            raise TypeError(f"transport must be an integrator name or instance, got {t!r}")
        if "reaction" in t.accepts:
            raise ValueError(f"{self.name}: the transport integrator must not take a reaction "
                             f"itself, got {t!r}")
        self.transport = t
        self.order = min(self.scheme_order, t.order)
        self.strong_order = t.strong_order

    def check(self, terms):
        collected = super().check(terms)
        try:  # what the transport cannot take (noise into rk4, say), in its own words
            self.transport.check(self._transport_terms(collected))
        except UnsupportedTermError as err:
            raise UnsupportedTermError(f"{self!r}: {err}") from None
        return collected

    def order_for(self, terms) -> float:
        """``min(scheme order, transport order, reaction sub-step order)``."""
        collected = self.check(terms)
        return min(self.order, self.transport.order_for(self._transport_terms(collected)),
                   collected["reaction"].order)

    def strong_order_for(self, terms):
        collected = self.check(terms)
        s = self.transport.strong_order_for(self._transport_terms(collected))
        return None if s is None else min(s, self.order_for(terms))

    @staticmethod
    def _transport_terms(collected):
        return {k: t for k, t in collected.items() if k != "reaction"}

    def _react(self, reaction, state, dt):
        return state.replace(mass=reaction.react(state, dt))

    def __repr__(self):
        return f"{self.name}(transport={self.transport!r})"


@register_integrator
class LieSplitting(Splitting):
    """Lie splitting: transport over ``dt``, then reaction over ``dt``. Order ``min(1, p)``."""

    name = "lie"
    order = 1
    scheme_order = 1

    def advance(self, terms, state, dt):
        state = self.transport.advance(self._transport_terms(terms), state, dt)
        return self._react(terms["reaction"], state, dt)


@register_integrator
class StrangSplitting(Splitting):
    """Strang splitting: half reaction, full transport, half reaction. Order ``min(2, p)``."""

    name = "strang"
    order = 2
    scheme_order = 2

    def advance(self, terms, state, dt):
        reaction = terms["reaction"]
        state = self._react(reaction, state, 0.5 * dt)
        state = self.transport.advance(self._transport_terms(terms), state, dt)
        return self._react(reaction, state, 0.5 * dt)
