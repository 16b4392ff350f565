r"""Benchmarks of the deep-network code: one finite-width ensemble step and one sampled-DMFT iteration.

``bench_deep(quick) -> list[dict]``; each record has the keys of the project's benchmark suite:
``workload, backend, dtype, N, d, M, S, seconds_per_step, throughput, throughput_unit,
ratio_vs_numpy, ratio_vs_torch, roofline_fraction`` (+ ``notes``).

Calibration
-----------
``gemm_rate()`` times a square float64 matrix product (n = 2048; 1024 in quick mode) with one BLAS thread
and with all threads; the larger rate is the calibration, and ``roofline_fraction`` = achieved FLOP rate /
that rate (1.0 = as fast as a large square GEMM on this machine, the practical peak of dense float64
work here). The network runs its BLAS calls on one thread (:func:`meanfield.deep.network.blas_limit`).

Workloads
---------
1. ``deep_ensemble_gd_step`` — one full-batch GD step of S = 16 muP networks, width N = 1024,
   L = 3 hidden layers, P = 64 points, D = 16, tanh, as one batched computation (numpy ``matmul`` over
   the seed axis). Nominal FLOPs per step (forward, backward, weight gradients):

   .. math:: F = 6(L-1)\,S P N^2 + 4\,S P N D

   (elementwise work and the O(SPN) readout are not counted).
   Backends: ``numpy batched`` (numpy ``matmul`` over the seed axis), ``numba batched`` (the fused
   kernel of :mod:`meanfield.deep._fused`: one parallel region over seeds), and at small N
   (8 … 64, S = 16; and 8 … 32 with S = 64) the Python loops over seeds ``numpy-loop`` /
   ``numba-loop``; see :func:`bench_ensemble` for the ratios. ``ratio_vs_torch`` is None (torch is not a dependency).
   ``residual_gd_step`` (:mod:`benchmarks.residual_bench`): the same step for S = 16 depth-muP residual
   networks, N = 256, L = 64, P = 64 (quick: L = 16).
2. ``dmft_iteration`` — one Jacobi application of the sampled-DMFT fixed-point map
   (:func:`meanfield_solvers.dmft.solve_dmft` with ``sweep='jacobi'``, from the lazy initial state on the full
   horizon): the iteration the solver repeats to convergence. L = 2, P = 8, T = 100 steps,
   M = 10⁴ samples, ``S_tan`` = 200 tangent samples, tanh (quick: T = 40, M = 2000, S_tan = 50);
   tangent chunks on all usable cores (``workers``). ``dmft_causal_sweep`` is the solver's first
   pass at the same size (:mod:`meanfield_solvers.dmft.causal`).

   FLOPs are counted as performed, by :func:`dmft_flops` / :func:`causal_sweep_flops`, which mirror
   the solvers' loops: every matrix product (the blocked march of each layer's primal fields, with
   ``n = (T+1)P`` rows and M columns; the Gram matrices, n(n+1)M each, BLAS ``syrk``; the Cholesky
   colouring of the sources, 2n²M each; the unit-seed tangent marches, whose active columns grow
   with time, ``(k+1)(P_r + P_u)S_tan`` at step k; the all-ones output tangent). Asymptotically
   this is the model of docs/dmft.md §3.5, :math:`6LP^2T^2M + c\,P^3T^3S_\text{tan}` with the tangent
   constant reduced by the time ordering of the seeds. Elementwise work is not counted.
   ``roofline_fraction`` = counted FLOPs / time / calibration GEMM rate.
   ``dmft_solve_issue19`` / ``dmft_solve_issue19_probe``: the whole issue-19 solve with the exact tangents
   and with the randomised-probe responses (:mod:`meanfield_solvers.dmft.probes`), the ratio of the two
   times (exact / probe) in the same run, and each solve's largest Monte Carlo error of f.
3. ``residual_dmft_sweep_scaling_{L,T,P,S}`` (:mod:`benchmarks.residual_dmft_bench`): one causal sweep of the
   sampled residual DMFT against depth L (at two tangent-sample counts), steps T, points P and samples S, with
   the fitted exponent in ``scaling_exponent`` (issue 16; quick: L and T only).
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["bench_deep", "bench_dmft_scaling", "bench_issue19_solve", "gemm_rate", "ensemble_flops", "dmft_flops", "causal_sweep_flops"]


def _best(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_rate(n=2048, repeat=3) -> float:
    """FLOP/s of a square float64 GEMM of size n (best of ``repeat``)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    return 2.0 * n ** 3 / _best(lambda: a @ b, repeat)


