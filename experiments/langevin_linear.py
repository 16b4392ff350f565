"""Mean-field Langevin dynamics against its exact solution: the linear two-layer model in d = 1.

    python experiments/langevin_linear.py [--quick] [--out DIR]

Linear units, x ~ N(0, 1), a one-unit linear teacher y = c x, population risk, temperature tau and
weight decay lambda ([dynamics]). From a centred Gaussian start the limit stays Gaussian: its
covariance S(t) solves dS/dt = A S + S A^T + 2 tau I, A = (c - S_12) J - lambda I, its risk is
(c - S_12)^2 / 2 and its free energy F(S) = (c - S_12)^2/2 + (lambda/2) tr S - (tau/2) log det(2 pi e S)
decreases to the Gibbs fixed point S* (meanfield_solvers.gibbs.linear_gaussian, derivations there).
Finite networks of width N trained by noisy population gradient descent have the exact stationary
risk E_N[R] of the N-particle Gibbs law (a one-dimensional contour integral), R* + C/N + O(1/N^2).

The script runs the particle limit (Euler-Maruyama) and noisy networks at several N and
temperatures, and compares:
* the limit's risk over time with the covariance ODE, and its final covariance with S*;
* each width's stationary risk (time average over the second half, seed mean +- s.e.) with the exact
  finite-N value, and the fitted N (R_N - R*) with the exact 1/N constant;
* the free energy along the exact flow (it never increases).
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
from meanfield_solvers.gibbs import covariance_flow, finite_n_expansion, finite_n_risk, free_energy, stationary  # noqa: E402

LAM = 0.5


def config(tau, quick):
    return {
        "run": {"name": f"langevin_linear_{tau}", "seed": 0, "backend": "numba"},
        "task": {"kind": "teacher_student", "d": 1, "teacher_width": 1},
        "model": {"activation": "linear", "a_std": 1.0, "w_std": 1.0},
        "limit": {"particles": 2048 if quick else 8192, "expectation": "analytic", "integrator": "euler_maruyama",
                  "dt": 0.02},
        "train": {"widths": [2, 8, 32], "seeds": 128 if quick else 512, "algorithm": "population_gd", "lr": 0.02,
                  "coupling": False},
        "time": {"t_max": 12.0 if quick else 30.0, "records": 61, "spacing": "linear", "snapshots": 1},
        "eval": {"n_points": 4},
        "dynamics": {"temperature": tau, "weight_decay": LAM},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer particles and seeds, shorter (a smoke test)")
    ap.add_argument("--out", default=os.path.join("runs", "langevin_linear"))
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    os.makedirs(args.out, exist_ok=True)
    from meanfield.viz import style

    plt = style()
    temps = (0.1, 0.25)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    rows_lim, rows_nn, rep = [], [], {}
    for j, tau in enumerate(temps):
        res = meanfield.run(config(tau, args.quick))
        c = float(res["teacher_a"][0] * res["teacher_w"][0, 0])  # y = c x
        t = res["t"]
        star = stationary(c, LAM, tau)
        S = covariance_flow(np.eye(2), c, LAM, tau, t)
        ode_risk = 0.5 * (c - S[:, 0, 1]) ** 2
        col = f"C{j}"
        axes[0].plot(t, res["risk_mf"], color=col, lw=2, label=f"limit, tau = {tau:g}")
        axes[0].plot(t, ode_risk, color="k", ls=":", lw=1.2, label="covariance ODE" if j == 0 else None)
        axes[0].axhline(star.risk, color=col, ls="--", lw=0.8)
        axes[2].plot(t, [free_energy(s, c, LAM, tau) for s in S], color=col, label=f"tau = {tau:g}")
        final = res["particles_mf_final"]
        S_emp = final.T @ final / final.shape[0]
        late = t >= t[-1] / 2
        lim_late = res["risk_mf"][late].mean()
        rows_lim.append([f"{tau:g}", f"{c:+g}", f"{star.risk:.4f}", f"{lim_late:.4f}",
                         f"{np.max(np.abs(S_emp - star.S)):.3f}", f"{np.max(np.abs(res['risk_mf'] - ode_risk)):.4f}"])
        widths = np.asarray(res["widths"])
        means, ses, exact = [], [], []
        for i, n in enumerate(widths):
            per_seed = res["risk_nn"][i][:, late].mean(axis=1)
            means.append(per_seed.mean())
            ses.append(per_seed.std(ddof=1) / np.sqrt(per_seed.size))
            exact.append(finite_n_risk(c, LAM, tau, int(n)).risk)
            rows_nn.append([f"{tau:g}", str(n), pm(means[-1], ses[-1]), f"{exact[-1]:.4f}",
                            f"{(means[-1] - exact[-1]) / ses[-1]:+.1f}"])
        means, ses = np.array(means), np.array(ses)
        slope_c = np.polyfit(1.0 / widths, means - star.risk, 1)[0]  # R_N - R* ~ C / N (+ C2 / N^2)
        rep[tau] = {"c": c, "star": star, "limit_late": lim_late, "S_emp": S_emp, "widths": widths,
                    "nn_mean": means, "nn_se": ses, "exact": np.array(exact),
                    "C_fit": slope_c, "C_exact": finite_n_expansion(c, LAM, tau).risk,
                    "ode_gap": float(np.max(np.abs(res["risk_mf"] - ode_risk)))}
        nn = np.linspace(widths.min(), widths.max() * 1.5, 100)
        axes[1].errorbar(widths, means, yerr=2 * ses, fmt="o", color=col, label=f"networks, tau = {tau:g}")
        axes[1].plot(nn, star.risk + rep[tau]["C_exact"] / nn, color=col, ls=":", lw=1, label="R* + C/N (exact C)")
        axes[1].plot(widths, exact, "x", color="k", ms=7, label="exact finite-N" if j == 0 else None)
        axes[1].axhline(star.risk, color=col, ls="--", lw=0.8)
    axes[0].set(xlabel="mean-field time t", ylabel="population risk", yscale="log",
                title="limit (particles) vs exact covariance flow")
    axes[1].set(xlabel="width N", ylabel="stationary risk", xscale="log", title="noisy networks vs exact finite-N")
    axes[2].set(xlabel="mean-field time t", ylabel="free energy F(S(t))", title="free energy along the exact flow")
    w = rep[temps[0]]["widths"]
    axes[1].minorticks_off()
    axes[1].set_xticks(w)
    axes[1].set_xticklabels([str(int(n)) for n in w])
    for ax in axes:
        ax.legend(fontsize=7)
    save(fig, args.out, "langevin_linear")
    write_results(args.out, "Mean-field Langevin on the linear two-layer model" + (" (quick mode: a smoke test)" if args.quick else ""),
                  [("Limit", table(["tau", "c", "Gibbs risk R*", "limit risk (late mean)", "max |S - S*|",
                                    "max |risk - ODE risk|"], rows_lim)),
                   ("Finite widths", table(["tau", "N", "stationary risk (seed mean ± s.e.)", "exact E_N[R]", "z"],
                                           rows_nn)),
                   ("1/N constant", table(["tau", "fitted C", "exact C"],
                                          [[f"{tau:g}", f"{rep[tau]['C_fit']:.3f}", f"{rep[tau]['C_exact']:.3f}"]
                                           for tau in temps])),
                   ("Setup", f"lambda = {LAM}, Euler-Maruyama dt = lr = 0.02 (its O(dt) bias is in the numbers), "
                             "stationary averages over the second half of the run.")])
    return rep


if __name__ == "__main__":
    main()
