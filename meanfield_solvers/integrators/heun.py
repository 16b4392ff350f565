r"""Heun (explicit trapezoid, RK2): :math:`k_1 = v(\theta_n)`, :math:`k_2 = v(\theta_n + \Delta t\,
k_1)`, :math:`\theta_{n+1} = \theta_n + \frac{\Delta t}2(k_1 + k_2)` (order 2)."""
from __future__ import annotations

from .base import Integrator, register_integrator

__all__ = ["heun", "Heun"]


def heun(v, y, dt):
    """One Heun (explicit trapezoidal RK2) step."""
    k1 = v(y)
    y2 = dt * k1
    y2 += y
    k1 += v(y2)
    k1 *= 0.5 * dt
    k1 += y
    return k1


@register_integrator
class Heun(Integrator):
    """Heun's method on the drift, masses held fixed. Bitwise :func:`heun`. Global order 2."""

    name = "heun"
    order = 2
    #: explicit Runge-Kutta tableau (A, b) for the discrete adjoint (:mod:`.adjoint`)
    tableau = (((), (1.0,)), (0.5, 0.5))

    def advance(self, terms, state, dt):
        return state.replace(theta=heun(terms["drift"].field(state.mass), state.theta, dt))
