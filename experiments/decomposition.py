"""Discrepancy decomposition: mean-field flow -> population GD (N) -> online SGD (N) -> multi-pass SGD (P).

    python experiments/decomposition.py [--quick] [--out DIR] [--format png|pdf]

Each link removes one idealisation: finite width (population GD at width N from neurons coupled
to the limit's particles), minibatch noise (online SGD, fresh samples), finite data (multi-pass
SGD on P samples). All stages share the initial neurons and the time grid (limit.dt = train.lr),
and the population risk is recorded on every side. meanfield.analysis.decompose splits the final
(and the time-averaged) gap into each link's contribution with paired seed standard errors.
"""
import argparse
import os

import numpy as np

import meanfield
from meanfield.analysis import decompose
from meanfield.plot import style

from _report import save, table, write_results
import _report  # noqa: E402


def config(algorithm: str, quick: bool) -> meanfield.Config:
    return meanfield.Config.from_dict({
        "run": {"name": f"decomposition_{algorithm}", "seed": 0},
        "task": {"kind": "teacher_student", "d": 5, "teacher_width": 2, "noise": 0.1},
        "model": {"activation": "erf"},
        "limit": {"particles": 256 if quick else 2048, "expectation": "analytic", "integrator": "heun", "dt": 0.05},
        "train": {"widths": [32] if quick else [128], "seeds": 6 if quick else 16, "algorithm": algorithm,
                  "lr": 0.05, "batch": 8, "n_train": 64 if quick else 256, "coupling": True},
        "time": {"t_max": 5.0 if quick else 20.0, "records": 15 if quick else 30, "snapshots": 0},
        "eval": {"n_points": 8},
    })


def stages(quick: bool):
    runs = {alg: meanfield.run(config(alg, quick)) for alg in ("population_gd", "online_sgd", "sgd")}
    pop = runs["population_gd"]
    curves = [pop["risk_mf"], pop["risk_nn_pop"][0], runs["online_sgd"]["risk_nn_pop"][0], runs["sgd"]["risk_nn_pop"][0]]
    return pop["t"], curves, runs


def analyse(t, curves, runs, out, fmt="png"):
    final = decompose(curves, metric="final")
    mean = decompose(curves, metric="mean")
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    pos = t > 0
    for c, name, col in zip(curves, final.stages, ["k", "C0", "C1", "C2"]):
        m = c if c.ndim == 1 else c.mean(0)
        axes[0].plot(t[pos], m[pos], color=col, label=name)
        if c.ndim == 2:
            s = c.std(0, ddof=1)
            axes[0].fill_between(t[pos], (m - s)[pos], (m + s)[pos], color=col, alpha=0.2, lw=0)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("mean-field time t")
    axes[0].set_ylabel("population risk")
    axes[0].legend(fontsize=7)
    x = np.arange(len(final.links))
    axes[1].bar(x - 0.2, final.contributions, 0.4, yerr=final.contributions_se, capsize=3, label="final risk")
    axes[1].bar(x + 0.2, mean.contributions, 0.4, yerr=mean.contributions_se, capsize=3, label="time-averaged risk")
    axes[1].set_xticks(x)
    axes[1].set_xticklabels([l.split(" -> ")[1] for l in final.links], fontsize=7)
    axes[1].axhline(0, c="0.4", lw=0.8)
    axes[1].set_ylabel("contribution to the gap")
    axes[1].legend(fontsize=7)
    files = [save(fig, out, "decomposition", fmt)]

    def rows(dec):
        return [[l, f"{c:.4g} ± {s:.2g}", f"{fr:.2f}"] for l, c, s, fr in
                zip(dec.links, dec.contributions, dec.contributions_se, dec.fractions)] + \
               [["total", f"{dec.total:.4g} ± {dec.total_se:.2g}", "1.00"]]

    cfg = runs["sgd"].config
    md = write_results(out, "Decomposition of the gap to the mean-field flow", [
        ("Setup", f"erf teacher–student d = {cfg.task.d}, label noise {cfg.task.noise}, width N = {cfg.train.widths[0]}, "
                  f"{cfg.train.seeds} seeds, lr = {cfg.train.lr}, B = {cfg.train.batch}, P = {cfg.train.n_train}; "
                  f"stage values (final risk): " + ", ".join(f"{s}: {v:.4g}" for s, v in zip(final.stages, final.values))),
        ("Final population risk", table(["link", "contribution ± stderr", "fraction"], rows(final))),
        ("Time-averaged population risk", table(["link", "contribution ± stderr", "fraction"], rows(mean))),
    ])
    return {"final": final, "mean": mean, "files": files + [md]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/decomposition")
    ap.add_argument("--format", default="png", choices=["png", "pdf"])
    args = ap.parse_args(argv)
    _report.begin(args.quick)
    os.makedirs(args.out, exist_ok=True)
    rep = analyse(*stages(args.quick), args.out, args.format)
    print(open(os.path.join(args.out, "results.md")).read())
    return rep


if __name__ == "__main__":
    main()
