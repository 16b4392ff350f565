"""Depth consistency: residual networks with 1/√L branches converge as the depth L doubles; with depth-
independent branches (κ = 0) they do not.

    python experiments/depth_consistency.py [--quick] [--out DIR] [--workers K] [--format png|pdf]

Setup: linear residual muP networks h^{ℓ+1} = h^ℓ + (β/L^κ) W^ℓ h^ℓ/√N (docs/residual.md §1), γ₀ = 1,
teacher-student task (D = 6, a tanh teacher with 2 units), P = 4 training points and one test point,
full-batch GD with η = limit.dt = 0.25 for 12 steps, depths L = 2 … 128 (quick: 2 … 32). The infinite-width
limit at each depth is the exact residual deep-linear DMFT (``limit.method = 'dmft_linear'``, one causal
pass, meanfield_solvers/dmft/residual_linear.py): no Monte Carlo error, so depth gaps are measured without
noise. Its memory grows like L² (about 2.2 GB at L = 128, inside the default limit.dmft_max_memory_gb = 4); the
full mode took 555 CPU-seconds in all (README). One parameter scan: ``model.depth`` × (κ, β) ∈ {(½, 1) depth-muP, (0, ½) no depth scaling}; every run
also trains ``NETS`` finite networks of width N = 256 beside its limit (the check that the limit describes
them at every depth).

Measured:

* the successive-depth gap gap(L) = sup_t max_μ |f_L(t) − f_{2L}(t)| of the limit's outputs (training and
  test points) and its fitted rate gap ∝ L^(−a) (theory for κ = ½: O(1/L), a → 1; the ratio of successive
  gaps → ½);
* the initial NTK scale tr K₀/n: converges for κ = ½ (the depth ODE of docs/residual.md §2), grows like
  (1 + β²)^L for κ = 0, until GD at the fixed step is unstable and the run is recorded as diverged;
* the finite networks' seed-mean outputs against the limit: z = RMS over points and times of
  (⟨f_N⟩ − f_∞) / SE (about 1 when the limit describes them up to their seed noise; an O(1/N) bias adds to it).

Writes DIR/results.md, DIR/depth_consistency.png and the scan DIR/scan/.
"""
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meanfield import scan  # noqa: E402
from meanfield.analysis.fitting import fit_power_law  # noqa: E402
from meanfield.plot import style  # noqa: E402

import _report  # noqa: E402
from _report import save, table, write_results  # noqa: E402

BRANCHES = {"κ = ½ (β = 1)": (0.5, 1.0), "κ = 0 (β = ½)": (0.0, 0.5)}
NETS = 6
WIDTH = 256


def mode(quick):
    return {"depths": [2, 4, 8, 16, 32] if quick else [2, 4, 8, 16, 32, 64, 128]}


def spec(m):
    return {
        "base": {
            "run": {"name": "depth_consistency", "seed": 0, "backend": "numpy"},
            "task": {"kind": "teacher_student", "d": 6, "teacher_width": 2, "teacher_init": "gaussian"},
            "model": {"activation": "linear", "depth": 2, "residual": True, "gamma0": 1.0},
            "limit": {"method": "dmft_linear", "dt": 0.25},
            "train": {"widths": [WIDTH], "seeds": NETS, "algorithm": "gd", "lr": 0.25, "n_train": 4},
            "time": {"t_max": 3.0, "records": 13, "spacing": "linear", "snapshots": 0},
            "eval": {"n_points": 1},
        },
        "axes": {"model.depth": list(m["depths"])},
        "zip": [{"model.branch_exponent": [k for k, _ in BRANCHES.values()],
                 "model.branch_scale": [b for _, b in BRANCHES.values()]}],
    }


def analyse(d, depths):
    col = scan.collect(d, keys=("f_mf", "f_nn", "K_mf", "risk_mf"))
    status = dict(zip(col.table["id"], col.table["status"]))
    out = {}
    for name, (kappa, beta) in BRANCHES.items():
        f, K0, ok, z, loss = [], [], [], [], []
        for L in depths:
            g = next(g for g in col.groups if int(g.params["model.depth"]) == L
                     and float(g.params["model.branch_exponent"]) == kappa)
            fm = g.arrays["f_mf"][0]                       # (T, n)
            fine = status[g.ids[0]] == "completed" and bool(np.all(np.isfinite(fm)))
            ok.append(fine)
            f.append(fm)
            K = g.arrays["K_mf"][0, 0]
            K0.append(float(np.trace(K) / K.shape[0]))
            loss.append(g.arrays["risk_mf"][0])
            if fine:
                fn = g.arrays["f_nn"][0, 0]                # (S, T, n)
                se = fn.std(axis=0, ddof=1) / math.sqrt(fn.shape[0])
                pos = se > 0
                z.append(float(np.sqrt(np.mean(((fn.mean(axis=0) - fm)[pos] / se[pos]) ** 2))))
            else:
                z.append(float("nan"))
        gaps = np.array([float(np.max(np.abs(f[i] - f[i + 1]))) if ok[i] and ok[i + 1] else float("nan")
                         for i in range(len(depths) - 1)])
        fin = np.isfinite(gaps)
        fit = fit_power_law(np.asarray(depths[:-1], float)[fin], gaps[fin]) if fin.sum() >= 3 else None
        out[name] = {"kappa": kappa, "beta": beta, "depths": np.asarray(depths), "ok": np.asarray(ok),
                     "gaps": gaps, "fit": fit, "K0": np.asarray(K0), "z": np.asarray(z), "loss": loss,
                     "f": f}
    return out


