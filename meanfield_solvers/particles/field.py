"""Moved: the two-layer model lives in :mod:`meanfield_solvers.models.two_layer`, losses in :mod:`meanfield_solvers.losses`.

Kept so that ``from meanfield_solvers.particles.field import ...`` goes on working.
"""
from ..losses import LOSSES, loss_and_residual
from ..models.two_layer import GaussianPopulation, TwoLayer, mc_risk_velocity, population_risk_velocity

__all__ = ["TwoLayer", "GaussianPopulation", "LOSSES", "loss_and_residual", "mc_risk_velocity",
           "population_risk_velocity"]
