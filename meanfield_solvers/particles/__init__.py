"""Interacting-particle gradient flows of two-layer networks: fields, integrators, backends."""
from .backends import BACKENDS, NumpyBackend, get_backend, register_backend
from .field import (
    LOSSES,
    GaussianPopulation,
    TwoLayer,
    loss_and_residual,
    mc_risk_velocity,
    population_risk_velocity,
)
from .integrators import INTEGRATORS, ORDER, euler, get_integrator, heun, rk4

__all__ = [
    "BACKENDS", "NumpyBackend", "get_backend", "register_backend",
    "LOSSES", "GaussianPopulation", "TwoLayer", "loss_and_residual",
    "mc_risk_velocity", "population_risk_velocity",
    "INTEGRATORS", "ORDER", "euler", "get_integrator", "heun", "rk4",
]
