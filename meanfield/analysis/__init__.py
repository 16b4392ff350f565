"""Analysis of mean-field versus finite-width runs: pure functions on arrays.

Modules
-------
distances
    Wasserstein distances between neuron clouds (exact and guarded, 1-D,
    sliced, along a known coupling).
mmd
    Gaussian-kernel MMD with jackknife errors.
fitting
    Log-log power-law fits with standard errors.
fluctuations
    Seed statistics, N * Var collapse, variance exponents.
"""

from .distances import Distance, coupling_distance, emd_memory_bytes, w2_1d, w2_exact, w2_sliced
from .fitting import PowerLawFit, fit_power_law
from .fluctuations import (
    SeedStats,
    VarianceScaling,
    collapse_chi2,
    fit_variance_scaling,
    seed_stats,
    variance_scaling,
    variance_stderr,
)
from .mmd import median_bandwidth, mmd2

__all__ = [
    # distances
    "Distance",
    "w2_exact",
    "w2_1d",
    "w2_sliced",
    "coupling_distance",
    "emd_memory_bytes",
    # mmd
    "mmd2",
    "median_bandwidth",
    # fitting
    "PowerLawFit",
    "fit_power_law",
    # fluctuations
    "SeedStats",
    "seed_stats",
    "variance_stderr",
    "VarianceScaling",
    "variance_scaling",
    "fit_variance_scaling",
    "collapse_chi2",
]
