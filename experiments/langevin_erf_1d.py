"""Mean-field Langevin dynamics with erf units against the Gibbs fixed point it must reach (d = 1).

    python experiments/langevin_erf_1d.py [--quick] [--out DIR]

Erf units (erf(z/sqrt 2)) in input dimension 1, a one-unit erf teacher, population risk, weight
decay lambda and temperatures tau. The particle limit (Euler-Maruyama) runs from the usual Gaussian
start towards the Gibbs fixed point mu* ~ exp(-beta [Psi(theta; mu*) + lambda |theta|^2 / 2]), which
meanfield_solvers.gibbs.one_dim solves on a grid (a | w Gaussian, rho*(w) from a self-consistent
h). Noisy networks of width N (population gradient descent) approach it with an O(1/N) bias.

Compared: the limit's risk and its estimated free energy E - tau H over time against the Gibbs
values; its late moments E[w^2], E[a w], E[a^2] against the solver's; each width's stationary
risk (time average over the second half, seed mean +- s.e.) against R*, with C fitted in
R_N - R* ~ C / N.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import meanfield  # noqa: E402
from _report import pm, save, table, write_results  # noqa: E402
import _report  # noqa: E402
from meanfield_solvers.gibbs import gibbs_1d  # noqa: E402

LAM = 0.5


def config(tau, quick):
    return {
        "run": {"name": f"langevin_erf_{tau}", "seed": 0, "backend": "numba"},
        "task": {"kind": "teacher_student", "d": 1, "teacher_width": 1},
        "model": {"activation": "erf"},
        "limit": {"particles": 2048 if quick else 4096, "expectation": "analytic", "integrator": "euler_maruyama",
                  "dt": 0.05},
        "train": {"widths": [8, 32, 128], "seeds": 32 if quick else 128, "algorithm": "population_gd", "lr": 0.05,
                  "coupling": False},
        "time": {"t_max": 20.0 if quick else 40.0, "records": 41, "spacing": "linear", "snapshots": 21},
        "eval": {"n_points": 4},
        "dynamics": {"temperature": tau, "weight_decay": LAM},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer particles and seeds, shorter (a smoke test)")
    ap.add_argument("--out", default=os.path.join("runs", "langevin_erf_1d"))
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    os.makedirs(args.out, exist_ok=True)
    from meanfield.viz import style
    from meanfield.viz.bands import caption, legend, legend_note

    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    temps = (0.05, 0.2)
    rows, rows_nn, rep = [], [], {}
    for j, tau in enumerate(temps):
        res = meanfield.run(config(tau, args.quick))
        v, a_star = float(res["teacher_w"][0, 0]), float(res["teacher_a"][0])
        sol = gibbs_1d("erf", np.array([v]), np.array([a_star]), LAM, tau)
        t, col = res["t"], f"C{j}"
        late = t >= t[-1] / 2
        snaps = res["particles_mf"][res["snap_t"] >= t[-1] / 2]  # (K, M, 2): columns a, w
        a, w = snaps[..., 0], snaps[..., 1]
        mom = {"E[w^2]": (np.mean(w * w), sol.ew2), "E[a w]": (np.mean(a * w), sol.eaw), "E[a^2]": (np.mean(a * a), sol.ea2)}
        lim_risk = float(res["risk_mf"][late].mean())
        F = res["free_energy_mf"]
        F_late = float(np.nanmean(F[late]))
        rows.append([f"{tau:g}", f"{sol.risk:.4f}", f"{lim_risk:.4f}", f"{sol.free_energy:.4f}", f"{F_late:.4f}"]
                    + [f"{m:.4f} / {s:.4f}" for m, s in mom.values()])
        axes[0].plot(t, res["risk_mf"], color=col, lw=2, label=f"limit, tau = {tau:g}")
        axes[0].axhline(sol.risk, color=col, ls="--", lw=0.8, label=f"Gibbs R*, tau = {tau:g}")
        axes[2].plot(t, F, color=col, label=f"estimated F, tau = {tau:g}")
        axes[2].axhline(sol.free_energy, color=col, ls="--", lw=0.8, label=f"Gibbs F*, tau = {tau:g}")
        widths = np.asarray(res["widths"])
        per = res["risk_nn"][:, :, late].mean(axis=2)  # (W, S)
        m, se = per.mean(axis=1), per.std(axis=1, ddof=1) / np.sqrt(per.shape[1])
        C = float(np.polyfit(1.0 / widths, m - sol.risk, 1)[0])
        for n, mm, ss in zip(widths, m, se):
            rows_nn.append([f"{tau:g}", str(n), pm(mm, ss), f"{sol.risk:.4f}"])
        axes[1].errorbar(widths, m, yerr=se, fmt="o", color=col, capsize=2, label=f"networks, tau = {tau:g}")
        legend_note(axes[1], caption("bars"))
        nn = np.linspace(widths.min(), widths.max() * 1.3, 100)
        axes[1].plot(nn, sol.risk + C / nn, color=col, ls=":", lw=1, label=f"R* + C/N, C = {C:.3g}")
        axes[1].axhline(sol.risk, color=col, ls="--", lw=0.8)
        rep[tau] = {"sol": sol, "limit_risk": lim_risk, "F_late": F_late, "moments": mom, "nn_mean": m, "nn_se": se,
                    "widths": widths, "C": C}
    axes[0].set(xlabel="mean-field time t", ylabel="population risk", yscale="log", title="limit vs Gibbs fixed point")
    axes[1].set(xlabel="width N", ylabel="stationary risk", xscale="log", title="noisy networks approach R*")
    axes[1].minorticks_off()
    axes[1].set_xticks(rep[temps[0]]["widths"])
    axes[1].set_xticklabels([str(int(n)) for n in rep[temps[0]]["widths"]])
    axes[2].set(xlabel="mean-field time t", ylabel="free energy E - tau H", title="free energy (kNN entropy)")
    for ax in axes:
        legend(ax, fontsize=7)
    save(fig, args.out, "langevin_erf_1d")
    write_results(args.out, "Mean-field Langevin with erf units against the Gibbs fixed point (d = 1)"
                  + (" (quick mode: a smoke test)" if args.quick else ""),
                  [("Limit (late-time averages) against the Gibbs fixed point",
                    table(["tau", "R*", "limit risk", "F*", "limit F", "E[w^2] limit / Gibbs", "E[a w] limit / Gibbs",
                           "E[a^2] limit / Gibbs"], rows)),
                   ("Noisy networks", table(["tau", "N", "stationary risk (seed mean ± s.e.)", "R*"], rows_nn)),
                   ("Setup", f"lambda = {LAM}, Euler-Maruyama dt = lr = 0.05 (its O(dt) bias is in the numbers), "
                             "late = second half of the run.")])
    return rep


if __name__ == "__main__":
    main()
