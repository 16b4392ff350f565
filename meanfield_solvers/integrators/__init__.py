"""Integrators of particle dynamics: one module per scheme, contract on :class:`Integrator`.

``get_integrator(name, **options)`` builds one from the registry :data:`INTEGRATORS`
(``euler``, ``heun``, ``rk4``, ``euler_maruyama``, ``leimkuhler_matthews``, ``lie``, ``strang``,
``birth_death``); ``step(terms, state, dt)``
advances a :class:`~meanfield_solvers.state.ParticleState`. The array-level functions :func:`euler`,
:func:`heun`, :func:`rk4` are the ones :mod:`meanfield_solvers.particles.integrators` exports.
"""
from .base import INTEGRATORS, Integrator, UnsupportedTermError, get_integrator, register_integrator
from .euler import Euler, euler
from .euler_maruyama import EulerMaruyama
from .leimkuhler_matthews import LeimkuhlerMatthews
from .heun import Heun, heun
from .rk4 import RK4, rk4
from .splitting import LieSplitting, Splitting, StrangSplitting
from .birth_death import BirthDeathSplitting  # noqa: E402  (last: the registry keeps its order)

__all__ = [
    "INTEGRATORS", "Integrator", "UnsupportedTermError", "get_integrator", "register_integrator",
    "Euler", "Heun", "RK4", "EulerMaruyama", "LeimkuhlerMatthews", "Splitting", "LieSplitting", "StrangSplitting",
    "BirthDeathSplitting",
    "euler", "heun", "rk4",
]
