"""Fluctuations of independent finite-width networks around the mean-field limit: Var ~ C(t)/N.

    python experiments/fluctuations.py [--quick] [--out DIR] [--format png|pdf]

Mean-field CLT (Rotskoff & Vanden-Eijnden 2018; Sirignano & Spiliopoulos 2020): for independent
initialisations f_N(t, x) = f_inf(t, x) + N^{-1/2} xi_t(x) + o(N^{-1/2}), so across seeds
Var f_N(t, x) ~ C_f(t, x) / N and Var R_N(t) ~ C_R(t) / N. Networks are independent
(train.coupling = false) and trained by population GD (the gradient flow discretised; online SGD
would add a minibatch-noise variance ~ eta / B that does not decay with N). Reported: per time the
fitted exponent -gamma of Var ~ N^{-gamma} (output averaged over evaluation points, and risk)
with its standard error, and the collapsed prefactor C(t) = N Var.
"""
import argparse
import os

import numpy as np

import meanfield
from meanfield import figures
from meanfield.analysis import runs

from _report import pm, table, write_results
import _report  # noqa: E402


def config(quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": "fluctuations", "seed": 0},
        "task": {"kind": "teacher_student", "d": 5, "teacher_width": 2},
        "model": {"activation": "erf"},
        "limit": {"particles": 256 if quick else 2048, "expectation": "analytic", "integrator": "heun", "dt": 0.1},
        "train": {"widths": [8, 16, 32, 64, 128] if quick else [16, 32, 64, 128, 256, 512],
                  "seeds": 16 if quick else 32, "algorithm": "population_gd", "lr": 0.1, "coupling": False},
        "time": {"t_max": 5.0 if quick else 20.0, "records": 12 if quick else 30, "snapshots": 0},
        "eval": {"n_points": 32},
    })


def analyse(res, out, fmt="png"):
    fl = runs.fluctuations(res)
    files = figures.write_figures(res, out, fmt, fl=fl, gif=False)
    rows = []
    idx = np.unique(np.round(np.linspace(0, fl.t.size - 1, 6)).astype(int))
    for i in idx:
        rows.append([f"{fl.t[i]:.3g}", pm(fl.f_slope[i], fl.f_slope_se[i], 3), f"{fl.f_collapse[i]:.3g}",
                     pm(fl.risk_slope[i], fl.risk_slope_se[i], 3), f"{fl.risk_collapse[i]:.3g}"])
    ok = np.isfinite(fl.f_slope)
    w = 1 / fl.f_slope_se[ok] ** 2
    pooled = float(np.sum(w * fl.f_slope[ok]) / np.sum(w))
    md = write_results(out, "Fluctuations across seeds against the width", [
        ("Setup", f"{res.config.train.seeds} independent seeds per width, widths "
                  f"{list(map(int, fl.widths))}, population GD, erf teacher-student d = {res.config.task.d}."),
        ("Var ∝ N^(−γ): fitted exponent per time (slope ± stderr) and prefactor C(t) = N·Var",
         table(["t", "slope, output", "C_f(t)", "slope, risk", "C_R(t)"], rows)
         + f"\n\nInverse-variance mean of the output slope over all times: {pooled:.3f} (times are correlated: "
           "no error is given for it)."),
    ])
    return {"fluct": fl, "f_slope0": (fl.f_slope[0], fl.f_slope_se[0]), "pooled_f_slope": pooled,
            "files": files + [md]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/fluctuations")
    ap.add_argument("--format", default="png", choices=["png", "pdf"])
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    res = meanfield.run_to_dir(config(args.quick), args.out, overwrite=True)
    rep = analyse(res, args.out, args.format)
    print(open(os.path.join(args.out, "results.md")).read())
    return rep


if __name__ == "__main__":
    main()
