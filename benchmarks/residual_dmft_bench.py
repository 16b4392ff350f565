r"""Cost of the sampled residual DMFT's causal sweep against depth L, steps T, points P and samples S (issue 16).

``python -m benchmarks.residual_dmft_bench [--quick]`` prints one line per solve (seconds of one sweep, no error
batches, one BLAS thread) and the fitted exponent of the time in each series, with the 1-minute load average
before and after; :func:`bench_residual_dmft` makes the records of ``meanfield bench --only deep``.
Model (meanfield_solvers/dmft/residual_sampled.py): the response tangents dominate, with
:math:`r_t = (L-1)(P+n)` seeds per time carried through L layers, :math:`O(L(L-1)\,T^3 n^3 S_{tan})`; the primal and
kernel work is :math:`O(L\,T^2 n S)`. Workload: tanh, P training points, D = 4, β = 1, γ₀ = 1, dt = 0.2;
from the base L = 4, T = 10, P = 4, S = 2000, S_tan = 50 one of L (2 … 16, also at S_tan = 400), T (5 … 40),
P (2 … 8) or S (1000 … 16000) varies (quick: S = 500, S_tan = 20, L = 2, 4 and T = 5, 10).
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


BASE = dict(L=4, T=10, P=4, S=2000, S_tan=50)  # P training points (no test points)


def _series(quick):
    """(name, varied key, values, fixed overrides) of each scaling series."""
    if quick:
        return [("L", "L", (2, 4), dict(S=500, S_tan=20)), ("T", "T", (5, 10), dict(S=500, S_tan=20))]
    return [("L", "L", (2, 4, 8, 16), {}), ("L", "L", (2, 4, 8, 16), dict(S_tan=400)), ("T", "T", (5, 10, 20, 40), {}),
            ("P", "P", (2, 4, 8), {}), ("S", "S", (1000, 4000, 16000), {})]


def run(quick=False, verbose=True):
    """Time one sweep for every case of every series; returns (cases, fits, (load before, after))."""
    out, fits = [], []
    load0 = _load()
    for name, key, values, over in _series(quick):
        pts = []
        for v in values:
            c = dict(BASE, **over)
            c[key] = v
            rng = np.random.default_rng(0)
            X = rng.standard_normal((c["P"], 4))
            y = np.tanh(X[:, 0])
            t0 = time.perf_counter()
            solve_residual_sampled(X, y, c["L"], 1 / math.sqrt(c["L"]), 1.0, 0.2, c["T"], n_samples=c["S"],
                                   n_tangent=c["S_tan"], error_batches=0)
            c["seconds"] = time.perf_counter() - t0
            c["bytes"] = residual_sampled_bytes(c["L"], c["T"], c["P"], c["P"], c["S"], c["S_tan"])
            out.append(c)
            pts.append((v, c["seconds"]))
            if verbose:
                print(f"L={c['L']:2d} T={c['T']:2d} P={c['P']} S={c['S']} S_tan={c['S_tan']}: {c['seconds']:7.3f} s, "
                      f"memory estimate {c['bytes'] / 1e6:7.1f} MB", flush=True)
        x, t = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        a = float(np.polyfit(x, t, 1)[0])
        last = float((t[-1] - t[-2]) / (x[-1] - x[-2]))
        fixed = ", ".join(f"{k} = {v}" for k, v in dict(BASE, **over).items() if k != key)
        fits.append((name, f"{name} ({fixed})", a, last, pts))
        if verbose:
            print(f"fitted exponent of the time against {name} ({fixed}): {a:.2f} (last doubling {last:.2f})")
    load1 = _load()
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
    for key, name, a, last, pts in fits:
        recs.append({"workload": f"residual_dmft_sweep_scaling_{key}", "backend": "numpy", "dtype": "float64",
                     "N": None, "d": 4, "M": None, "S": None, "seconds_per_step": pts[-1][1],
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
