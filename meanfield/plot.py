"""Figures of a run: risk curves (limit against each width, with seed bands) and particle snapshots.

Reachable from ``meanfield plot DIR`` and from Python (each function takes a :class:`Result` and
an optional matplotlib Axes). matplotlib is imported lazily with the Agg backend, so plotting
works on machines without a display.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_risk", "plot_particles", "plot_dir", "style", "add_cli_options", "cli_options"]

_STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
    "lines.linewidth": 1.6,
}


def _gathers_on_rays(activation) -> bool:
    """Whether neurons (a, w) are identified only up to (a/l, l w), l > 0, but not up to sign.

    True for positively homogeneous activations that are not odd (relu); an odd one (linear)
    also identifies (a, w) with (-a, -w), so there is no ray to draw.
    """
    from solvers.activations import get_activation

    act = get_activation(activation)
    return act.homogeneous and not act.odd


def style():
    """Import pyplot (Agg) with the project's style applied; returns the pyplot module."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def _widths(res):
    return [int(n) for n in res.arrays.get("widths", [])]


def plot_risk(res, ax=None, band="std"):
    """Risk against mean-field time: the limit as a black line, each width's seed mean with a band.

    ``band``: 'std' (mean ± one standard deviation across seeds) or 'minmax'. Log–log axes
    (t = 0 is drawn at the first positive recording time's left edge by a symlog-free choice:
    it is omitted on the log axis).
    """
    plt = style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    a = res.arrays
    t = a["t"]
    pos = t > 0
    widths = _widths(res)
    cmap = plt.get_cmap("viridis")
    for i, N in enumerate(widths):
        r = a["risk_nn"][i]
        tt = a["t_nn"]
        m = np.nanmean(r, axis=0)
        if band == "minmax":
            lo, hi = np.nanmin(r, axis=0), np.nanmax(r, axis=0)
        else:
            s = np.nanstd(r, axis=0)
            lo, hi = m - s, m + s
        c = cmap(i / max(1, len(widths) - 1) * 0.9)
        ax.plot(tt[pos], m[pos], color=c, label=f"N = {N} (mean of {r.shape[0]})")
        ax.fill_between(tt[pos], np.maximum(lo[pos], 1e-300), hi[pos], color=c, alpha=0.2, lw=0)
    if "risk_mf" in a:
        ax.plot(t[pos], a["risk_mf"][pos], color="k", lw=2.2, label="mean-field limit")
    ax.set_xscale("log")
    if np.nanmin(np.concatenate([a.get("risk_mf", np.ones(1)).ravel(), a.get("risk_nn", np.ones(1)).ravel()])) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("mean-field time t")
    which = "population" if res.summary.get("expectation") == "analytic" or np.any(np.isfinite(a.get("risk_nn_pop", np.nan))) else "test"
    ax.set_ylabel(f"{which} risk")
    ax.legend(fontsize=8)
    return ax


def plot_particles(res, fig=None, max_points=4000):
    """Particle snapshots at the snapshot times.

    d = 2 without bias: the weight vectors w_i in the plane, colour = sign of a_i, size ∝ |a_i|
    (teacher neurons as stars). Otherwise the (‖w_i‖, a_i) plane. Grey: mean-field particles;
    colour: the neurons of the widest network's first seed.
    """
    plt = style()
    a = res.arrays
    if "snap_t" not in a or a["snap_t"].size == 0:
        raise ValueError("this run recorded no snapshots (time.snapshots = 0)")
    K = len(a["snap_t"])
    d = a["x_eval"].shape[1]
    bias = res.config.model.bias
    planar = d == 2 and not bias
    fig = fig or plt.figure(figsize=(3.2 * K, 3.2))
    axes = fig.subplots(1, K, sharex=True, sharey=True, squeeze=False)[0]
    widths = _widths(res)
    nn = a.get(f"neurons_nn_N{widths[-1]}") if widths else None

    def xy(th):
        if planar:
            return th[:, 1], th[:, 2]
        return np.linalg.norm(th[:, 1 : 1 + d], axis=1), th[:, 0]

    for k, ax in enumerate(axes):
        P = a["particles_mf"][k][:max_points]
        x, y = xy(P)
        if planar:
            ax.scatter(x, y, s=4 + 30 * np.abs(P[:, 0]) / (np.abs(P[:, 0]).max() + 1e-12),
                       c=np.where(P[:, 0] > 0, "tab:red", "tab:blue"), alpha=0.35, lw=0, label="limit")
        else:
            ax.scatter(x, y, s=3, c="0.6", alpha=0.5, lw=0, label="limit particles")
        if nn is not None:
            th = nn[k][0]
            x2, y2 = xy(th)
            ax.scatter(x2, y2, s=10, facecolors="none", edgecolors="k", lw=0.6, label=f"N = {widths[-1]}, seed 0")
        if planar and "teacher_w" in a:
            tw = a["teacher_w"]
            if _gathers_on_rays(res.config.model.activation):
                # a positively homogeneous, non-odd activation (relu) identifies a neuron only up
                # to a*|w|, so the particles gather on the rays through the teacher neurons
                for v in tw:
                    r = 10 * v / np.linalg.norm(v)
                    ax.plot([0, r[0]], [0, r[1]], ls="--", c="goldenrod", lw=0.8, zorder=1)
            ax.scatter(tw[:, 0], tw[:, 1], marker="*", s=160, c="gold", edgecolors="k", zorder=5, label="teacher")
        ax.set_title(f"t = {a['snap_t'][k]:.3g}")
        if planar:
            allp = a["particles_mf"][:, :max_points, 1:3]
            lim = np.nanpercentile(np.abs(allp), 99.5) * 1.1
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_xlabel("$w_1$" if planar else r"$\|w_i\|$")
    axes[0].set_ylabel("$w_2$" if planar else "$a_i$")
    axes[-1].legend(fontsize=7, loc="best")
    return fig


def add_cli_options(parser):
    """Options of ``meanfield plot`` used for scan directories."""
    parser.add_argument("--x", help="scan plot: parameter on the x axis (e.g. width)")
    parser.add_argument("--y", help="scan plot: metric on the y axis (e.g. risk_gap)")
    parser.add_argument("--hue", help="scan plot: parameter giving one line each")
    parser.add_argument("--logx", action="store_true")
    parser.add_argument("--logy", action="store_true")
    parser.add_argument("--fit", action="store_true", help="scan plot: fit and show power-law slopes")


def cli_options(args):
    return {k: getattr(args, k, None) for k in ("x", "y", "hue", "logx", "logy", "fit")}


def plot_dir(path, fmt="png", **scan_opts):
    """Write the figures of a run directory (or delegate to the scan plots); returns the paths."""
    if os.path.isfile(os.path.join(path, "index.sqlite")):
        from .scan.plot import plot_scan_dir

        return plot_scan_dir(path, fmt=fmt, **scan_opts)
    from .run import load

    res = load(path)
    if res.summary.get("kind") == "deep":
        from .deep.plot import plot_deep_dir

        return plot_deep_dir(path, res, fmt=fmt)
    plt = style()
    files = []
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    plot_risk(res, ax)
    f = os.path.join(path, f"risk.{fmt}")
    fig.savefig(f)
    plt.close(fig)
    files.append(f)
    if "snap_t" in res.arrays and res.arrays["snap_t"].size:
        fig = plot_particles(res)
        f = os.path.join(path, f"particles.{fmt}")
        fig.savefig(f)
        plt.close(fig)
        files.append(f)
    # convergence and fluctuation figures, drawn when the result has what they need
    from .figures import write_figures

    files += write_figures(res, path, fmt)
    return files