def ensemble_flops(S, P, N, D, L) -> float:
    """Nominal FLOPs of one full-batch GD step of S deep networks (module docstring)."""
    return 6.0 * (L - 1) * S * P * N * N + 4.0 * S * P * N * D


def _march_flops(n_t, P, block, cols_at) -> float:
    """Matrix-product FLOPs of :func:`meanfield_solvers.dmft.march.causal_march` (mirrors its loop)."""
    F = 0.0
    for k0 in range(0, n_t, block):
        k1 = min(k0 + block, n_t)
        cols = cols_at(k1 - 1)
        r0, r1 = k0 * P, k1 * P
        if k0 > 0:
            F += 2 * 2.0 * (r1 - r0) * r0 * cols  # the two past-block GEMMs (H and Z)
        for k in range(k0, k1):
            F += 2.0 * P * ((k - k0) * P) * cols + 2.0 * P * ((k - k0 + 1) * P) * cols
    return F


def dmft_flops(L, P, T, M, S_tan, block=8) -> float:
    """Matrix-product FLOPs of one Jacobi iteration of the sampled DMFT, as performed (module doc)."""
    from meanfield_solvers.dmft.march import SeedLayout

    n_t = T + 1
    n = n_t * P
    F = 0.0
    for l in range(1, L + 1):
        F += _march_flops(n_t, P, block, lambda k: M)          # primal march
        F += 2.0 * n * (n + 1) * M                              # Φ and G Gram matrices (syrk)
        F += 2.0 * n * n * M * ((l >= 2) + (l <= L - 1))        # colouring u^l, r^l
        seeds = SeedLayout(n_t, P, P, r_seeds=l <= L - 1, u_seeds=l >= 2, one_seed=False)
        if seeds.R:  # each seed time t marched on its own from t on (march.tangent_averages)
            F += sum(_march_flops(n_t - t, P, block, lambda k: seeds.per_t * S_tan) for t in range(n_t))
    F += _march_flops(n_t, P, block, lambda k: M)              # output term: the all-ones tangent
    return F


def causal_sweep_flops(L, P, T, M, S_tan, triangular=True) -> float:
    """Matrix-product FLOPs of one causal sweep (:mod:`meanfield_solvers.dmft.causal`), as performed.

    The tangents are stored by seed time (:mod:`meanfield_solvers.dmft.triangular`): at step k the
    group of seed time s ≤ k multiplies its own k − s past rows (H) and k − s + 1 rows (Z), so
    the step costs 2 P² r S_tan (k+1)² in all (r seeds per point and time); ``triangular=False``
    gives the dense count 2 P² r S_tan (2k+1)(k+1) of the march over the whole past (before issue 19).
    """
    from meanfield_solvers.dmft.march import SeedLayout

    n_t = T + 1
    F = 0.0
    for k in range(n_t):
        past, upto = k * P, (k + 1) * P
        for l in range(1, L + 1):
            seeds = SeedLayout(n_t, P, P, r_seeds=l <= L - 1, u_seeds=l >= 2, one_seed=False)
            F += 2.0 * P * (past + 3 * upto) * M                     # H·g, Z·φ, two Gram rows
            F += 2.0 * P * upto * M * ((l >= 2) + (l <= L - 1))     # colouring
            if triangular:                                           # tangents
                F += 2.0 * P * P * seeds.per_t * S_tan * (k + 1) ** 2
            else:
                F += 2.0 * P * (past + upto) * (seeds.active(k) * S_tan if seeds.R else 0)
        F += 2.0 * P * (past + upto) * M                             # output tangent
    return F



def _record(workload, N, d, M, S, sec, flops, rate, ratio_numpy=1.0, notes=""):
    return {"workload": workload, "backend": "numpy", "dtype": "float64", "N": N, "d": d, "M": M, "S": S,
            "seconds_per_step": sec, "throughput": flops / sec / 1e9, "throughput_unit": "GFLOP/s",
            "ratio_vs_numpy": ratio_numpy, "ratio_vs_torch": None, "roofline_fraction": flops / sec / rate,
            "notes": notes}


