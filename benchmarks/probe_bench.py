r"""The DMFT's response estimators compared: exact tangents against randomised probes (issue 19).

``python -m benchmarks.probe_bench {efficiency,efficiency_large,scaling,scaling_large,scaling_large_LS,target}
[--out FILE]`` (JSON lines, one record per solve, each with the load average before and after it, the
wall time and the process CPU time — on a shared, loaded machine the CPU time is the cost to compare:
BENCHMARKS.md, "Cheaper responses"). The problem everywhere: L = 2 (or as stated)
tanh, γ₀ = 1, dt = 0.05, P training points with inputs N(0, I_8)/… and targets tanh(x₁), one BLAS thread
per worker.

* ``efficiency`` — at three sizes, whole solves (8 error batches) with the exact tangents (100 and 500
  tangent samples) and with probes (1 and 4 directions per sample), all with S = 4000 samples. Error
  metric: ``e2 = mean over t > 0 and points of f_err²`` (the solver's own batch estimate of the Monte
  Carlo variance of f, which includes the kernel and the response noise), and the cost
  ``e2 × seconds`` (lower is better: the variance a second of solving buys, up to the S^{-1}
  law). At the smallest size also the actual error against an independent high-sample exact-tangent
  reference (RMS of f and of R_B over its support).
* ``scaling`` — main solves (sweep + certification, no error batches) with one parameter varied from a
  base point (P = 4, T = 32, L = 2, S = 4000, 50 tangent samples), for both estimators; log-log fits with
  standard errors are made by :func:`fit`. ``scaling_large`` (P, T) and ``scaling_large_LS`` (L, samples):
  around P = 8, T = 40 at the default 500 tangent samples, where the exact tangents dominate.
* ``efficiency_large`` — the two larger sizes of ``efficiency`` again (probe, exact 100 and 500).
* ``target`` — P = 32, T = 100, L = 2 with probes, S = 4000, 8 error batches, 2 workers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

__all__ = ["problem", "solve", "efficiency", "scaling", "target", "fit"]


def problem(P, Q=0, D=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D))
    Xt = rng.standard_normal((Q, D)) if Q else None
    return X, np.tanh(X[:, 0]), Xt


def solve(P, T, L=2, S=4000, est="tangent", n_tangent=500, probes=1, B=8, seed=0, Q=0, workers=2,
          max_bytes=8e9, gamma0=1.0):
    from meanfield_solvers.dmft import solve_dmft

    X, y, Xt = problem(P, Q)
    load0 = os.getloadavg()[0]
    c0 = time.process_time()  # CPU seconds of all the process's threads: less sensitive to the machine's load
    t0 = time.perf_counter()
    r = solve_dmft(X, y, L, gamma0, 0.05, T, X_test=Xt, n_samples=S, n_tangent=n_tangent, seed=seed,
                   error_batches=B, response_estimator=est, probes=probes, workers=workers, max_bytes=max_bytes)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rec = dict(P=P, Q=Q, T=T, L=L, S=S, estimator=est, n_tangent=n_tangent if est == "tangent" else None,
               probes=probes if est == "probe" else None, B=B, seed=seed, workers=workers, status=r.status,
               iterations=r.iterations, wall=wall, cpu=cpu, main=r.info["timings"]["main_solve"],
               sweep_seconds=(r.info.get("seconds") or [None])[0], load_before=load0,
               load_after=os.getloadavg()[0], memory_estimate_gb=r.info["memory_estimate_bytes"] / 1e9)
    if B >= 2 and r.converged:
        e2 = float(np.mean(r.f_err[1:] ** 2))
        rec.update(e2=e2, e2_x_seconds=e2 * wall, f_err_max=float(np.nanmax(r.f_err)))
    return rec, r


def _rms_support(A, B, g_nt, n_pts, strict):
    mask = np.kron(np.tri(g_nt, k=-1 if strict else 0), np.ones((n_pts, n_pts))).astype(bool)
    return float(np.sqrt(np.mean((A.reshape(A.shape[0], -1)[:, mask.ravel()]
                                  - B.reshape(B.shape[0], -1)[:, mask.ravel()]) ** 2)))


def efficiency(out, sizes=((4, 20), (8, 40), (16, 50)),
               variants=(("tangent", 100, 1), ("tangent", 500, 1), ("probe", None, 1), ("probe", None, 4))):
    for P, T in sizes:
        ref = None
        if (P, T) == (4, 20):  # an independent high-sample exact reference (other seed), smallest size only
            rec, ref = solve(P, T, S=32000, est="tangent", n_tangent=4000, B=0, seed=99)
            rec["role"] = "reference"
            out(rec)
        for est, nt, K in variants:
            if est == "tangent" and P * T > 400 and nt == 500:
                continue  # (PT)^3 x 500: minutes per batch on this machine; 100 tangent samples shown
            rec, r = solve(P, T, est=est, n_tangent=nt or 500, probes=K)
            if ref is not None:
                rec["f_rms_vs_ref"] = float(np.sqrt(np.mean((r.f[1:] - ref.f[1:]) ** 2)))
                rec["RB_rms_vs_ref"] = _rms_support(r.RB, ref.RB, T + 1, P, strict=False)
                rec["RA_rms_vs_ref"] = _rms_support(r.RA, ref.RA, T + 1, P, strict=True)
                rec["RB_rms_ref"] = float(np.sqrt(np.mean(ref.RB ** 2)))
            out(rec)


def efficiency_large(out):
    """The two larger sizes of :func:`efficiency` again, exact (100 tangent samples) and probes (1
    direction) back to back, and the exact with 500 at P = 8, T = 40."""
    efficiency(out, sizes=((8, 40), (16, 50)),
               variants=(("probe", None, 1), ("tangent", 100, 1), ("tangent", 500, 1)))


def scaling(out):
    base = dict(P=4, T=32, L=2, S=4000)
    sweeps = {"P": [4, 8, 16], "T": [16, 32, 64], "L": [2, 3, 4], "S": [1000, 2000, 4000, 8000]}
    for est in ("probe", "tangent"):
        for name, values in sweeps.items():
            if est == "tangent" and name == "S":
                name, values = "n_tangent", [25, 50, 100, 200]
            for v in values:
                kw = dict(base)
                if name == "n_tangent":
                    kw["n_tangent"] = v
                else:
                    kw[name] = v
                kw.setdefault("n_tangent", 50)
                rec, _ = solve(est=est, B=0, workers=1, **kw)
                rec["varied"] = name
                out(rec)


def scaling_large(out):
    """P and T sweeps around the issue-19 size at the default 500 tangent samples, where the exact
    tangents' (PT)^3 term dominates (the base of :func:`scaling` is march-dominated)."""
    base = dict(P=8, T=40, L=2, S=4000, n_tangent=500)
    for est in ("probe", "tangent"):
        for name, values in {"P": [4, 8, 16], "T": [20, 40, 80]}.items():
            for v in values:
                kw = dict(base, **{name: v})
                rec, _ = solve(est=est, B=0, workers=1, **kw)
                rec["varied"] = name
                rec["series"] = "large"
                out(rec)


