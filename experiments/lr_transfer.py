"""Learning-rate transfer across widths: muP keeps the best and the largest stable step size, the standard
parametrisation does not.

    python experiments/lr_transfer.py [--quick] [--out DIR] [--workers K] [--format png|pdf]

Setup: deep networks of depth L = 2 (one N×N hidden matrix), tanh, teacher-student task (D = 8 inputs, a
tanh teacher with 2 units, P = 8 training points), full-batch GD for a fixed budget of ``STEPS`` steps at
step size η, for each parametrisation (``mup``, ``standard``, ``ntk``: docs/residual.md §1.1) and width
N = 64 … 2048 (quick: 64, 256, 1024). The step sizes form a log grid (factor 2; full mode √2) per
parametrisation, wide enough to bracket its stable range (the standard parametrisation's steps live at
η ~ 1/N, the others' at η ~ 1). Every (parametrisation, width, η) is one run of a parameter scan
(``meanfield.scan.run_scan``: one spec per parametrisation with axes ``train.widths`` and, zipped,
``train.lr`` and ``time.t_max = STEPS·η``), each run training ``train.seeds`` networks (independent
initialisations) on the same task.

Measured per (parametrisation, width), from the final training loss (mean ± standard error over the
networks) and the loss at initialisation:

* **stable**: the run completed (no record refused by the health rules of meanfield/health.py: finite
  parameters, loss below ``train.divergence_factor`` × its initial value) *and* its final loss is below
  its initial loss; the **largest stable step** is the largest grid η that is stable;
* **argmin**: the η of the smallest final loss among the stable ones, refined by a parabola through the
  log-loss at the grid minimum and its two neighbours (vertex in log η) when both neighbours are stable;
  otherwise the grid point itself (marked "edge");
* their **spread** across widths (max / min).

Theory (Yang & Hu 2021; Yang et al. 2022): under muP both are width-independent (spread → 1); under the
standard parametrisation the NTK grows ∝ N, so the largest stable step falls ∝ 1/N (a factor 16 from
N = 64 to 1024); the NTK parametrisation's kernel at t = 0 is muP's, so its stability limit does not move,
but it is lazy.

Writes DIR/results.md (tables), DIR/lr_transfer.png (loss against log η, one curve per width, optimum
marked) and DIR/scans/<parametrisation>/ (the scans: resumable, ``meanfield collect`` reads them).
"""
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from meanfield import scan  # noqa: E402
from meanfield.plot import style  # noqa: E402

import _report  # noqa: E402
from _report import save, table, write_results  # noqa: E402

PARAMS = ("mup", "standard", "ntk")
STEPS = 30


def mode(quick: bool) -> dict:
    """Widths, seeds and the log2 step-size range of each parametrisation."""
    if quick:
        return {"widths": [64, 256, 1024], "seeds": 3, "per_octave": 1,
                "log2": {"mup": (-1, 5), "standard": (-9, 0), "ntk": (-1, 5)}}
    return {"widths": [64, 128, 256, 512, 1024, 2048], "seeds": 8, "per_octave": 2,
            "log2": {"mup": (-2, 6), "standard": (-12, 1), "ntk": (-2, 6)}}


def grid(lo: int, hi: int, per_octave: int) -> list:
    return [float(2.0 ** (k / per_octave)) for k in range(lo * per_octave, hi * per_octave + 1)]


def base_config(param: str, seeds: int) -> dict:
    return {
        "run": {"name": f"lr_transfer_{param}", "seed": 0, "backend": "numpy"},
        "task": {"kind": "teacher_student", "d": 8, "teacher_width": 2, "teacher_init": "gaussian"},
        "model": {"activation": "tanh", "depth": 2, "parametrisation": param, "gamma0": 1.0},
        "limit": {"method": "none"},
        "train": {"seeds": seeds, "algorithm": "gd", "n_train": 8, "widths": [64]},
        "time": {"records": 3, "spacing": "linear", "snapshots": 0},
        "eval": {"n_points": 1},
    }