def bench_ensemble(rate, quick=False, S=16, N=1024, L=3, P=64, D=16, loops=True):
    """One GD step of S networks: batched (numpy, numba) and as a Python loop over seeds.

    Records, all with ``workload = 'deep_ensemble_gd_step'`` and ``backend`` one of

    * ``numpy-loop`` — a Python loop over the seeds, each network alone through the numpy path
      (what one writes without a seed axis); its ``ratio_vs_numpy`` is 1;
    * ``numba-loop`` — the same loop, each network through the numba fused kernel (isolates what
      batching itself buys);
    * ``numpy batched``, ``numba batched`` — all seeds in one call.

    ``ratio_vs_numpy`` = t(numpy-loop) / t: the speed-up over the loop (as for the two-layer
    ``ensemble_step``). With ``loops = False`` (large N, where a loop costs minutes and batching
    is about GEMM efficiency) only the batched records are made and their ratio is against
    ``numpy batched``.
    """
    from meanfield.deep.network import DeepNet, MuP
    from meanfield.deep.train import make_step

    if quick and N > 256:
        N = 256
    rng = np.random.default_rng(1)
    X = rng.standard_normal((P, D))
    y = np.tanh(X[:, 0])
    rep = 2 if quick else (3 if N >= 256 else 15)
    F = ensemble_flops(S, P, N, D, L)
    shape = f"S={S} N={N} L={L} P={P} D={D} tanh"
    times = {}
    for be in ("numpy", "numba"):
        net = DeepNet("tanh", D, N, L, MuP(1.0), backend=be)
        theta = net.init([[np.random.default_rng([s, l]) for l in range(L + 1)] for s in range(S)])
        step = make_step(net, "gd", 0.05, train=(X, y))
        times[f"{be} batched"] = _best(lambda: step(theta, 0), rep)
        if loops:
            singles = [np.ascontiguousarray(theta[s:s + 1]) for s in range(S)]
            times[f"{be}-loop"] = _best(lambda: [step(th, 0) for th in singles], rep)
    ref = times["numpy-loop"] if loops else times["numpy batched"]
    recs = []
    for name in ("numpy-loop", "numba-loop", "numpy batched", "numba batched"):
        if name not in times:
            continue
        r = _record("deep_ensemble_gd_step", N, D, P, S, times[name], F, rate, ref / times[name],
                    f"{name}; {shape}; ratio_vs_numpy = t({'numpy-loop' if loops else 'numpy batched'}) / t")
        r["backend"] = name
        recs.append(r)
    return recs


def bench_dmft(rate, quick=False, L=2, P=8):
    """One Jacobi iteration and one causal sweep of the sampled DMFT (records ``dmft_iteration``,
    ``dmft_causal_sweep``)."""
    from meanfield_solvers.dmft import solve_dmft
    from meanfield_solvers.dmft.sampled import usable_cores

    T, M, S_tan = (40, 2000, 50) if quick else (100, 10_000, 200)
    D = 8
    rng = np.random.default_rng(2)
    X = rng.standard_normal((P, D))
    y = np.tanh(X[:, 0])
    W = usable_cores()
    recs = []
    for sweep, name, F in (("jacobi", "dmft_iteration", dmft_flops(L, P, T, M, S_tan)),
                           ("causal", "dmft_causal_sweep", causal_sweep_flops(L, P, T, M, S_tan))):
        t0 = time.perf_counter()
        r = solve_dmft(X, y, L, 1.0, 0.05, T, activation="tanh", n_samples=M, n_tangent=S_tan, max_iter=1,
                       stages=1, error_batches=0, tol=1e-30, max_bytes=16e9, sweep=sweep)
        wall = time.perf_counter() - t0
        sec = float((r.info.get("seconds") or [wall])[0])
        what = ("one Jacobi application of the fixed-point map (the iteration repeated to convergence)"
                if sweep == "jacobi" else
                "the causal sweep (reaches the fixed point in one pass; step-by-step products, bandwidth-bound)")
        recs.append(_record(name, None, D, M, S_tan, sec, F, rate, 1.0,
                            f"L={L} P={P} T={T} M={M} S_tan={S_tan} tanh, {W} tangent workers; {what}; "
                            f"whole call {wall:.2f} s; N = None (infinite width), S = tangent samples"))
    return recs


