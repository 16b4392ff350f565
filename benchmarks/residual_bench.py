r"""Benchmark of the residual trainer's step against the machine's GEMM rate, measured in the same run.

``bench_residual(rate, quick) -> list[dict]`` (records of the project's benchmark suite, see
:mod:`benchmarks.deep_bench`); :func:`benchmarks.deep_bench.bench_deep` calls it with its calibration.

Workload ``residual_gd_step``: one full-batch GD step of S = 16 depth-muP residual networks
(:math:`h^{\ell+1} = h^\ell + L^{-1/2}W^\ell\phi(h^\ell)/\sqrt N`, docs/residual.md §1), width N = 256,
L = 64 hidden layers (63 N×N blocks), P = 64 points, D = 16, tanh, as one batched computation. Nominal
FLOPs per step as for the plain network (the skip additions are elementwise and not counted):

.. math:: F = 6(L-1)\,S P N^2 + 4\,S P N D \quad(\approx 25\ \text{GFLOP}).

Backends: ``numpy batched`` (numpy ``matmul`` over the seed axis, one BLAS thread) and ``numba batched`` (the
fused kernel of :mod:`meanfield.deep._fused`, one parallel region over seeds on all numba threads).
``roofline_fraction`` = F / time / calibration GEMM rate (the larger of the one-thread and all-thread
square float64 GEMM rates). The 1-minute load average before and after is recorded in ``notes`` and in
``load`` (other processes on a shared machine take cores from both the step and, less, the calibration).
Quick mode: L = 16.
"""
from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["bench_residual"]


def _best(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        return float("nan")


def bench_residual(rate, quick=False, S=16, N=256, L=64, P=64, D=16):
    """One GD step of S residual depth-muP networks (module docstring); records ``residual_gd_step``."""
    from meanfield.deep.network import DeepNet
    from meanfield.deep.parametrisation import MuP
    from meanfield.deep.train import make_step

    from .deep_bench import ensemble_flops

    if quick:
        L = 16
    rng = np.random.default_rng(3)
    X = rng.standard_normal((P, D))
    y = np.tanh(X[:, 0])
    F = ensemble_flops(S, P, N, D, L)
    shape = f"S={S} N={N} L={L} P={P} D={D} tanh, residual kappa=1/2"
    recs = []
    load0 = _load()
    times = {}
    for be in ("numpy", "numba"):
        net = DeepNet("tanh", D, N, L, MuP(1.0, residual=True), backend=be)
        theta = net.init([[np.random.default_rng([s, l]) for l in range(L + 1)] for s in range(S)])
        step = make_step(net, "gd", 0.05, train=(X, y))
        times[be] = _best(lambda: step(theta, 0), 2 if quick else 3)
        del theta
    load1 = _load()
    for be, sec in times.items():
        recs.append({"workload": "residual_gd_step", "backend": f"{be} batched", "dtype": "float64", "N": N, "d": D,
                     "M": P, "S": S, "seconds_per_step": sec, "throughput": F / sec / 1e9,
                     "throughput_unit": "GFLOP/s", "ratio_vs_numpy": times["numpy"] / sec, "ratio_vs_torch": None,
                     "roofline_fraction": F / sec / rate, "load": [load0, load1],
                     "notes": f"{be} batched; {shape}; load average {load0:.2f} -> {load1:.2f}"})
    return recs
