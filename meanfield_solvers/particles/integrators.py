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

For particle states with masses, noise or reactions, see :mod:`meanfield_solvers.integrators`.
"""
from __future__ import annotations

# The step functions live with their integrator classes in meanfield_solvers.integrators (one module each);
# this module keeps the array-level interface (name -> function) that the backends and the
# limit/training code use.
from ..integrators.euler import euler
from ..integrators.heun import heun
from ..integrators.rk4 import rk4

__all__ = ["euler", "heun", "rk4", "INTEGRATORS", "ORDER", "get_integrator"]


INTEGRATORS = {"euler": euler, "heun": heun, "rk4": rk4}
ORDER = {"euler": 1, "heun": 2, "rk4": 4}


def get_integrator(name: str):
    """Look an integrator up by name."""
    try:
        return INTEGRATORS[name]
    except KeyError:
        raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}") from None
