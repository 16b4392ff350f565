r"""Cost of the sampled residual DMFT's causal sweep against depth L and steps T (issue 16).

``python -m benchmarks.residual_dmft_bench [--quick]`` prints one line per solve (seconds of one sweep, no error
batches, one BLAS thread) and the fitted exponents of the time against L and T, with the 1-minute load average
before and after; :func:`bench_residual_dmft` makes the records of ``meanfield bench --only deep``. Model (meanfield_solvers/dmft/residual_sampled.py): the response tangents dominate, with
:math:`r_t = (L-1)(P+n)` seeds per time carried through L layers, :math:`O(L(L-1)\,T^3 n^3 S_{tan})`; the primal and
kernel work is :math:`O(L\,T^2 n S)`. Workload: tanh, 3 training + 1 test point, D = 4, β = 1, γ₀ = 1, dt = 0.2,
S = 2000 samples; L = 2, 4, 8, 16 at T = 10 with S_tan = 50 and 400 tangent samples, and T = 5, 10, 20, 40 at L = 4
with S_tan = 50 (quick: S = 500, S_tan = 20, L = 2, 4, T = 5, 10).
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from meanfield_solvers.dmft.residual_sampled import residual_sampled_bytes, solve_residual_sampled


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def run(quick=False, verbose=True):
    rng = np.random.default_rng(0)
    X, Xt, y = rng.standard_normal((3, 4)), rng.standard_normal((1, 4)), np.array([1.0, -0.5, 0.8])
    S = 500 if quick else 2000
    tans = (20,) if quick else (50, 400)
    cases = [(L, 10, st) for st in tans for L in ((2, 4) if quick else (2, 4, 8, 16))]
    cases += [(4, T, tans[0]) for T in ((5,) if quick else (5, 20, 40))]
    out = []
    load0 = _load()
    for L, T, S_tan in cases:
        t0 = time.perf_counter()
        solve_residual_sampled(X, y, L, 1 / math.sqrt(L), 1.0, 0.2, T, X_test=Xt, n_samples=S, n_tangent=S_tan,
                               error_batches=0)
        sec = time.perf_counter() - t0
        out.append(dict(L=L, T=T, S=S, S_tan=S_tan, seconds=sec, bytes=residual_sampled_bytes(L, T, 4, 3, S, S_tan)))
        if verbose:
            print(f"L={L:2d} T={T:2d} S={S} S_tan={S_tan}: {sec:7.3f} s, memory estimate "
                  f"{out[-1]['bytes'] / 1e6:7.1f} MB", flush=True)
    load1 = _load()
    series = [(f"L (T = 10, S_tan = {st})", sorted((r["L"], r["seconds"]) for r in out if r["T"] == 10
                                                      and r["S_tan"] == st)) for st in tans]
    series.append((f"T (L = 4, S_tan = {tans[0]})", sorted({(r["T"], r["seconds"]) for r in out
                                                          if r["L"] == 4 and r["S_tan"] == tans[0]})))
    fits = []
    for name, pts in series:
        if len(pts) >= 2:
            x, t = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            a = float(np.polyfit(x, t, 1)[0])
            last = float((t[-1] - t[-2]) / (x[-1] - x[-2]))
            fits.append((name, a, last, pts))
            if verbose:
                print(f"fitted exponent of the time against {name}: {a:.2f} (last doubling {last:.2f})")
    if verbose:
        print(f"load average (1 min) before {load0:.2f}, after {load1:.2f}")
    return out, fits, (load0, load1)


def bench_residual_dmft(quick=False) -> list:
    """Records ``residual_dmft_sweep_scaling_L`` (one per tangent-sample count) and ``..._T`` for
    ``meanfield bench --only deep``: the fitted exponent of the sweep's time (``scaling_exponent``), the time of
    the largest case (``seconds_per_step``) and every case in ``notes``."""
    from meanfield_solvers.threads import blas_threads

    with blas_threads(1):
        out, fits, load = run(quick, verbose=False)
    recs = []
    for name, a, last, pts in fits:
        key = name.split()[0]
        recs.append({"workload": f"residual_dmft_sweep_scaling_{key}", "backend": "numpy", "dtype": "float64",
                     "N": None, "d": 4, "M": out[0]["S"], "S": None, "seconds_per_step": pts[-1][1],
                     "throughput": a, "throughput_unit": f"exponent of {key}", "ratio_vs_numpy": pts[-1][1] / pts[0][1],
                     "ratio_vs_torch": None, "roofline_fraction": None, "scaling_exponent": a,
                     "scaling_exponent_last_doubling": last, "load": list(load),
                     "notes": f"sampled residual DMFT, one causal sweep, against {name}: "
                              + ", ".join(f"{v}: {t:.3g} s" for v, t in pts)
                              + f"; load average {load[0]:.2f} -> {load[1]:.2f}"})
    return recs


if __name__ == "__main__":
    from meanfield_solvers.threads import blas_threads

    with blas_threads(1):
        run("--quick" in sys.argv)
