r"""Explicit Euler: :math:`\theta_{n+1} = \theta_n + \Delta t\, v(\theta_n)` (order 1).

With :math:`\Delta t = \eta` this *is* gradient descent, which is why finite-width training uses
it. :func:`euler` is the array-level step shared with :mod:`meanfield_solvers.particles.integrators`;
:class:`Euler` applies it to a :class:`~meanfield_solvers.state.ParticleState` and a drift term.
"""
from __future__ import annotations

from .base import Integrator, register_integrator

__all__ = ["euler", "Euler"]


def euler(v, y, dt):
    """One explicit Euler step."""
    k = v(y)
    k *= dt
    k += y  # = y + dt*v(y) bit for bit (IEEE addition commutes)
    return k


@register_integrator
class Euler(Integrator):
    r"""Explicit Euler on the drift, masses held fixed: :math:`\theta \leftarrow \theta + \Delta t\,
    v(\theta; m)`. Bitwise :func:`euler`. Global order 1."""

    name = "euler"
    order = 1
    #: explicit Runge-Kutta tableau (A strictly lower triangular, b): what the discrete adjoint
    #: (:mod:`meanfield_solvers.integrators.adjoint`) differentiates
    tableau = (((),), (1.0,))

    def advance(self, terms, state, dt):
        return state.replace(theta=euler(terms["drift"].field(state.mass), state.theta, dt))
