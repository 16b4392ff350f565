"""Learning-rate transfer across widths and depths: muP keeps the best and the largest stable step size across
widths, the standard parametrisation does not; residual networks with 1/√L branches keep them across depths,
depth-independent branches (κ = 0) do not.

    python experiments/lr_transfer.py [--quick] [--out DIR] [--workers K] [--format png|pdf]
                                      [--widths 64,128,...] [--depths 2,4,...] [--seeds S]

(``--widths``, ``--depths``, ``--seeds`` replace the mode's lists, for a reduced run whose results.md then says
exactly what was run.)

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
* **η_100**: the step at which the final loss is 100 times below the initial one (log-log interpolation on
  the stable points): where the sub-edge part of a curve sits along the η axis (curves that collapse share it);
* their **spread** across widths (max / min).

**Depth axis** (residual networks, docs/residual.md §1): muP residual networks h^{ℓ+1} = h^ℓ + (β/L^κ) W^ℓ
φ(h^ℓ)/√N at one width (``DEPTH_WIDTH`` = 128), same task, steps and statistics, depths
L = 2 … 64 (quick: 2, 8, 32), one scan per branch rule with axes ``model.depth`` and, zipped, (η, t_max):
κ = ½, β = 1 (depth-muP) and κ = 0 with β = 1/√2 (the same branch multiplier b = 1/√2 at L = 2, so the two
rules differ only by how b scales with depth). The same argmin / largest stable step / η_100 / spread are
measured across depths, beside the lazy edge η* = 2P/λ_max(K₀) and the lazy η_100 of GD on the frozen
infinite-width NTK at initialisation (docs/residual.md §2.1): both converge in L for κ = ½ (K₀ → K_∞, O(1/L))
and fall with L for κ = 0 (K₀ grows without a depth limit). Measured (README): κ = ½ follows them; κ = 0
moves the right way but far less than the lazy prediction (finite N = 128 at L/N up to ½, catapult steps).

Theory (Yang & Hu 2021; Yang et al. 2022): under muP both are width-independent (spread → 1); under the
standard parametrisation the NTK grows ∝ N, so the largest stable step falls ∝ 1/N (a factor 16 from
N = 64 to 1024); the NTK parametrisation's kernel at t = 0 is muP's, so its stability limit does not move,
but it is lazy.

Writes DIR/results.md (tables), DIR/lr_transfer.png (top row: loss against log η, one curve per width, per
parametrisation; bottom row: one curve per depth, per branch rule, and the step sizes against depth; optimum
marked) and DIR/scans/<parametrisation or branch rule>/ (the scans: resumable, ``meanfield collect`` reads
them).
"""
import argparse
import functools
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
#: the loss reduction that defines the speed step η_100
SPEED_FACTOR = 100.0
#: branch rules of the depth axis: scan folder -> (label, κ, β); κ = 0 takes β = 1/√2 so that b = β/L^κ equals
#: depth-muP's 1/√2 at L = 2
BRANCHES = {"residual_k05": ("κ = ½", 0.5, 1.0), "residual_k0": ("κ = 0", 0.0, 1.0 / math.sqrt(2.0))}
#: width of the depth axis (N = 128: depth 64 at 8 networks × 34 step sizes fits the 2-core budget)
DEPTH_WIDTH = 128


def mode(quick: bool) -> dict:
    """Widths, seeds and the log2 step-size range of each parametrisation."""
    if quick:
        return {"widths": [64, 256, 1024], "seeds": 3, "per_octave": 1,
                "log2": {"mup": (-1, 5), "standard": (-9, 0), "ntk": (-1, 5),
                         "residual_k05": (-1, 4), "residual_k0": (-3, 4)},
                "depths": [2, 8, 32], "depth_width": DEPTH_WIDTH}
    return {"widths": [64, 128, 256, 512, 1024, 2048], "seeds": 8, "per_octave": 2,
            "log2": {"mup": (-2, 6), "standard": (-12, 1), "ntk": (-2, 6),
                     "residual_k05": (-2, 5), "residual_k0": (-5, 4)},
            "depths": [2, 4, 8, 16, 32, 64], "depth_width": DEPTH_WIDTH}


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


