"""Finite-width deep muP networks approach the DMFT: RMS deviation ~ N^(-1/2), Var ~ N^(-1), N·Var collapse.

    python experiments/deep_width_convergence.py [--quick] [--out DIR] [--format png|pdf]

Setup: L = 2 hidden layers, tanh, teacher-student task (d = D inputs, tanh teacher with 2 units), a fixed
training set of P points and Q test points, full-batch GD with step dt = limit.dt (so the discrete DMFT is
the exact N -> infinity limit of the networks, docs/dmft.md §3.1), richness gamma0 in {0.5, 1, 2}, widths
N = 64 ... 2048 (quick: 64 ... 512), independent seeds per width. Each gamma0 is one product run
(``meanfield.run`` with ``limit.method = 'dmft'``).

Measured, per gamma0, over all recorded times t > 0 and all P + Q points:

* RMS deviation of single networks from the DMFT, rms_N = sqrt(mean_(s,t,mu) (f_N - f_inf)^2); fitted
  exponent of rms_N ~ N^a (theory: a = -1/2). The DMFT's own Monte Carlo error adds a width-independent
  floor, E rms^2 = Var_N + bias_N^2 + err_DMFT^2; the "floor-corrected" fit subtracts mean(err_DMFT^2)
  (the solver's batch error estimate, itself uncertain by ~40%).
* Seed variance Var_N = mean_(t,mu) Var_s f_N (no DMFT involved); fitted exponent b of Var_N ~ N^b
  (theory: b = -1, BP23).
* N·Var(t) curves for every width (collapse: they should coincide; the table gives the max relative
  spread of the time-averaged N·Var across widths >= 256).

Writes DIR/results.md (table) and figures rms.png, variance.png, collapse.png, outputs.png; plus one run
directory per gamma0 (DIR/g<gamma0>/).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import meanfield  # noqa: E402
from meanfield.analysis.fitting import fit_power_law  # noqa: E402
from meanfield.plot import style  # noqa: E402

from _report import pm, save, table, write_results  # noqa: E402
import _report  # noqa: E402

GAMMAS = (0.5, 1.0, 2.0)


def config(gamma0: float, quick: bool) -> meanfield.Config:
    P, D, Q = (4, 4, 2) if quick else (8, 8, 4)
    return meanfield.Config.from_dict({
        "run": {"name": f"deep_width_g{gamma0:g}", "seed": 0},
        "task": {"kind": "teacher_student", "d": D, "teacher_width": 2, "teacher_init": "gaussian"},
        "model": {"activation": "tanh", "depth": 2, "gamma0": gamma0},
        "limit": {"method": "dmft", "dt": 0.1, "dmft_samples": 2000 if quick else 8000,
                  "dmft_tangent_samples": 200 if quick else 500, "dmft_error_batches": 4,
                  "dmft_max_memory_gb": 8.0},
        "train": {"widths": [64, 128, 256, 512] if quick else [64, 128, 256, 512, 1024, 2048],
                  "seeds": 24 if quick else 64, "algorithm": "gd", "lr": 0.1, "n_train": P},
        "time": {"t_max": 2.0 if quick else 4.0, "records": 11 if quick else 21, "spacing": "linear"},
        "eval": {"n_points": Q},
    })


def analyse(res):
    """Per-width statistics and fits of one run (see module docstring)."""
    a = res.arrays
    widths = a["widths"].astype(float)
    pos = a["t"] > 0
    f_nn = a["f_nn"][:, :, pos]            # (W, S, T', n)
    f_inf = a["f_mf"][pos]                # (T', n)
    err2 = float(np.nanmean(a["f_mf_err"][pos] ** 2)) if np.all(np.isfinite(a["f_mf_err"][pos])) else 0.0
    ms = np.mean((f_nn - f_inf) ** 2, axis=(2, 3))            # (W, S) per network
    rms = np.sqrt(ms.mean(axis=1))
    rms_corr = np.sqrt(np.maximum(ms.mean(axis=1) - err2, 1e-300))
    var_tm = f_nn.var(axis=1, ddof=1)                          # (W, T', n)
    var = var_tm.mean(axis=(1, 2))
    nvar_t = widths[:, None] * var_tm.mean(axis=2)             # (W, T')
    fit_rms = fit_power_law(widths, rms)
    fit_rms_c = fit_power_law(widths, rms_corr)
    fit_var = fit_power_law(widths, var)
    # honest slope errors: bootstrap over seeds (independently per width), 200 replicas
    rng = np.random.default_rng(0)
    S = f_nn.shape[1]
    bs_rms, bs_var = [], []
    for _ in range(200):
        idx = rng.integers(0, S, size=(len(widths), S))
        fb = np.take_along_axis(f_nn, idx[:, :, None, None], axis=1)
        msb = np.take_along_axis(ms, idx, axis=1)
        bs_rms.append(fit_power_law(widths, np.sqrt(msb.mean(axis=1))).slope)
        bs_var.append(fit_power_law(widths, fb.var(axis=1, ddof=1).mean(axis=(1, 2))).slope)
    big = widths >= 256
    nv = nvar_t[big].mean(axis=1)
    spread = float((nv.max() - nv.min()) / nv.mean()) if big.sum() >= 2 else float("nan")
    return dict(widths=widths, rms=rms, rms_corr=rms_corr, var=var, nvar_t=nvar_t, t=a["t"][pos], err2=err2,
                fit_rms=fit_rms, fit_rms_c=fit_rms_c, fit_var=fit_var, spread=spread,
                boot_rms_se=float(np.std(bs_rms, ddof=1)), boot_var_se=float(np.std(bs_var, ddof=1)))


def figures(results, out, fmt):
    plt = style()
    files = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    cmap = plt.get_cmap("plasma")
    for i, (g, st, _) in enumerate(results):
        c = cmap(i / max(1, len(results)) * 0.85)
        w = st["widths"]
        # the same slope ± error as the results table: bootstrap over seeds for the raw RMS, the
        # least-squares scatter for the floor-corrected one
        for ax, key, fkey, se in ((axes[0], "rms", "fit_rms", st["boot_rms_se"]),
                                  (axes[1], "rms_corr", "fit_rms_c", st["fit_rms_c"].slope_se)):
            fit = st[fkey]
            ax.loglog(w, st[key], "o", color=c, label=f"γ₀ = {g:g}: slope {pm(fit.slope, se)}")
            ax.loglog(w, np.exp(fit.intercept) * w ** fit.slope, "-", color=c, lw=1)
    for ax, title in zip(axes, ("raw", "DMFT MC floor subtracted")):
        w = results[0][1]["widths"]
        ax.loglog(w, results[0][1]["rms"][0] * (w / w[0]) ** -0.5, "k:", lw=1, label="∝ N^(-1/2)")
        ax.set_xlabel("width N")
        ax.set_ylabel("RMS deviation |f_N − f_DMFT|")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    files.append(save(fig, out, "rms", fmt))

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for i, (g, st, _) in enumerate(results):
        c = cmap(i / max(1, len(results)) * 0.85)
        fit = st["fit_var"]
        ax.loglog(st["widths"], st["var"], "o", color=c,
                  label=f"γ₀ = {g:g}: slope {pm(fit.slope, st['boot_var_se'])} (bootstrap s.e., as in the table)")
        ax.loglog(st["widths"], np.exp(fit.intercept) * st["widths"] ** fit.slope, "-", color=c, lw=1)
    ax.set_xlabel("width N")
    ax.set_ylabel("seed variance of f (mean over t, μ)")
    ax.legend(fontsize=7)
    files.append(save(fig, out, "variance", fmt))

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.2), squeeze=False)
    vir = plt.get_cmap("viridis")
    for ax, (g, st, _) in zip(axes[0], results):
        W = len(st["widths"])
        for k, N in enumerate(st["widths"]):
            ax.plot(st["t"], st["nvar_t"][k], color=vir(k / max(1, W - 1) * 0.9), label=f"N = {int(N)}")
        ax.set_title(f"γ₀ = {g:g}", fontsize=9)
        ax.set_xlabel("t")
    axes[0, 0].set_ylabel("N · Var f_μ(t) (mean over μ)")
    axes[0, 0].legend(fontsize=7)
    files.append(save(fig, out, "collapse", fmt))

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.2), squeeze=False)
    for ax, (g, _, res) in zip(axes[0], results):
        a = res.arrays
        W = len(a["widths"])
        for k, N in enumerate(a["widths"]):
            f = a["f_nn"][k][:, :, 0]
            m, s = f.mean(0), f.std(0)
            c = vir(k / max(1, W - 1) * 0.9)
            ax.plot(a["t_nn"], m, color=c, label=f"N = {int(N)}")
            ax.fill_between(a["t_nn"], m - s, m + s, color=c, alpha=0.15, lw=0)
        ax.plot(a["t"], a["f_mf"][:, 0], "k", lw=2, label="DMFT")
        ax.axhline(a["y_train"][0], color="0.5", ls=":", lw=0.8)
        ax.set_title(f"γ₀ = {g:g}: f at training point 0", fontsize=9)
        ax.set_xlabel("t")
    axes[0, 0].legend(fontsize=7)
    files.append(save(fig, out, "outputs", fmt))
    return files


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--format", default="png", choices=("png", "pdf"))
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    out = args.out or os.path.join("runs", "deep_width_convergence" + ("_quick" if args.quick else ""))
    os.makedirs(out, exist_ok=True)
    results, rows = [], []
    for g in GAMMAS:
        t0 = time.perf_counter()
        res = meanfield.run_to_dir(config(g, args.quick), os.path.join(out, f"g{g:g}"), overwrite=True, log=print)
        st = analyse(res)
        lim = res.summary["limit"]
        rows.append([f"{g:g}", pm(st["fit_rms"].slope, st["boot_rms_se"]), pm(st["fit_rms_c"].slope,
                     st["fit_rms_c"].slope_se), pm(st["fit_var"].slope, st["boot_var_se"]),
                     f"{st['spread']:.2f}", f"{np.sqrt(st['err2']):.2g}",
                     f"{lim['status']} ({lim['iterations']} it, {res.summary['seconds_limit']:.0f} s)",
                     f"{time.perf_counter() - t0:.0f}"])
        results.append((g, st, res))
        print(f"gamma0 = {g:g}: rms slope {st['fit_rms'].slope:.3f} ± {st['boot_rms_se']:.3f}, "
              f"var slope {st['fit_var'].slope:.3f} ± {st['boot_var_se']:.3f} (bootstrap over seeds)")
    files = figures(results, out, args.format)
    cfg = results[0][2].config
    per_width = [[f"{g:g}"] + [f"{r:.3g}" for r in st["rms"]] for g, st, _ in results]
    md = write_results(out, "Deep muP networks (L = 2, tanh) against the DMFT", [
        ("Setup", f"P = {cfg.train.n_train} training + Q = {cfg.eval.n_points} test points, D = {cfg.task.d}, "
                  f"full-batch GD with lr = limit.dt = {cfg.limit.dt} up to t = {cfg.time.t_max}, "
                  f"{cfg.train.seeds} seeds per width, widths {list(cfg.train.widths)}; DMFT with "
                  f"{cfg.limit.dmft_samples} samples ({cfg.limit.dmft_tangent_samples} for the responses). "
                  "Statistics pool all recorded times t > 0 and all points."),
        ("Fitted exponents (theory: RMS -1/2, Var -1)", "Errors of the RMS and Var slopes: bootstrap over "
         "seeds (200 replicas); of the floor-corrected slope: least-squares scatter.\n\n" + table(
            ["γ₀", "RMS slope", "RMS slope (MC floor removed)", "Var slope", "N·Var spread (N ≥ 256)",
             "DMFT MC err (rms)", "DMFT", "seconds"], rows)),
        ("RMS deviation per width", table(["γ₀"] + [f"N = {int(n)}" for n in results[0][1]["widths"]], per_width)),
        ("Figures", "\n".join(f"- `{os.path.basename(f)}`" for f in files)),
    ])
    print(md, *files, sep="\n")
    return results


if __name__ == "__main__":
    main()