def bench_issue19_solve(quick=False):
    """The whole solve of issue 19 as a user runs it (records ``dmft_solve_issue19``).

    L = 2 tanh, γ₀ = 1, 8 training and 8 test points, T = 40 steps, the config defaults (4000
    samples, 500 tangent samples, tolerance 1e-6, 8 error batches, 4 GB; quick: 400 samples, 16
    tangent samples). Before the fix this solve took 914 s and 26 iterations (issue 19: the dense
    causal sweep exceeded 4 GB, so the solver ran the Jacobi iteration with 4 continuation stages);
    that is not rerun at full size. Instead (not in quick mode) a second record runs the same
    configuration at 1/5 of the tangent samples (4000 samples, 100 tangent samples) both ways, the
    solver now and ``sweep='jacobi'`` (what it did before), for a same-run ratio
    (``ratio_vs_numpy`` = t(before) / t(now)). Records the iteration counts, their reasons, and
    the load average at start.
    """
    import os

    from meanfield_solvers.dmft import solve_dmft

    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((8, 10)), rng.standard_normal((8, 10))
    y = np.sign(rng.standard_normal(8))

    def timed(S, S_tan, **extra):
        t0 = time.perf_counter()
        r = solve_dmft(X, y, 2, 1.0, 0.05, 40, X_test=Xt, n_samples=S, n_tangent=S_tan, tol=1e-6,
                       error_batches=8, max_bytes=4e9, **extra)
        return r, time.perf_counter() - t0

    sizes = [(400, 16, False)] if quick else [(4000, 500, False), (4000, 100, True)]
    recs = []
    for S, S_tan, with_ref in sizes:
        load = os.getloadavg()[0]
        r, sec = timed(S, S_tan)
        probe_rec = None
        if (S, S_tan) == sizes[0][:2]:  # the same solve with randomised-probe responses, same run
            load_p = os.getloadavg()[0]
            rp, sec_p = timed(S, S_tan, response_estimator="probe")
            probe_rec = ({
                "workload": "dmft_solve_issue19_probe", "backend": "numpy", "dtype": "float64", "N": None,
                "d": 10, "M": S, "S": S, "seconds_per_step": sec_p, "throughput": None, "throughput_unit": None,
                "ratio_vs_numpy": sec / sec_p, "ratio_vs_torch": None, "roofline_fraction": None,
                "iterations": rp.iterations, "status": rp.status, "sweep": rp.info["sweep"],
                "load_average_at_start": load_p, "reference_seconds": sec,
                "f_err_max": float(np.nanmax(rp.f_err)), "f_err_max_reference": float(np.nanmax(r.f_err)),
                "notes": (f"the issue-19 solve with response_estimator='probe' (one tangent per sample on all {S} "
                          f"samples): {sec_p:.1f} s, {rp.iterations} iterations, max MC error of f "
                          f"{np.nanmax(rp.f_err):.3g}; ratio_vs_numpy = time of the exact-tangent solve "
                          f"({S_tan} tangent samples, {sec:.1f} s, max error {np.nanmax(r.f_err):.3g}) in the same "
                          "run / this time")})
        ref_r, ref = timed(S, S_tan, sweep="jacobi") if with_ref else (None, None)
        recs.append({
            "workload": "dmft_solve_issue19", "backend": "numpy", "dtype": "float64", "N": None, "d": 10,
            "M": S, "S": S_tan, "seconds_per_step": sec, "throughput": None, "throughput_unit": None,
            "ratio_vs_numpy": (ref / sec) if ref else None, "ratio_vs_torch": None, "roofline_fraction": None,
            "iterations": r.iterations, "status": r.status, "sweep": r.info["sweep"],
            "iteration_reasons": r.info["iteration_reasons"], "load_average_at_start": load,
            "reference_seconds": ref, "reference_iterations": ref_r.iterations if ref_r else None,
            "f_err_max": float(np.nanmax(r.f_err)),
            "notes": (f"whole solve with 8 error batches, L=2 tanh gamma0=1, 8+8 points, T=40, M={S}, "
                      f"S_tan={S_tan}: {r.iterations} iterations ({r.info['sweep']}), {sec:.1f} s; timings "
                      f"{ {k: round(v, 2) for k, v in r.info['timings'].items()} }; "
                      + (f"before issue 19 (jacobi with continuation): {ref_r.iterations} iterations, {ref:.1f} s"
                         if ref else "before issue 19 at full size: 914 s, 26 iterations (not rerun)"))})
        if probe_rec is not None:
            recs.append(probe_rec)
    return recs


