"""Finite-width fluctuations predicted from the limit run alone, against hundreds of independent networks.

    python experiments/fluctuation_prediction.py [--quick] [--out DIR] [--format png|pdf]

An erf two-layer network fits a fixed 2-D regression dataset by full-batch gradient descent (Euler,
step 0.1, the limit's own integrator and step, so width-N training is the limit's discrete map applied
to the empirical measure of N initial neurons). One limit run with ``[fluctuations] predict = true``
gives, by one adjoint sweep over its own particles, the predicted N·Var of f at four test points and
of the train/test risks at every recorded time (README "Fluctuations predicted from the limit").
Beside it: independent networks (coupling off) at two widths, the naive estimate (each unit's own
transported term), and the forward-replica estimate (R random mass perturbations; relative error
sqrt(2/R)). Reported: prediction and measurement per time, the fraction of (output, time) pairs within
3 standard errors, and the replicas' relative error against the adjoint.
"""
import argparse
import os

import numpy as np

import meanfield
from meanfield.analysis.fluctuations import variance_stderr
from meanfield.twolayer.fluct_plot import measured_outputs, write_prediction_figures

import _report  # noqa: E402
from _report import table, write_results


def dataset(path):
    rng = np.random.default_rng(0)
    X, Xt = rng.standard_normal((40, 2)), rng.standard_normal((400, 2))
    f = lambda Z: np.tanh(2 * Z[:, 0]) + 0.5 * np.sin(2 * Z[:, 1])  # noqa: E731
    np.savez(path, X=X, y=f(X), X_test=Xt, y_test=f(Xt))
    return path


def config(quick: bool, path: str) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": "fluctuation_prediction", "seed": 3},
        "task": {"kind": "dataset", "path": path},
        "model": {"activation": "erf", "lr_w": 2.0},
        "limit": {"particles": 4000 if quick else 16000, "dt": 0.1, "integrator": "euler", "expectation": "mc"},
        "train": {"widths": [32, 128], "seeds": 400 if quick else 1000, "lr": 0.1, "algorithm": "gd",
                  "coupling": False},
        "time": {"t_max": 5.0 if quick else 10.0, "records": 10 if quick else 20, "spacing": "linear",
                 "snapshots": 0},
        "eval": {"n_points": 4, "n_test": 400},
        "fluctuations": {"predict": True, "times": 0, "replicas": 12 if quick else 128},
    })


def compare(res):
    """Per width: z-scores of prediction and naive estimate against the measured N Var, (T-1, O)."""
    a = res.arrays
    outs = list(res.summary["fluct_outputs"])
    out = {}
    for wi, N in enumerate(int(n) for n in a["widths"]):
        meas, mse = [], []
        for name in outs:
            x = measured_outputs(res, name)[1][wi]
            meas.append(N * np.var(x, axis=0, ddof=1))
            mse.append(N * variance_stderr(x, method="analytic"))
        meas, mse = np.array(meas).T, np.array(mse).T  # (T, O)
        pse = a["fluct_nvar_se"]
        z = (meas - a["fluct_nvar_nn"][wi]) / np.sqrt(mse ** 2 + pse ** 2)
        zn = (meas - a["fluct_naive"]) / np.sqrt(mse ** 2 + pse ** 2)
        out[N] = dict(meas=meas, mse=mse, z=z[1:], zn=zn[1:])
    return out


def analyse(res, out, fmt="png"):
    a = res.arrays
    outs = list(res.summary["fluct_outputs"])
    cmp = compare(res)
    files = write_prediction_figures(res, out, fmt)
    R = res.summary["fluct_replicas"]
    rep_err = float("nan")
    if R:
        rel = a["fluct_nvar_replicas"][1:] / a["fluct_nvar"][1:] - 1
        rep_err = float(np.sqrt(np.mean(rel ** 2)))
    rows = []
    T = a["t"].size
    for ti in np.unique(np.round(np.linspace(0, T - 1, 5)).astype(int)):
        for name in ("f[0]", "risk_train"):
            o = outs.index(name)
            cells = [f"{a['t'][ti]:.2g}", name, f"{a['fluct_nvar'][ti, o]:.3g} ± {a['fluct_nvar_se'][ti, o]:.1g}"]
            cells += [f"{c['meas'][ti, o]:.3g} ± {c['mse'][ti, o]:.1g}" for c in cmp.values()]
            cells += [f"{a['fluct_naive'][ti, o]:.3g}"]
            rows.append(cells)
    frac = {N: float(np.mean(np.abs(c["z"]) < 3)) for N, c in cmp.items()}
    frac_naive = {N: float(np.mean(np.abs(c["zn"]) < 3)) for N, c in cmp.items()}
    md = write_results(out, "Fluctuations predicted from the limit alone", [
        ("Setup", f"erf network, 2-D dataset of 40 points, full-batch GD (Euler, dt = lr = 0.1); limit with "
                  f"{res.summary['fluct_reference_particles']} particles; {res.config.train.seeds} independent "
                  f"networks per width {list(cmp)}; adjoint prediction took {res.summary['fluct_seconds']:.1f} s."),
        ("N·Var: predicted (± reference SE), measured per width (± SE over seeds), naive",
         table(["t", "output", "predicted"] + [f"measured N={N}" for N in cmp] + ["naive"], rows)),
        ("Agreement over all (output, time) pairs after t = 0",
         table(["width", "prediction within 3 SE", "naive within 3 SE"],
               [[N, f"{frac[N]:.0%}", f"{frac_naive[N]:.0%}"] for N in cmp])),
        ("Forward replicas", f"R = {R}: RMS relative deviation from the adjoint {rep_err:.2f} "
                             f"(expected about sqrt(2/R) = {np.sqrt(2 / max(R, 1)):.2f})."),
    ])
    return {"frac": frac, "frac_naive": frac_naive, "replica_rel_error": rep_err, "files": files + [md]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/fluctuation_prediction")
    ap.add_argument("--format", default="png", choices=["png", "pdf"])
    args = ap.parse_args(argv)
    _report.begin(args.quick)  # quick outputs say they are smoke tests
    os.makedirs(args.out, exist_ok=True)
    path = dataset(os.path.join(args.out, "dataset.npz"))
    res = meanfield.run_to_dir(config(args.quick, path), os.path.join(args.out, "run"), overwrite=True)
    rep = analyse(res, args.out, args.format)
    print(open(os.path.join(args.out, "results.md")).read())
    return rep


if __name__ == "__main__":
    main()
