r"""Infinite-width (DMFT) solvers for deep muP networks: arrays in, arrays out.

* :func:`solve_dmft` — sample-and-solve DMFT by alternating Monte Carlo (any L; tanh, erf, linear;
  relu only at L = 1): a causal (time-ordered) sweep that solves the fixed point in one pass, certified
  by the Jacobi iteration of docs/dmft.md §3.4 (or that iteration alone, ``sweep='jacobi'``).
* :func:`solve_deep_linear` — the deep-linear DMFT (φ = id), closed kernel equations, no sampling.
* :func:`solve_ntk`, :func:`init_kernels`, :func:`kernel_flow` — the γ₀ → 0 limit (NNGP/NTK
  recursions at initialisation and Euler kernel flow on the same grid).

Equations and conventions: docs/dmft.md (in this repository); Bordelon & Pehlevan (2022), arXiv:2205.09653.
"""
from .iteration import IterationLog, SolveProgress
from .linear import solve_deep_linear
from .memory import DMFTMemoryError, MemoryEstimate, estimate_memory
from .ntk import InitKernels, NTKResult, init_kernels, kernel_flow, solve_ntk, train_loss
from .result import DMFTResult
from .sampled import check_supported, solve_dmft
from .sources import JITTER, KernelNotPositiveDefinite

__all__ = [
    "solve_dmft",
    "solve_deep_linear",
    "solve_ntk",
    "init_kernels",
    "kernel_flow",
    "train_loss",
    "check_supported",
    "estimate_memory",
    "DMFTResult",
    "NTKResult",
    "InitKernels",
    "IterationLog",
    "SolveProgress",
    "MemoryEstimate",
    "DMFTMemoryError",
    "KernelNotPositiveDefinite",
    "JITTER",
]
