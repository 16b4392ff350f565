r"""Classical fourth-order Runge–Kutta (order 4).

.. math::
    k_1 = v(\theta_n),\ k_2 = v(\theta_n + \tfrac{\Delta t}2 k_1),\ k_3 = v(\theta_n +
    \tfrac{\Delta t}2 k_2),\ k_4 = v(\theta_n + \Delta t\, k_3),\quad
    \theta_{n+1} = \theta_n + \tfrac{\Delta t}6 (k_1 + 2k_2 + 2k_3 + k_4).
"""
from __future__ import annotations

import numpy as np

from .base import Integrator, register_integrator

__all__ = ["rk4", "RK4"]


def rk4(v, y, dt):
    """One classical fourth-order Runge–Kutta step."""
    k1 = v(y)
    yy = (0.5 * dt) * k1
    yy += y
    k2 = v(yy)
    np.multiply(k2, 0.5 * dt, out=yy)
    yy += y
    k3 = v(yy)
    np.multiply(k3, dt, out=yy)
    yy += y
    k4 = v(yy)
    k2 += k3
    k2 *= 2.0
    k2 += k1
    k2 += k4
    k2 *= dt / 6.0
    k2 += y
    return k2


@register_integrator
class RK4(Integrator):
    """Classical RK4 on the drift, masses held fixed. Bitwise :func:`rk4`. Global order 4."""

    name = "rk4"
    order = 4
    #: explicit Runge-Kutta tableau (A, b) for the discrete adjoint (:mod:`.adjoint`)
    tableau = (((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), (1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6))

    def advance(self, terms, state, dt):
        return state.replace(theta=rk4(terms["drift"].field(state.mass), state.theta, dt))