def depth_spec(branch: str, m: dict) -> dict:
    """The scan spec of one residual branch rule: depths × (η, t_max = STEPS·η) at width ``m['depth_width']``."""
    _, kappa, beta = BRANCHES[branch]
    base = base_config("mup", m["seeds"])
    base["run"]["name"] = f"lr_transfer_{branch}"
    base["model"].update({"residual": True, "branch_exponent": kappa, "branch_scale": beta})
    base["train"]["widths"] = [m["depth_width"]]
    lrs = grid(*m["log2"][branch], m["per_octave"])
    return {"base": base, "axes": {"model.depth": list(m["depths"])},
            "zip": [{"train.lr": lrs, "time.t_max": [STEPS * lr for lr in lrs]}]}


@functools.lru_cache(maxsize=None)
def _lazy_kernels(branch: str, depths: tuple, seeds: int):
    """(X (P, D), y (P,), [K₀ (P, P) per depth]): the task's training points (the runs' own: same config, same
    seed streams) and the infinite-width residual NTK at initialisation on them (docs/residual.md §2).
    Cached: the recursion's quadratures cost about 0.25 s per layer."""
    from meanfield.config import Config
    from meanfield.deep.wing import deep_points
    from meanfield.tasks import make_task
    from meanfield_solvers.dmft.residual_ntk import residual_init_kernels

    _, kappa, beta = BRANCHES[branch]
    m = dict(mode(True), depths=list(depths), seeds=seeds)
    cfg = Config.from_dict(depth_spec(branch, m)["base"])
    X, y, _, _ = deep_points(cfg, make_task(cfg))
    return X, y, [residual_init_kernels(X, L, beta / L ** kappa, "tanh").K for L in depths]


def lazy_edges(branch: str, m: dict) -> np.ndarray:
    """η* = 2P/λ_max(K₀) per depth (docs/residual.md §2.1): the step above which GD on the frozen
    infinite-width NTK of the training points diverges."""
    X, _, Ks = _lazy_kernels(branch, tuple(m["depths"]), m["seeds"])
    return np.array([2.0 * X.shape[0] / np.linalg.eigvalsh(K).max() for K in Ks])


def lazy_speed_steps(branch: str, m: dict, factor=SPEED_FACTOR, steps=STEPS) -> np.ndarray:
    """η_100 of GD on the frozen infinite-width NTK K₀ per depth (docs/residual.md §2.1): the smallest η with
    |(I − ηK₀/P)^T y|² ≤ |y|²/factor (outputs start at 0, the infinite-width value), found on a fine log grid
    (ratio 1.003) below the lazy edge."""
    X, y, Ks = _lazy_kernels(branch, tuple(m["depths"]), m["seeds"])
    P = X.shape[0]
    out = []
    for K in Ks:
        lam, V = np.linalg.eigh(K)
        c2 = (V.T @ y) ** 2
        etas = np.geomspace(1e-4, 2.0 * P / lam.max(), 4000)
        ratio = np.sum(c2 * (1.0 - np.outer(etas, lam) / P) ** (2 * steps), axis=1) / np.sum(c2)
        hit = np.where(ratio <= 1.0 / factor)[0]
        out.append(float(etas[hit[0]]) if hit.size else float("nan"))
    return np.asarray(out)


def run_param(param, m, out, workers):
    d = os.path.join(out, "scans", param)
    _report.run_study_scan(spec(param, m), d, workers)  # a diverged run is a data point here
    return d


def _size(params, axis):
    """The width (``train.widths``, a one-element list) or the depth (``model.depth``) of a scan group."""
    v = params[axis]
    v = json.loads(v) if isinstance(v, str) else v
    return int(v[0] if isinstance(v, list) else v)


def gather(d, sizes, axis="train.widths"):
    """(lrs (K,), loss (W, K), se (W, K), loss0 (W, K), completed (W, K)) from a scan directory; rows are the
    ``sizes`` (widths, or depths with ``axis='model.depth'``)."""
    col = scan.collect(d, keys=("risk_nn",))
    status = dict(zip(col.table["id"], col.table["status"]))
    # a folder may hold runs of other sizes (a larger run into the same --out): only the requested rows count
    groups = [g for g in col.groups if _size(g.params, axis) in sizes]
    lrs = sorted({float(g.params["train.lr"]) for g in groups})
    W, K = len(sizes), len(lrs)
    loss, se, loss0 = np.full((W, K), np.nan), np.full((W, K), np.nan), np.full((W, K), np.nan)
    done = np.zeros((W, K), dtype=bool)
    for g in groups:
        i, k = sizes.index(_size(g.params, axis)), lrs.index(float(g.params["train.lr"]))
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


