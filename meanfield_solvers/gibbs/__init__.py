r"""Exact oracles for mean-field Langevin dynamics (noise + weight decay) and its Gibbs fixed point.

* :mod:`.linear_gaussian` — linear units, d = 1, linear teacher: the law stays a centred Gaussian;
  its covariance ODE, the Gibbs fixed point (one scalar equation), the free energy and its
  dissipation, the Euler–Maruyama covariance map, and the exact finite-N stationary risk.
* :mod:`.one_dim` — nonlinear units (erf, relu, linear), d = 1, no bias: the Gibbs fixed point
  a | w ~ N(h/λ, τ/λ), ρ*(w) ∝ exp(βh²/(2λ) − βλw²/2) with h solving h = T/α − λ⁻¹K[ρ*h], on a grid.

Numerics only: arrays and floats in, arrays and floats out (never imports ``meanfield``).
"""
from .linear_gaussian import (
    FiniteN,
    FiniteNExpansion,
    LinearGibbs,
    RelaxationRates,
    covariance_flow,
    covariance_velocity,
    dissipation,
    euler_maruyama_covariance,
    finite_n_expansion,
    finite_n_risk,
    free_energy,
    free_energy_gradient,
    gibbs_covariance,
    relaxation_rates,
    stationary,
)
from .one_dim import Gibbs1D, kernel_matrix
from .one_dim import residual as gibbs_1d_residual
from .one_dim import solve as gibbs_1d

__all__ = [
    "FiniteN",
    "FiniteNExpansion",
    "LinearGibbs",
    "RelaxationRates",
    "covariance_flow",
    "covariance_velocity",
    "dissipation",
    "euler_maruyama_covariance",
    "finite_n_expansion",
    "finite_n_risk",
    "free_energy",
    "free_energy_gradient",
    "gibbs_covariance",
    "relaxation_rates",
    "stationary",
    "Gibbs1D",
    "gibbs_1d",
    "gibbs_1d_residual",
    "kernel_matrix",
]
