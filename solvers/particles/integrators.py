r"""Fixed-step explicit integrators for autonomous flows :math:`\dot y = v(y)`.

Each integrator is a function ``step(v, y, dt) -> y_next``: state in, state out, nothing
mutated. ``ORDER`` gives the global order of accuracy, checked by the test suite on a smooth
problem (fitted slopes of the error against dt).

* Euler: :math:`y_{n+1} = y_n + h\,v(y_n)` (order 1). With :math:`h=\eta` this *is* gradient
  descent, which is why finite-width training uses it.
* Heun (explicit trapezoid, RK2): :math:`k_1=v(y_n)`, :math:`k_2=v(y_n+hk_1)`,
  :math:`y_{n+1}=y_n+\tfrac h2(k_1+k_2)` (order 2).
* RK4 (classical): order 4.
"""
from __future__ import annotations

__all__ = ["euler", "heun", "rk4", "INTEGRATORS", "ORDER", "get_integrator"]


def euler(v, y, dt):
    """One explicit Euler step."""
    return y + dt * v(y)


def heun(v, y, dt):
    """One Heun (explicit trapezoidal RK2) step."""
    k1 = v(y)
    k2 = v(y + dt * k1)
    return y + (0.5 * dt) * (k1 + k2)


def rk4(v, y, dt):
    """One classical fourth-order Runge–Kutta step."""
    k1 = v(y)
    k2 = v(y + (0.5 * dt) * k1)
    k3 = v(y + (0.5 * dt) * k2)
    k4 = v(y + dt * k3)
    return y + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


INTEGRATORS = {"euler": euler, "heun": heun, "rk4": rk4}
ORDER = {"euler": 1, "heun": 2, "rk4": 4}


def get_integrator(name: str):
    """Look an integrator up by name."""
    try:
        return INTEGRATORS[name]
    except KeyError:
        raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}") from None