def scaling_large_LS(out):
    """L and samples around P = 8, T = 40 (500 exact tangent samples; the exact estimator's samples
    are its tangent samples, the probe's all samples)."""
    base = dict(P=8, T=40, L=2, S=4000, n_tangent=500)
    series = [("probe", "L", [2, 3, 4]), ("tangent", "L", [2, 3, 4]), ("probe", "S", [1000, 2000, 4000, 8000]),
              ("tangent", "n_tangent", [100, 200, 400, 800])]
    for est, name, values in series:
        for v in values:
            rec, _ = solve(est=est, B=0, workers=1, **dict(base, **{name: v}))
            rec["varied"] = name
            rec["series"] = "large"
            if name == "n_tangent":
                rec["n_tangent"] = v
            out(rec)


def scaling_probe_target(out):
    """The probes alone towards the P*T = 3200 target: T at P = 32 and P at T = 100 (main solves, 8 GB)."""
    for name, values, base in (("T", [25, 50, 100], dict(P=32)), ("P", [8, 16, 32], dict(T=100))):
        for v in values:
            rec, _ = solve(est="probe", B=0, workers=1, **dict(base, **{name: v}))
            rec["varied"] = name
            rec["series"] = "target"
            out(rec)


def target(out):
    rec, r = solve(32, 100, L=2, S=4000, est="probe", B=8, workers=2, max_bytes=8e9)
    rec["f_err_median"] = float(np.nanmedian(r.f_err[1:]))
    rec["f_final"] = r.f[-1].tolist()
    rec["f_err_final"] = r.f_err[-1].tolist()
    rec["timings"] = r.info["timings"]
    out(rec)


def fit(records, varied, key="main"):
    """Log-log least-squares slope of ``key`` against the varied parameter, with its standard error."""
    xs = np.log([r[varied] if varied != "n_tangent" else r["n_tangent"] for r in records])
    ys = np.log([r[key] for r in records])
    if len(xs) < 3:
        return float(np.polyfit(xs, ys, 1)[0]), float("nan")
    (a, _), cov = np.polyfit(xs, ys, 1, cov=True)
    return float(a), float(np.sqrt(cov[0, 0]))


if __name__ == "__main__":  # pragma: no cover
    from meanfield_solvers.threads import blas_threads

    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("efficiency", "efficiency_large", "scaling", "scaling_large", "scaling_large_LS",
                                       "scaling_probe_target", "target"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    fh = open(a.out, "a") if a.out else sys.stdout

    def out(rec):
        fh.write(json.dumps(rec) + "\n")
        fh.flush()

    with blas_threads(1):
        {"efficiency": efficiency, "efficiency_large": efficiency_large, "scaling": scaling,
         "scaling_large": scaling_large,
         "scaling_large_LS": scaling_large_LS, "scaling_probe_target": scaling_probe_target,
         "target": target}[a.what](out)
