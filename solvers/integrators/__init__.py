"""Integrators of particle dynamics: one module per scheme, contract on :class:`Integrator`.

``get_integrator(name, **options)`` builds one from the registry :data:`INTEGRATORS`
(``euler``, ``heun``, ``rk4``); ``step(terms, state, dt)``
advances a :class:`~solvers.state.ParticleState`. The array-level functions :func:`euler`,
:func:`heun`, :func:`rk4` are the ones :mod:`solvers.particles.integrators` exports.
"""
from .base import INTEGRATORS, Integrator, UnsupportedTermError, get_integrator, register_integrator
from .euler import Euler, euler
from .heun import Heun, heun
from .rk4 import RK4, rk4

__all__ = [
    "INTEGRATORS", "Integrator", "UnsupportedTermError", "get_integrator", "register_integrator",
    "Euler", "Heun", "RK4",
    "euler", "heun", "rk4",
]