def bench_dmft_scaling(rate, quick=False, L=2):
    """How one DMFT iteration's time scales with M, T and P (records with a fitted exponent).

    From a base point, each of M (samples), T (steps) and P (points) is doubled alone; the exponent
    is log2(t_doubled / t_base). The work model (module docstring) predicts M¹, T² and P² for the
    march (the M·T²·P² term), rising towards T³ and P³ where the exact tangents (S_tan·T³·P³)
    dominate.
    """
    from meanfield_solvers.dmft import solve_dmft

    base = dict(M=1000, T=16, P=4) if quick else dict(M=16000, T=32, P=4)
    S_tan = 20 if quick else 50
    D = 8

    def one(M, T, P):
        rng = np.random.default_rng(3)
        X = rng.standard_normal((P, D))
        y = np.tanh(X[:, 0])
        best = float("inf")
        for _ in range(2 if quick else 3):
            r = solve_dmft(X, y, L, 1.0, 0.05, T, activation="tanh", n_samples=M, n_tangent=S_tan, max_iter=1,
                           stages=1, error_batches=0, tol=1e-30, max_bytes=16e9, sweep="jacobi")
            best = min(best, float((r.info.get("seconds") or [np.nan])[0]))
        return best

    t0 = one(**base)
    recs = []
    for name in ("M", "T", "P"):
        pt = dict(base)
        pt[name] *= 2
        t1 = one(**pt)
        expo = float(np.log2(t1 / t0))
        recs.append({"workload": f"dmft_iteration_scaling_{name}", "backend": "numpy", "dtype": "float64",
                     "N": None, "d": D, "M": pt["M"], "S": S_tan, "seconds_per_step": t1,
                     "throughput": expo, "throughput_unit": f"exponent of {name}",
                     "ratio_vs_numpy": t1 / t0, "ratio_vs_torch": None, "roofline_fraction": None,
                     "scaling_exponent": expo,
                     "notes": f"one iteration, L={L}, base M={base['M']} T={base['T']} P={base['P']} "
                              f"S_tan={S_tan} ({t0:.3g} s); {name} doubled: {t1:.3g} s"})
    return recs


def bench_deep(quick: bool = False) -> list:
    """Run the deep benchmarks; returns a list of records (see the module docstring)."""
    from meanfield.deep.network import blas_limit
    from meanfield_solvers.heap import retain_freed_memory

    try:
        from .residual_bench import bench_residual
        from .residual_dmft_bench import bench_residual_dmft
    except ImportError:  # loaded as a lone file (tests/test_deep_experiments.py): import it as a package module
        from benchmarks.residual_bench import bench_residual
        from benchmarks.residual_dmft_bench import bench_residual_dmft

    retain_freed_memory()
    n, rep = (1024, 2) if quick else (2048, 3)
    rate_all = gemm_rate(n, rep)
    with blas_limit(1):
        rate_one = gemm_rate(n, rep)
    rate = max(rate_all, rate_one)
    recs = bench_ensemble(rate, quick, loops=False)
    # at small N the per-seed Python and BLAS-call overhead is what batching removes
    for N in ((16,) if quick else (8, 16, 32, 64)):
        recs += bench_ensemble(rate, False, S=16, N=N, L=3, P=64, D=16)
    if not quick:  # more seeds amortise the batched call's fixed cost (~30 µs: dispatch, thread wake-up)
        for N in (8, 16, 32):
            recs += bench_ensemble(rate, False, S=64, N=N, L=3, P=64, D=16)
    recs += bench_residual(rate, quick)
    recs += bench_dmft(rate, quick)
    recs += bench_issue19_solve(quick)
    recs += bench_dmft_scaling(rate, quick)
    recs += bench_residual_dmft(quick)  # the sampled residual DMFT's sweep against L and T (issue 16)
    for r in recs:
        r["calibration_gemm_gflops"] = rate / 1e9
        r["calibration_gemm_gflops_1thread"] = rate_one / 1e9
        r["calibration_gemm_gflops_all_threads"] = rate_all / 1e9
    return recs


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps(bench_deep("--quick" in sys.argv), indent=1))
