"""Analysis of mean-field versus finite-width runs: pure functions on arrays.

Modules
-------
distances
    Wasserstein distances between neuron clouds (exact and guarded, 1-D,
    sliced, along a known coupling).
mmd
    Gaussian-kernel MMD with jackknife errors.
entropy
    Kozachenko-Leonenko k-nearest-neighbour entropy of a particle cloud (for the free energy of
    mean-field Langevin dynamics), its measured bias and the rule for when to trust it.
function
    Function-space distance and risk gap to the mean-field limit.
fluctuations
    Seed statistics, N * Var collapse, variance exponents.
fitting
    Log-log power-law fits with standard errors.
runs
    The same quantities computed from a run's :class:`~meanfield.run.Result`.
decomposition
    Contribution of each link of the chain mean-field -> GD -> online SGD ->
    multi-pass SGD to the final gap.
"""

from .decomposition import DEFAULT_STAGES, Decomposition, decompose
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
from .function import BiasVariance, bias_variance, function_distance, risk_gap
from .entropy import Entropy, EntropyBatch, entropy_reliable, knn_entropy
from .mmd import median_bandwidth, mmd2
from .runs import (
    Fluctuations,
    FunctionGaps,
    Movement,
    NeuronDistances,
    fit_vs_width,
    fluctuations,
    function_gaps,
    movement,
    neuron_distances,
)

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
    # entropy
    "Entropy",
    "EntropyBatch",
    "knn_entropy",
    "entropy_reliable",
    # function
    "function_distance",
    "BiasVariance",
    "bias_variance",
    "risk_gap",
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
    # decomposition
    "DEFAULT_STAGES",
    "Decomposition",
    "decompose",
    # result-level analysis of a run
    "NeuronDistances",
    "neuron_distances",
    "FunctionGaps",
    "function_gaps",
    "Fluctuations",
    "fluctuations",
    "Movement",
    "movement",
    "fit_vs_width",
]