def speed_step(lrs, loss, loss0, stable, factor=SPEED_FACTOR):
    """η_100: the smallest step at which the final loss is ``factor`` times below the initial one, by linear
    interpolation of log loss against log η between the grid points on either side of the first crossing
    (only stable points count); nan when no stable point crosses or the smallest already does.

    It measures where a curve sits along the η axis in its sub-edge part: curves that collapse across sizes
    have the same η_100; a kernel that grows with size moves it left (in the lazy limit the final residual is
    (I − ηK₀/P)^T y, so η_100 ∝ 1/K₀ for a kernel that grows uniformly).
    """
    target = np.log(np.mean(loss0[stable]) / factor) if stable.any() else np.nan
    ok = np.where(stable)[0]
    y = np.log(loss[ok])
    below = np.where(y <= target)[0]
    if below.size == 0 or below[0] == 0 or ok[below[0]] != ok[below[0] - 1] + 1:
        return float("nan")
    j = below[0]
    x0, x1 = np.log(lrs[ok[j - 1]]), np.log(lrs[ok[j]])
    return float(np.exp(x0 + (target - y[j - 1]) * (x1 - x0) / (y[j] - y[j - 1])))


def analyse(lrs, loss, se, loss0, done, sizes):
    """Stability, largest stable step, argmin and their spreads per row (a width or a depth: ``sizes``)."""
    stable = done & np.isfinite(loss) & (loss < loss0)
    W = len(sizes)
    lr_max = np.array([lrs[np.where(stable[i])[0].max()] if stable[i].any() else np.nan for i in range(W)])
    opt = [optimum(lrs, loss[i], stable[i]) for i in range(W)]
    argmin = np.array([o[0] for o in opt])
    interp = [o[1] for o in opt]
    spread = lambda a: float(np.nanmax(a) / np.nanmin(a))  # noqa: E731
    speed = np.array([speed_step(lrs, loss[i], loss0[i], stable[i]) for i in range(W)])
    return {"speed": speed, "speed_spread": spread(speed),"widths": np.asarray(sizes), "sizes": np.asarray(sizes), "lrs": lrs, "loss": loss, "se": se, "loss0": loss0, "stable": stable,
            "lr_max": lr_max, "argmin": argmin, "interpolated": interp, "lr_max_spread": spread(lr_max),
            "argmin_spread": spread(argmin),
            "best_loss": np.array([np.nanmin(np.where(stable[i], loss[i], np.nan)) if stable[i].any() else np.nan
                                   for i in range(W)])}