def spec(param: str, m: dict) -> dict:
    """The scan spec of one parametrisation: widths × (η, t_max = STEPS·η)."""
    lrs = grid(*m["log2"][param], m["per_octave"])
    return {"base": base_config(param, m["seeds"]), "axes": {"train.widths": list(m["widths"])},
            "zip": [{"train.lr": lrs, "time.t_max": [STEPS * lr for lr in lrs]}]}


def run_param(param, m, out, workers):
    d = os.path.join(out, "scans", param)
    _report.run_study_scan(spec(param, m), d, workers)  # a diverged run is a data point here
    return d


def gather(d, widths):
    """(lrs (K,), loss (W, K), se (W, K), loss0 (W, K), completed (W, K)) from a scan directory."""
    col = scan.collect(d, keys=("risk_nn",))
    status = dict(zip(col.table["id"], col.table["status"]))
    lrs = sorted({float(g.params["train.lr"]) for g in col.groups})
    W, K = len(widths), len(lrs)
    loss, se, loss0 = np.full((W, K), np.nan), np.full((W, K), np.nan), np.full((W, K), np.nan)
    done = np.zeros((W, K), dtype=bool)
    for g in col.groups:
        N = json.loads(g.params["train.widths"]) if isinstance(g.params["train.widths"], str) else g.params["train.widths"]
        N = int(N[0] if isinstance(N, list) else N)
        i, k = widths.index(N), lrs.index(float(g.params["train.lr"]))
        r = g.arrays["risk_nn"][0, 0]  # (S, T): the run's networks of this width
        fin = r[:, -1]
        loss0[i, k] = float(np.mean(r[:, 0]))
        done[i, k] = status[g.ids[0]] == "completed" and bool(np.all(np.isfinite(fin)))
        if np.all(np.isfinite(fin)):
            loss[i, k] = float(fin.mean())
            se[i, k] = float(fin.std(ddof=1) / math.sqrt(fin.size)) if fin.size > 1 else float("nan")
    return np.asarray(lrs), loss, se, loss0, done


def optimum(lrs, loss, stable):
    """(argmin η, interpolated?) of one width: the parabola vertex in (log η, log loss) through the stable
    grid minimum and its neighbours, or the grid point when a neighbour is missing or unstable."""
    ok = np.where(stable)[0]
    if ok.size == 0:
        return float("nan"), False
    k = int(ok[np.argmin(loss[ok])])
    if 0 < k < len(lrs) - 1 and stable[k - 1] and stable[k + 1]:
        x = np.log(lrs[k - 1: k + 2])
        y = np.log(loss[k - 1: k + 2])
        a, b, _ = np.polyfit(x, y, 2)
        if a > 0:
            v = -b / (2 * a)
            return float(np.exp(np.clip(v, x[0], x[2]))), True
    return float(lrs[k]), False


def analyse(lrs, loss, se, loss0, done, widths):
    stable = done & np.isfinite(loss) & (loss < loss0)
    W = len(widths)
    lr_max = np.array([lrs[np.where(stable[i])[0].max()] if stable[i].any() else np.nan for i in range(W)])
    opt = [optimum(lrs, loss[i], stable[i]) for i in range(W)]
    argmin = np.array([o[0] for o in opt])
    interp = [o[1] for o in opt]
    spread = lambda a: float(np.nanmax(a) / np.nanmin(a))  # noqa: E731
    return {"widths": np.asarray(widths), "lrs": lrs, "loss": loss, "se": se, "loss0": loss0, "stable": stable,
            "lr_max": lr_max, "argmin": argmin, "interpolated": interp, "lr_max_spread": spread(lr_max),
            "argmin_spread": spread(argmin),
            "best_loss": np.array([np.nanmin(np.where(stable[i], loss[i], np.nan)) if stable[i].any() else np.nan
                                   for i in range(W)])}


