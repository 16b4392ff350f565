"""Lazy versus mean-field training: a scan of the output scale alpha with antithetic initialisation.

    python experiments/lazy_vs_meanfield.py [--quick] [--out DIR] [--format png|pdf]

With the objective scaled by 1/alpha^2 (Chizat, Oyallon & Bach 2019) the function moves O(1) per
unit time at every alpha while each neuron moves O(1/alpha): the RMS displacement
RMS_i |theta_i(t) - theta_i(0)| at fixed t shrinks like 1/alpha (fitted over the large-alpha
part of the scan), and the trained function approaches kernel (NTK) regression, represented by a
run at a much larger alpha_ref: ||f_alpha(t) - f_ref(t)|| -> 0 (the bound is O(1/alpha); the measured decay is faster). Antithetic
pairs make f_0 = 0 at every alpha, and the seeding makes the initial neurons identical across
alpha, so the differences are pure dynamics.
"""
import argparse
import os

import numpy as np

import meanfield
from meanfield.analysis import runs
from meanfield.plot import style
from meanfield.figures import plot_power_laws

from _report import pm, save, table, write_results
import _report  # noqa: E402


def config(alpha: float, quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": f"lazy_alpha{alpha:g}", "seed": 0},
        "task": {"kind": "teacher_student", "d": 5, "teacher_width": 2},
        "model": {"activation": "erf", "alpha": float(alpha), "antithetic": True},
        "limit": {"method": "none"},
        "train": {"widths": [64] if quick else [256], "seeds": 2 if quick else 4, "algorithm": "population_gd",
                  "lr": 0.05},
        "time": {"t_max": 2.0 if quick else 5.0, "records": 10, "snapshots": 2},
        "eval": {"n_points": 32},
    })


def scan(quick: bool):
    alphas = [1, 2, 4, 8, 16, 32] if quick else [1, 2, 4, 8, 16, 32, 64, 128]
    alpha_ref = 1024.0
    results = {a: meanfield.run(config(a, quick)) for a in alphas + [alpha_ref]}
    return alphas, alpha_ref, results


def analyse(alphas, alpha_ref, results, out, fmt="png", fit_from=4):
    mv = np.array([runs.movement(results[a]).nn[0, -1, :] for a in alphas])        # (A, S) at t_max
    ref = results[alpha_ref]["f_nn"][0]                                             # (S, T, Q)
    # RMS over evaluation points of f_alpha(t_max) - f_ref(t_max), per seed (same initial neurons)
    fd = np.array([np.sqrt(np.mean((results[a]["f_nn"][0][:, -1] - ref[:, -1]) ** 2, axis=-1))
                   for a in alphas])  # (A, S)
    al = np.asarray(alphas, dtype=float)
    big = al >= fit_from
    mfit = runs.fit_vs_width(al[big], mv[big])
    ffit = runs.fit_vs_width(al[big], fd[big])
    risk = np.array([results[a]["risk_nn"][0, :, -1].mean() for a in alphas])
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    # seed means with their standard errors: the same weighted fits as runs.fit_vs_width in the table
    def mean_se(q):
        return q.mean(1), q.std(ddof=1, axis=1) / np.sqrt(q.shape[1])
    plot_power_laws(axes[0], al[big], {
        r"movement RMS$_i|\theta_i(t)-\theta_i(0)|$": mean_se(mv[big]),
        rf"$\|f_\alpha - f_{{\alpha={alpha_ref:g}}}\|$": mean_se(fd[big]),
    }, xlabel=r"$\alpha$", ylabel=f"at t = {results[alphas[0]]['t'][-1]:.3g}", ref_slope=-1, xsym=r"\alpha")
    axes[0].plot(al, mv.mean(1), "k:", lw=0.8)
    t = results[alpha_ref]["t"]
    cmap = plt.get_cmap("viridis")
    for i, a in enumerate(alphas):
        axes[1].plot(t, results[a]["risk_nn"][0].mean(0), color=cmap(i / len(alphas)), label=f"α = {a:g}")
    axes[1].plot(t, results[alpha_ref]["risk_nn"][0].mean(0), "k--", label=f"α = {alpha_ref:g} (NTK proxy)")
    axes[1].set_xlabel("mean-field time t")
    axes[1].set_ylabel("population risk")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=7)
    files = [save(fig, out, "lazy_scan", fmt)]
    rows = [[f"{a:g}", pm(mv[i].mean(), mv[i].std(ddof=1) / np.sqrt(mv.shape[1])),
             pm(fd[i].mean(), fd[i].std(ddof=1) / np.sqrt(fd.shape[1])), f"{risk[i]:.4g}"] for i, a in enumerate(alphas)]
    md = write_results(out, "Lazy versus mean-field: scan of α", [
        ("Setup", f"erf teacher–student d = 5, width {int(results[alphas[0]]['widths'][0])}, antithetic init, "
                  f"population GD, reference α = {alpha_ref:g}."),
        ("Per α at the final time", table(["α", "movement", "‖f_α − f_ref‖", "risk"], rows)),
        (f"Fits over α ≥ {fit_from} (slope ± stderr)", table(["quantity", "slope", "expected"], [
            ["movement", pm(mfit.slope, mfit.slope_se), "−1"],
            ["‖f_α − f_ref‖", pm(ffit.slope, ffit.slope_se), "≤ −1 (Chizat–Oyallon–Bach bound is O(1/α))"]])),
    ])
    return {"movement_fit": mfit, "function_fit": ffit, "files": files + [md]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/lazy_vs_meanfield")
    ap.add_argument("--format", default="png", choices=["png", "pdf"])
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    os.makedirs(args.out, exist_ok=True)
    rep = analyse(*scan(args.quick), args.out, args.format)
    print(open(os.path.join(args.out, "results.md")).read())
    return rep


if __name__ == "__main__":
    main()