def figure(res, out, fmt):
    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    cols = {"κ = ½ (β = 1)": "C0", "κ = 0 (β = ½)": "C3"}
    for name, st in res.items():
        c = cols[name]
        L = st["depths"][:-1].astype(float)
        fin = np.isfinite(st["gaps"])
        lab = name + (f": slope {st['fit'].slope:.2f} ± {st['fit'].slope_se:.2f}" if st["fit"] is not None else "")
        axes[0].loglog(L[fin], st["gaps"][fin], "o-", color=c, label=lab)
        if (~fin).any():
            top = np.nanmax(st["gaps"]) if fin.any() else 1.0
            axes[0].plot(L[~fin], np.full((~fin).sum(), top * 2), "x", color=c, ms=8, label=f"{name}: diverged")
        axes[1].semilogy(st["depths"], st["K0"], "o-", color=c, label=name)
    if res:
        st = next(iter(res.values()))
        L = st["depths"][:-1].astype(float)
        ref = np.nanmax(st["gaps"][:1])
        axes[0].loglog(L, ref * (L / L[0]) ** -1.0, "k:", lw=1, label="∝ 1/L")
    axes[0].set_xlabel("depth L")
    axes[0].set_ylabel("sup_t max_μ |f_L − f_2L| (exact limit)")
    axes[0].set_xscale("log", base=2)
    axes[0].legend(fontsize=7)
    axes[1].set_xscale("log", base=2)
    axes[1].set_xlabel("depth L")
    axes[1].set_ylabel("tr K₀ / n (initial NTK)")
    axes[1].legend(fontsize=7)
    st = res["κ = ½ (β = 1)"]
    cmap = plt.get_cmap("viridis")
    for i, L in enumerate(st["depths"]):
        axes[2].plot(np.arange(len(st["loss"][i])), st["loss"][i], color=cmap(0.9 * i / max(1, len(st["depths"]) - 1)),
                     label=f"L = {L}")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("GD step")
    axes[2].set_ylabel("training loss (limit), κ = ½")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, out, "depth_consistency", fmt)


def main(argv=None):
    args = _report.study_args(__doc__, "depth_consistency", argv)
    out = args.out
    m = mode(args.quick)
    t0 = time.perf_counter()
    d = os.path.join(out, "scan")
    _report.run_study_scan(spec(m), d, args.workers)
    res = analyse(d, m["depths"])
    seconds = time.perf_counter() - t0
    fig = figure(res, out, args.format)
    rows = []
    for name, st in res.items():
        ratios = st["gaps"][1:] / st["gaps"][:-1]
        for i, L in enumerate(st["depths"]):
            gap = st["gaps"][i] if i < len(st["gaps"]) else float("nan")
            ratio = ratios[i - 1] if 0 < i < len(st["gaps"]) else float("nan")
            rows.append([name, int(L), f"{st['K0'][i]:.4g}", "yes" if st["ok"][i] else "**diverged**",
                         f"{gap:.3g}" if np.isfinite(gap) else "–", f"{ratio:.2f}" if np.isfinite(ratio) else "–",
                         f"{st['z'][i]:.2f}" if np.isfinite(st["z"][i]) else "–"])
    fits = [[name, f"{st['fit'].slope:.2f} ± {st['fit'].slope_se:.2f}" if st["fit"] is not None else "–"]
            for name, st in res.items()]
    md = write_results(out, "Depth consistency of residual networks" + (" (quick: smoke test)" if args.quick else ""), [
        ("Setup", f"Linear residual muP networks, γ₀ = 1, teacher-student D = 6, P = 4 (+1 test point), GD with "
                  f"η = limit.dt = 0.25 for 12 steps, depths {m['depths']}; limit: exact residual deep-linear DMFT; "
                  f"{NETS} finite networks of width {WIDTH} per run ({seconds:.0f} s with {args.workers} workers)."),
        ("Per depth", "gap(L) = sup_t max_μ |f_L − f_2L| of the limit; ratio = gap(L)/gap(L/2) (O(1/L): 0.5); "
         "z = RMS over points and times of (⟨f_N⟩ − f_∞)/SE for the finite networks (≈ 1: consistent).\n\n" + table(
             ["branches", "L", "tr K₀/n", "GD stable", "gap(L, 2L)", "ratio", "networks z"], rows)),
        ("Fitted rate gap ∝ L^slope", table(["branches", "slope"], fits)),
        ("Figure", f"- `{os.path.basename(fig)}`"),
    ])
    print(open(md).read())
    return res


if __name__ == "__main__":
    main()