def _loss_panel(ax, st, label, cmap, seeds):
    """Loss against η, one curve per row of ``st`` (± 1 SE over the networks), ★ optimum, × unstable."""
    W = len(st["sizes"])
    top = np.nanmax(np.where(st["stable"], st["loss"], np.nan))
    for i, n in enumerate(st["sizes"]):
        c = cmap(0.9 * i / max(1, W - 1))
        y = np.where(st["stable"][i], st["loss"][i], np.nan)
        ax.errorbar(st["lrs"], y, yerr=np.where(st["stable"][i], st["se"][i], np.nan), fmt="o-", ms=3, lw=1.2,
                    color=c, capsize=2, label=f"{label} = {n}")
        unstable = ~st["stable"][i]
        ax.plot(st["lrs"][unstable], np.full(unstable.sum(), top * 2 * 1.5 ** i), "x", color=c, ms=5)
        if np.isfinite(st["argmin"][i]):
            ax.plot([st["argmin"][i]], [st["best_loss"][i]], "*", color=c, ms=13, mec="k", mew=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("step size η")
    ax.set_ylabel(f"training loss after {STEPS} GD steps")
    ax.plot([], [], "k*", ms=10, label="optimum (argmin)")
    ax.plot([], [], "kx", ms=5, label="unstable η (drawn at the top)")
    ax.errorbar([], [], yerr=[], fmt="k-", capsize=2, label=f"bars: ± 1 SE, {seeds} nets")
    ax.legend(fontsize=6.5, loc="lower left")


def _edge_panel(ax, depth):
    """Largest stable η, argmin and η_100 against depth per branch rule (colour), beside their lazy
    infinite-width predictions 2P/λ_max(K₀) and lazy η_100 (lines)."""
    for (name, st), c in zip(depth.items(), ("C0", "C3")):
        L = st["sizes"]
        ax.plot(L, st["lr_max"], "s-", color=c, ms=6)
        ax.plot(L, st["argmin"], "*--", color=c, ms=10, mec="k", mew=0.5)
        ax.plot(L, st["speed"], "o-", color=c, ms=5, mfc="w")
        ax.plot(L, st["lazy_edge"], ":", color=c, lw=1.6)
        ax.plot(L, st["lazy_speed"], "-.", color=c, lw=1.2)
        ax.plot([], [], "-", color=c, lw=4, label=f"residual {name}")
    for fmt_, lab in (("ks-", "largest stable η"), ("k*--", "argmin η"), ("ko-", "η_100 (loss ÷100)"),
                      ("k:", "lazy edge 2P/λ_max(K₀), N = ∞"), ("k-.", "lazy η_100, N = ∞")):
        ax.plot([], [], fmt_, mfc="w" if "o" in fmt_ else None, label=lab)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("depth L")
    ax.set_ylabel("step size η")
    ax.set_title("step sizes against depth\n(measured: markers; lazy N = ∞: lines)", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower left")


def figure(width, depth, m, out, fmt):
    """Top row: one panel per parametrisation (curves over widths); bottom row: one per branch rule (curves
    over depths) and the step sizes against depth."""
    plt = style()
    ncol = max(len(width), len(depth) + 1)
    fig, axes = plt.subplots(2, ncol, figsize=(5.0 * ncol, 8.6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, (param, st) in zip(axes[0], width.items()):
        _loss_panel(ax, st, "N", cmap, m["seeds"])
        ax.set_title(f"{param}, L = 2\nspread over N: argmin ×{st['argmin_spread']:.2f}, max-stable "
                     f"×{st['lr_max_spread']:.3g}, η_100 ×{st['speed_spread']:.2f}", fontsize=8.5)
    for ax, (name, st) in zip(axes[1], depth.items()):
        _loss_panel(ax, st, "L", plt.get_cmap("plasma"), m["seeds"])
        ax.set_title(f"residual {name} (β = {st['beta']:.2g}), N = {m['depth_width']}\nspread over L: argmin "
                     f"×{st['argmin_spread']:.2f}, max-stable ×{st['lr_max_spread']:.3g}, η_100 "
                     f"×{st['speed_spread']:.2f}", fontsize=8.5)
    _edge_panel(axes[1, len(depth)], depth)
    for ax in axes[1, len(depth) + 1:]:
        ax.axis("off")
    fig.suptitle("loss against step size: top, widths (depth 2); bottom, depths of residual muP networks", fontsize=10)
    fig.tight_layout()
    return save(fig, out, "lr_transfer", fmt)


def _optimum_rows(results, lazy):
    """Rows (name, size, argmin, best loss, largest stable η, η_100[, lazy edge, lazy η_100]) and a spread row
    per entry of ``results``."""
    rows = []
    for name, st in results.items():
        for i, n in enumerate(st["sizes"]):
            k = np.nanargmin(np.where(st["stable"][i], st["loss"][i], np.nan)) if st["stable"][i].any() else None
            best = f"{st['loss'][i][k]:.3g} ± {st['se'][i][k]:.1g}" if k is not None else "–"
            row = [name, int(n), f"{st['argmin'][i]:.3g}" + ("" if st["interpolated"][i] else " (edge)"),
                   best, f"{st['lr_max'][i]:.3g}", f"{st['speed'][i]:.3g}"]
            rows.append(row + ([f"{st['lazy_edge'][i]:.3g}", f"{st['lazy_speed'][i]:.3g}"] if lazy else []))
        rows.append([name, "spread (max/min)", f"**{st['argmin_spread']:.2f}**", "", f"**{st['lr_max_spread']:.3g}**",
                     f"**{st['speed_spread']:.2f}**"]
                    + ([f"{st['lazy_edge_spread']:.3g}", f"{st['lazy_speed_spread']:.3g}"] if lazy else []))
    return rows


def _grid_tables(results, label):
    out = []
    for name, st in results.items():
        rows = [[name, int(n)] + [
            (f"{st['loss'][i][k]:.2g}" if st["stable"][i][k] else ("div" if not np.isfinite(st["loss"][i][k]) else "✗"))
            for k in range(len(st["lrs"]))] for i, n in enumerate(st["sizes"])]
        out.append(table(["", label] + [f"{lr:.3g}" for lr in st["lrs"]], rows))
    return "\n\n".join(out)


def _ints(least):
    """An argparse type: comma-separated integers, each >= ``least`` (a bad value stops the command line with
    status 2, naming the option, before anything is written)."""
    def parse(text):
        try:
            v = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            v = []
        if not v or min(v) < least:
            raise argparse.ArgumentTypeError(f"expected integers >= {least} separated by commas, got {text!r}")
        return v
    return parse


def _seed_count(text):
    v = _ints(2)(text)
    if len(v) != 1:
        raise argparse.ArgumentTypeError(f"expected one integer >= 2 (standard errors need two networks), got {text!r}")
    return v[0]


def _options(ap):
    ap.add_argument("--widths", type=_ints(1), default=None, help="widths of the width axis (default: the mode's)")
    ap.add_argument("--depths", type=_ints(2), default=None,
                    help="depths of the residual axis, each >= 2: one residual block at least (default: the mode's)")
    ap.add_argument("--seeds", type=_seed_count, default=None, help="networks per (size, η) (default: the mode's)")


def main(argv=None):
    args = _report.study_args(__doc__, "lr_transfer", argv, extra=_options)
    out = args.out
    m = mode(args.quick)
    m.update({k: v for k, v in (("widths", args.widths), ("depths", args.depths), ("seeds", args.seeds))
              if v is not None})
    t0 = time.perf_counter()
    width = {}
    for param in PARAMS:
        d = run_param(param, m, out, args.workers)
        width[param] = analyse(*gather(d, m["widths"]), m["widths"])
    t_width = time.perf_counter() - t0
    depth = {}
    for branch, (name, kappa, beta) in BRANCHES.items():
        d = os.path.join(out, "scans", branch)
        _report.run_study_scan(depth_spec(branch, m), d, args.workers)
        st = analyse(*gather(d, m["depths"], "model.depth"), m["depths"])
        st.update(kappa=kappa, beta=beta, lazy_edge=lazy_edges(branch, m), lazy_speed=lazy_speed_steps(branch, m))
        st["lazy_edge_spread"] = float(st["lazy_edge"].max() / st["lazy_edge"].min())
        st["lazy_speed_spread"] = float(st["lazy_speed"].max() / st["lazy_speed"].min())
        depth[name] = st
    t_depth = time.perf_counter() - t0 - t_width
    fig = figure(width, depth, m, out, args.format)
    md = write_results(out, "Learning-rate transfer across widths and depths", [
        ("Setup", f"Teacher-student D = 8 (2 tanh teacher units), P = 8 training points, tanh, full-batch GD for "
                  f"{STEPS} steps, γ₀ = 1, {m['seeds']} networks per (size, η); log grid of η with "
                  f"{m['per_octave']} point(s) per octave. Widths: depth 2, widths {m['widths']}, one scan per "
                  f"parametrisation ({len(PARAMS)} scans, {t_width:.0f} s with {args.workers} workers). Depths: "
                  f"muP residual networks at width {m['depth_width']}, depths {m['depths']}, branch b = β/L^κ with "
                  + ", ".join(f"{n} (β = {b:.3g})" for n, _, b in BRANCHES.values())
                  + f" ({len(BRANCHES)} scans, {t_depth:.0f} s). Stable: completed under the health rules and "
                  "final loss below the initial loss. Argmin: parabola through the log-loss at the grid minimum "
                  "and its neighbours (\"edge\": grid point). η_100: the step at which the final loss is 100 times below "
                  "the initial one (log-log interpolation). Lazy edge 2P/λ_max(K₀) and lazy η_100: GD on the frozen "
                  "infinite-width NTK at initialisation (docs/residual.md §2.1)."),
        ("Optimum and largest stable step per width (depth 2)", table(
            ["parametrisation", "N", "argmin η", "best final loss (± SE)", "largest stable η", "η_100"],
            _optimum_rows(width, False))),
        (f"Optimum and largest stable step per depth (residual muP, N = {m['depth_width']})", table(
            ["branches", "L", "argmin η", "best final loss (± SE)", "largest stable η", "η_100",
             "lazy edge 2P/λ_max(K₀)", "lazy η_100"], _optimum_rows(depth, True))),
        ("Final loss on the grid, widths (div: diverged, ✗: not below its initial loss)", _grid_tables(width, "N")),
        ("Final loss on the grid, depths", _grid_tables(depth, "L")),
        ("Figure", f"- `{os.path.basename(fig)}`"),
    ])
    print(open(md).read())
    return {"width": width, "depth": depth}


if __name__ == "__main__":
    main()
