r"""Benchmark of the residual trainer's step against the machine's GEMM rate, measured in the same run.

``bench_residual(rate, quick) -> list[dict]`` (records of the project's benchmark suite, see
:mod:`benchmarks.deep_bench`); :func:`benchmarks.deep_bench.bench_deep` calls it with its calibration.

Workload ``residual_gd_step``: one full-batch GD step of S = 16 depth-muP residual networks
(:math:`h^{\ell+1} = h^\ell + L^{-1/2}W^\ell\phi(h^\ell)/\sqrt N`, docs/residual.md §1), width N = 256,
L = 64 hidden layers (63 N×N blocks), P = 64 points, D = 16, tanh, as one batched computation. Nominal
FLOPs per step as for the plain network (the skip additions are elementwise and not counted):

.. math:: F = 6(L-1)\,S P N^2 + 4\,S P N D \quad(\approx 25\ \text{GFLOP}).

Backends: ``numpy batched`` (numpy ``matmul`` over the seed axis, one BLAS thread) and ``numba batched`` (the
fused kernel of :mod:`meanfield.deep._fused`, one parallel region over seeds on all numba threads, the GD update
θ + ηv done group by group inside the kernel: :meth:`DeepNet.update`).

``roofline_fraction`` = F / time / GEMM rate, the rate being the larger of the one-thread and all-thread square
float64 GEMM rates (n = 2048 as in the suite; 1024 in quick mode) measured right before *and* right after the step
timings inside this function (the best of the two), so that calibration and step see the same load; the suite's
calibration ``rate`` (measured once at its start) gives ``roofline_fraction_suite``.
On a shared machine the wall clock of both the step and the calibration depends on what else runs, so the record
also has ``roofline_fraction_cpu``: FLOPs per CPU-second of the step (process time over all threads) against
FLOPs per CPU-second of the one-thread GEMM — the efficiency of the work itself, nearly independent of load
(it counts any spinning of idle numba threads as work, so it errs low). The numba record's
``seconds_unfused_update`` times the same step done the previous way (the velocity kernel into a new array, then
``v += θ`` as a separate pass over the S·L·N² state) in the same run; the timed steps themselves go through
:func:`~meanfield.deep.train.make_step`, which recycles the buffer of a dropped state as a training loop does. The 1-minute load average before and after is in ``notes``
and ``load``. Quick mode: L = 16.
"""
from __future__ import annotations

import os
import time

import numpy as np

__all__ = ["bench_residual"]


def _best(fn, repeat):
    """(best wall seconds, best process CPU seconds) over ``repeat`` calls after one warm-up call."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def _gemm_rates(n=2048, repeat=2):
    """(wall FLOP/s all threads, wall FLOP/s one thread, FLOP/CPU-second one thread) of a square float64 GEMM."""
    from meanfield.deep.network import blas_limit

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    F = 2.0 * n ** 3
    w_all = _best(lambda: a @ b, repeat)[0]
    with blas_limit(1):
        w_one, c_one = _best(lambda: a @ b, repeat)
    return F / w_all, F / w_one, F / c_one


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
    n_cal = 1024 if quick else 2048
    cal0 = _gemm_rates(n_cal, 2)
    times = {}
    for be in ("numpy", "numba"):
        net = DeepNet("tanh", D, N, L, MuP(1.0, residual=True), backend=be)
        theta = net.init([[np.random.default_rng([s, l]) for l in range(L + 1)] for s in range(S)])
        step = make_step(net, "gd", 0.05, train=(X, y))
        times[be] = _best(lambda: step(theta, 0), 2 if quick else 3)
        if be == "numba":
            def unfused():  # the step as it was before the update moved into the kernel
                v = net.velocity(theta, X, y, scale=0.05)[1]
                v += theta
                return v

            unfused_sec = _best(unfused, 2 if quick else 3)[0]
        del theta
    cal1 = _gemm_rates(n_cal, 2)
    load1 = _load()
    local = max(max(cal0[0], cal1[0]), max(cal0[1], cal1[1]))
    cpu_rate = max(cal0[2], cal1[2])
    for be, (sec, cpu) in times.items():
        rec = {"workload": "residual_gd_step", "backend": f"{be} batched", "dtype": "float64", "N": N, "d": D,
               "M": P, "S": S, "seconds_per_step": sec, "throughput": F / sec / 1e9,
               "throughput_unit": "GFLOP/s", "ratio_vs_numpy": times["numpy"][0] / sec, "ratio_vs_torch": None,
               "roofline_fraction": F / sec / local, "roofline_fraction_suite": F / sec / rate,
               "roofline_fraction_cpu": F / cpu / cpu_rate, "cpu_seconds_per_step": cpu,
               "calibration_local_gflops": local / 1e9, "load": [load0, load1],
               "notes": f"{be} batched; {shape}; load average {load0:.2f} -> {load1:.2f}; GEMM rate "
                        f"{local / 1e9:.1f} GFLOP/s (measured beside the step)"}
        if be == "numba":
            rec["seconds_unfused_update"] = unfused_sec
            rec["roofline_fraction_unfused_update"] = F / unfused_sec / local
            rec["notes"] += f"; unfused update (velocity, then v += theta) {unfused_sec:.3f} s"
        recs.append(rec)
    return recs
