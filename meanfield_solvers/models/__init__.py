"""Particle models: the protocol (:mod:`.base`) and the built-in two-layer network (:mod:`.two_layer`)."""
from .base import ParticleModel, Samples, UnsupportedData
from .two_layer import GaussianPopulation, TwoLayer, mc_risk_velocity, population_risk_velocity

__all__ = ["ParticleModel", "Samples", "UnsupportedData", "TwoLayer", "GaussianPopulation",
           "mc_risk_velocity", "population_risk_velocity"]
