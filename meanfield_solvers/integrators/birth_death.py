r"""Transport, then birth–death jumps: the splitting step of stochastic birth–death dynamics.

.. math:: \Phi_h = J_h\circ T_h,

:math:`T_h` a step of the transport integrator (``euler``, ``heun``, ``rk4``, or ``euler_maruyama``
with noise) at frozen equal masses, :math:`J_h` one jump step of a
:class:`~meanfield_solvers.terms.birth_death.BirthDeath` term (kill/clone with probabilities
κh(Ψᵢ − c)±, population control back to N; Ψ at the transported positions). This is the particle
counterpart of ``get_integrator("lie", transport=...)`` on balanced WFR: scheme 1 has balanced WFR
as its mean-field limit (module docstring of :mod:`meanfield_solvers.terms.birth_death`).

Orders. A jump process has no pathwise (strong) order: a clone or a kill is a discontinuity whose
timing shifts with h, so ``strong_order`` is None. The declared ``order`` (1, or the transport's if
lower) is the weak order of the empirical measure in the mean-field limit: as for Lie splitting,
E[μ_N(φ)] after t/h steps differs from the time-continuous process by O(h); the jumps add an
O(1/N) bias and O(1/√N) fluctuations against weighted WFR.
"""
from __future__ import annotations

from .base import register_integrator
from .splitting import Splitting

__all__ = ["BirthDeathSplitting"]


@register_integrator
class BirthDeathSplitting(Splitting):
    """Transport over ``dt``, then one birth–death jump step over ``dt`` (see the module docstring).

    ``get_integrator("birth_death", transport="euler")``; terms: a drift (+ noise with
    ``euler_maruyama``) and one :class:`~meanfield_solvers.terms.BirthDeath`. A Reaction term is
    refused: jumps act on equal-weight particles.
    """

    name = "birth_death"
    order = 1
    scheme_order = 1
    accepts = frozenset({"drift", "noise", "jump"})
    requires = frozenset({"drift", "jump"})

    def __init__(self, transport=None):
        super().__init__(transport)
        if "jump" in self.transport.accepts:
            raise ValueError(f"{self.name}: the transport integrator must not take jumps itself, "
                             f"got {self.transport!r}")
        self.strong_order = None

    @staticmethod
    def _transport_terms(collected):
        return {k: t for k, t in collected.items() if k not in ("jump", "reaction")}

    def order_for(self, terms) -> float:
        """``min(1, transport order)``: the weak order in the mean-field limit."""
        collected = self.check(terms)
        return min(self.order, self.transport.order_for(self._transport_terms(collected)))

    def strong_order_for(self, terms):
        """None: jump paths have no strong order."""
        self.check(terms)
        return None

    def advance(self, terms, state, dt):
        state = self.transport.advance(self._transport_terms(terms), state, dt)
        return terms["jump"].jump(state, dt)
