"""Mei-Montanari-Nguyen isotropic Gaussians: finite-width online SGD against the mean-field flow as N grows.

    python experiments/mmn_convergence.py [--quick] [--out DIR] [--format png|pdf]

Task: y = +-1 with equal probability, x | y ~ N(0, (1 + y Delta)^2 I_d) (Mei, Montanari & Nguyen
2018), relu units, square loss. The limit is the exact population flow (closed-form Gaussian
expectations, RK4); networks of width N are trained by online SGD from initial neurons coupled to
the limit's particles. Reported per N at the final time: population risk, risk gap, function
distance ||f_N - f_inf|| and the coupling distance, and their fitted power laws in N. Online SGD
adds a minibatch-noise floor ~ sqrt(eta / B) per neuron that does not shrink with N, so the
fitted slopes of the distances are shallower than the gradient-flow -1/2 at large N.
"""
import argparse
import os

import numpy as np

import meanfield
from meanfield import figures
from meanfield.analysis import runs
from meanfield.plot import plot_risk, style

from _report import pm, save, table, write_results
import _report  # noqa: E402


def config(quick: bool) -> meanfield.Config:
    widths = [16, 64, 256] if quick else [16, 64, 256, 1024, 4096]
    # the coupled networks are subsamples of the limit's particles: the pool is twice the widest
    # network, since a width equal to the pool would start every seed from the same neurons
    return meanfield.Config.from_dict({
        "run": {"name": "mmn_convergence", "seed": 0},
        "task": {"kind": "gaussians", "d": 10 if quick else 40, "delta": 0.5},
        "model": {"activation": "relu", "a_init": "constant", "a_value": 1.0},
        "limit": {"particles": 2 * max(widths), "expectation": "analytic",
                  "integrator": "heun" if quick else "rk4", "dt": 0.1},
        "train": {"widths": widths, "seeds": 4 if quick else 8,
                  "algorithm": "online_sgd", "lr": 0.02, "batch": 16},
        "time": {"t_max": 6.0 if quick else 50.0, "records": 20 if quick else 40, "snapshots": 3},
        "eval": {"n_points": 16},
    })


def analyse(res, out, fmt="png"):
    a = res.arrays
    widths = a["widths"]
    fg = runs.function_gaps(res)
    dist = runs.neuron_distances(res, w2=False)  # coupled quantities only: W2 to the cloud is the sampling floor here
    k = -1
    fits = {
        "coupling distance": runs.fit_vs_width(widths, dist.coupled[:, k, :]),
        "‖f_N − f_∞‖": runs.fit_vs_width(widths, fg.fdist[:, :, -1]),
        "mean risk gap": None,
    }
    gapm = np.abs(fg.gap_mean[:, -1])
    try:
        from meanfield.analysis import fit_power_law

        fits["mean risk gap"] = fit_power_law(widths, gapm, yerr=fg.gap_sem[:, -1])
    except ValueError:
        pass
    rows = []
    cm, cs = dist.mean("coupled")
    for i, N in enumerate(widths):
        rows.append([int(N), pm(a["risk_nn"][i, :, -1].mean(), a["risk_nn"][i, :, -1].std(ddof=1) / np.sqrt(a["risk_nn"].shape[1])),
                     pm(fg.gap_mean[i, -1], fg.gap_sem[i, -1]), pm(fg.fdist_mean[i, -1], fg.fdist_sem[i, -1]),
                     pm(cm[i, k], cs[i, k])])
    fit_rows = [[name, "—" if f is None else pm(f.slope, f.slope_se, 3)] for name, f in fits.items()]
    files = []
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    plot_risk(res, axes[0])
    figures.plot_power_laws(axes[1], widths, {
        "coupling distance": (cm[:, k], cs[:, k]),
        r"$\|f_N - f_\infty\|$": (fg.fdist_mean[:, -1], fg.fdist_sem[:, -1]),
        "|risk gap|": (gapm, fg.gap_sem[:, -1]),
    }, ylabel=f"at t = {a['t'][-1]:.3g}", ref_slope=-0.5)
    files.append(save(fig, out, "convergence", fmt))
    files += figures.write_figures(res, out, fmt, dist=dist, gif=True)
    md = write_results(out, "MMN isotropic Gaussians: online SGD vs the mean-field flow", [
        ("Setup", f"d = {res.config.task.d}, Delta = {res.config.task.delta}, relu, {res.config.limit.particles} "
                  f"particles, online SGD lr = {res.config.train.lr}, B = {res.config.train.batch}, "
                  f"{a['risk_nn'].shape[1]} seeds; limit final risk {a['risk_mf'][-1]:.4g}."),
        (f"Final time t = {a['t'][-1]:.3g}", table(["N", "risk", "risk gap", "‖f_N − f_∞‖", "coupling dist."], rows)),
        ("Fitted power laws in N (slope ± stderr)", table(["quantity", "slope"], fit_rows)),
    ])
    return {"fits": fits, "files": files + [md]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/mmn_convergence")
    ap.add_argument("--format", default="png", choices=["png", "pdf"])
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    res = meanfield.run_to_dir(config(args.quick), args.out, overwrite=True)
    rep = analyse(res, args.out, args.format)
    for name, f in rep["fits"].items():
        if f is not None:
            print(f"{name}: slope {f.slope:+.3f} ± {f.slope_se:.3f}")
    print(os.path.join(args.out, "results.md"))
    return rep


if __name__ == "__main__":
    main()
