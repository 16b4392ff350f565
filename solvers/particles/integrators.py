r"""Fixed-step explicit integrators for autonomous flows :math:`\dot y = v(y)`.

Each integrator is a function ``step(v, y, dt) -> y_next``: state in, state out; ``y`` is never
modified. ``v(y)`` must return a new array, which the step then reuses as its workspace (every
velocity in this project does; the in-place updates save the full-size temporaries of the
textbook expressions and give the same bits, operation for operation). ``ORDER`` gives the global order of accuracy, checked by the test suite on a smooth
problem (fitted slopes of the error against dt).

* Euler: :math:`y_{n+1} = y_n + h\,v(y_n)` (order 1). With :math:`h=\eta` this *is* gradient
  descent, which is why finite-width training uses it.
* Heun (explicit trapezoid, RK2): :math:`k_1=v(y_n)`, :math:`k_2=v(y_n+hk_1)`,
  :math:`y_{n+1}=y_n+\tfrac h2(k_1+k_2)` (order 2).
* RK4 (classical): order 4.
"""
from __future__ import annotations

import numpy as np

__all__ = ["euler", "heun", "rk4", "INTEGRATORS", "ORDER", "get_integrator"]


def euler(v, y, dt):
    """One explicit Euler step."""
    k = v(y)
    k *= dt
    k += y  # = y + dt*v(y) bit for bit (IEEE addition commutes)
    return k


def heun(v, y, dt):
    """One Heun (explicit trapezoidal RK2) step."""
    k1 = v(y)
    y2 = dt * k1
    y2 += y
    k1 += v(y2)
    k1 *= 0.5 * dt
    k1 += y
    return k1


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


INTEGRATORS = {"euler": euler, "heun": heun, "rk4": rk4}
ORDER = {"euler": 1, "heun": 2, "rk4": 4}


def get_integrator(name: str):
    """Look an integrator up by name."""
    try:
        return INTEGRATORS[name]
    except KeyError:
        raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}") from None