def figure(results, out, fmt):
    plt = style()
    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 3.8), squeeze=False)
    for ax, (param, st) in zip(axes[0], results.items()):
        cmap = plt.get_cmap("viridis")
        W = len(st["widths"])
        for i, N in enumerate(st["widths"]):
            c = cmap(0.9 * i / max(1, W - 1))
            y = np.where(st["stable"][i], st["loss"][i], np.nan)
            ax.errorbar(st["lrs"], y, yerr=st["se"][i], fmt="o-", ms=3, lw=1.2, color=c, capsize=2, label=f"N = {N}")
            unstable = ~st["stable"][i]
            top = np.nanmax(np.where(st["stable"], st["loss"], np.nan))
            ax.plot(st["lrs"][unstable], np.full(unstable.sum(), top * 2 * 1.5 ** i), "x", color=c, ms=5)
            if np.isfinite(st["argmin"][i]):
                ax.plot([st["argmin"][i]], [st["best_loss"][i]], "*", color=c, ms=13, mec="k", mew=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("step size η")
        ax.set_title(f"{param}: argmin spread {st['argmin_spread']:.2f}, max-stable spread {st['lr_max_spread']:.3g}",
                     fontsize=9)
    axes[0, 0].set_ylabel(f"training loss after {STEPS} GD steps")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("loss against step size (★ optimum, × unstable)", fontsize=10)
    fig.tight_layout()
    return save(fig, out, "lr_transfer", fmt)


def main(argv=None):
    args = _report.study_args(__doc__, "lr_transfer", argv)
    out = args.out
    m = mode(args.quick)
    t0 = time.perf_counter()
    results = {}
    for param in PARAMS:
        d = run_param(param, m, out, args.workers)
        results[param] = analyse(*gather(d, m["widths"]), m["widths"])
    seconds = time.perf_counter() - t0
    fig = figure(results, out, args.format)
    rows = []
    for param, st in results.items():
        for i, N in enumerate(st["widths"]):
            k = np.nanargmin(np.where(st["stable"][i], st["loss"][i], np.nan)) if st["stable"][i].any() else None
            best = f"{st['loss'][i][k]:.3g} ± {st['se'][i][k]:.1g}" if k is not None else "–"
            rows.append([param, int(N), f"{st['argmin'][i]:.3g}" + ("" if st["interpolated"][i] else " (edge)"),
                         best, f"{st['lr_max'][i]:.3g}"])
        rows.append([param, "spread (max/min)", f"**{st['argmin_spread']:.2f}**", "", f"**{st['lr_max_spread']:.3g}**"])
    grid_rows = []
    for param, st in results.items():
        for i, N in enumerate(st["widths"]):
            grid_rows.append([param, int(N)] + [
                (f"{st['loss'][i][k]:.2g}" if st["stable"][i][k] else ("div" if not np.isfinite(st["loss"][i][k])
                                                                        else "✗")) for k in range(len(st["lrs"]))])
    md = write_results(out, "Learning-rate transfer across widths" + (" (quick: smoke test)" if args.quick else ""), [
        ("Setup", f"Depth 2, tanh, teacher-student D = 8 (2 tanh teacher units), P = 8 training points, full-batch GD "
                  f"for {STEPS} steps, γ₀ = 1, {m['seeds']} networks per (width, η), widths {m['widths']}; log grid "
                  f"of η with {m['per_octave']} point(s) per octave. One scan per parametrisation "
                  f"({len(PARAMS)} scans, {seconds:.0f} s with {args.workers} workers). Stable: completed under the "
                  "health rules and final loss below the initial loss. Argmin: parabola through the log-loss at the "
                  "grid minimum and its neighbours (\"edge\": grid point)."),
        ("Optimum and largest stable step per width", table(
            ["parametrisation", "N", "argmin η", "best final loss (± SE)", "largest stable η"], rows)),
        ("Final loss on the grid (div: diverged, ✗: not below its initial loss)", "\n\n".join(
            table(["parametrisation", "N"] + [f"{lr:.3g}" for lr in st["lrs"]],
                  [r for r in grid_rows if r[0] == p]) for p, st in results.items())),
        ("Figure", f"- `{os.path.basename(fig)}`"),
    ])
    print(open(md).read())
    return results


if __name__ == "__main__":
    main()
