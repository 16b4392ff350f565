"""Figures of a particle-model run: risk curves (limit against each width, with seed bands) and
particle snapshots, laid out by the particles' *named columns* (``summary["columns"]``).

For the two-layer network (columns ``a``, ``w[0..d)``, ``(b)``): d = 2 without bias, the weight
vectors in the plane; otherwise the (‖w_i‖, a_i) plane. For any other particle model, the two
columns it names in ``plot_columns``. Nothing here knows a column's position.
"""
from __future__ import annotations

import numpy as np

from ..viz import colors, style

__all__ = ["plot_risk", "plot_particles", "plane_window", "CloudAxes", "cloud_axes", "columns_of", "occupied"]


def occupied(a, key, *index):
    """The rows of snapshot array ``a[key][index]`` that hold mass: all of them, or, where the run
    recorded masses (``masses_mf`` for ``particles_mf``, ``masses_nn_N{N}`` for ``neurons_nn_N{N}``),
    those of positive mass (the empty slots of a floating birth-death population hold none)."""
    x = a[key][index]
    mkey = "masses_mf" if key == "particles_mf" else key.replace("neurons_", "masses_")
    if mkey in a:
        x = x[np.asarray(a[mkey][index]) > 0]
    return x


def _gathers_on_rays(activation) -> bool:
    """Whether neurons (a, w) are identified only up to (a/l, l w), l > 0, but not up to sign.

    True for positively homogeneous activations that are not odd (relu); an odd one (linear)
    also identifies (a, w) with (-a, -w), so there is no ray to draw.
    """
    from meanfield_solvers.activations import get_activation

    act = get_activation(activation)
    return act.homogeneous and not act.odd


def columns_of(res) -> list:
    """The particle column names of a result (older two-layer results: rebuilt from the config)."""
    cols = res.summary.get("columns")
    if cols:
        return list(cols)
    d = res.arrays["x_eval"].shape[1]
    return ["a"] + [f"w[{j}]" for j in range(d)] + (["b"] if res.config.model.bias else [])


class CloudAxes:
    """How a particle cloud is drawn: ``xy(theta) -> (x, y)`` and the axis labels.

    ``planar``: the two-layer weight plane (teacher neurons are drawn there); ``sign``: the column
    whose sign colours the limit's particles in the plane (``a``), or None.
    """

    def __init__(self, columns, plot_columns=None):
        self.columns = list(columns)
        idx = {c: i for i, c in enumerate(self.columns)}
        w = [i for c, i in idx.items() if c.startswith("w[")]
        self.sign = None
        if "a" in idx and w:  # the two-layer network
            a = idx["a"]
            self.planar = len(w) == 2 and "b" not in idx
            if self.planar:
                self.sign = a
                self._xy = lambda th: (th[:, w[0]], th[:, w[1]])
                self.labels = ("$w_1$", "$w_2$")
            else:
                self._xy = lambda th: (np.linalg.norm(th[:, w], axis=1), th[:, a])
                self.labels = (r"$\|w_i\|$", "$a_i$")
        else:
            cx, cy = (plot_columns or self.columns[:2])[:2]
            ix, iy = idx[cx], idx[cy]
            self.planar = False
            self._xy = lambda th: (th[:, ix], th[:, iy])
            self.labels = (f"${cx}$", f"${cy}$")

    def xy(self, theta):
        return self._xy(np.asarray(theta))


def cloud_axes(res) -> CloudAxes:
    """The :class:`CloudAxes` of a result, from its stored column names."""
    return CloudAxes(columns_of(res), res.summary.get("plot_columns"))


def _widths(res):
    return [int(n) for n in res.arrays.get("widths", [])]


def plot_risk(res, ax=None, band="quantile"):
    """Risk against mean-field time: the limit as a black line, each width's seed mean with a band.

    ``band``: 'quantile' (the 16–84 % quantiles of the seeds, :mod:`meanfield.viz.bands`: positive,
    so correct on the log axis) or 'minmax'; the legend says which. Log–log axes (t = 0 is omitted on
    the log time axis).
    """
    from ..viz.bands import caption, legend, legend_note, seed_band

    plt = style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    a = res.arrays
    t = a["t"]
    pos = t > 0
    widths = _widths(res)
    cols = colors(plt, len(widths))
    for i, N in enumerate(widths):
        r = a["risk_nn"][i]
        tt = a["t_nn"]
        m, lo, hi = seed_band(r, axis=0)
        if band == "minmax":
            lo, hi = np.nanmin(r, axis=0), np.nanmax(r, axis=0)
        label = f"N = {N} (mean of {r.shape[0]})"
        cf = a.get("coupling_factor")
        if cf is not None and cf[i] < 1:  # the spread of a coupled width is narrower by sqrt(1 - N/M)
            label = f"N = {N} (mean of {r.shape[0]}; coupled: seed var x {cf[i]:.3g})"
        ax.plot(tt[pos], m[pos], color=cols[i], label=label)
        ax.fill_between(tt[pos], lo[pos], hi[pos], color=cols[i], alpha=0.2, lw=0)
    if widths:
        legend_note(ax, caption("seeds") if band != "minmax" else "band: min–max of seeds")
    if "risk_mf" in a:
        ax.plot(t[pos], a["risk_mf"][pos], color="k", lw=2.2, label="mean-field limit")
    ax.set_xscale("log")
    if np.nanmin(np.concatenate([a.get("risk_mf", np.ones(1)).ravel(), a.get("risk_nn", np.ones(1)).ravel()])) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("mean-field time t")
    which = "population" if res.summary.get("expectation") == "analytic" or np.any(np.isfinite(a.get("risk_nn_pop", np.nan))) else "test"
    ax.set_ylabel(f"{which} risk")
    legend(ax, fontsize=8)
    return ax


def plot_particles(res, fig=None, max_points=4000, max_panels=5):
    """Particle snapshots at up to ``max_panels`` evenly chosen snapshot times (axes by column name,
    see :class:`CloudAxes`); every snapshot is a frame of ``clouds.gif``.

    The limit's particles: grey, or in the two-layer weight plane red (a_i > 0) and blue (a_i < 0)
    with size ∝ |a_i|, teacher neurons as stars; circles: the neurons of the widest network's first
    seed. In the plane every panel shares one square window holding 99.5 % of the particles of every
    shown snapshot and every teacher neuron (the clouds spread out as they learn, and the teacher
    neurons are what they move towards, so neither may fall off the figure).
    """
    plt = style()
    a = res.arrays
    if "snap_t" not in a or a["snap_t"].size == 0:
        raise ValueError("this run recorded no snapshots (time.snapshots = 0)")
    n_snap = len(a["snap_t"])
    shown = np.unique(np.round(np.linspace(0, n_snap - 1, min(n_snap, max_panels))).astype(int))
    K = shown.size
    ca = cloud_axes(res)
    planar = ca.planar
    fig = fig or plt.figure(figsize=(3.2 * K, 3.2))
    axes = fig.subplots(1, K, sharex=True, sharey=True, squeeze=False)[0]
    widths = _widths(res)
    nn = a.get(f"neurons_nn_N{widths[-1]}") if widths else None
    for k, ax in zip(shown, axes):
        P = occupied(a, "particles_mf", k)[:max_points]
        x, y = ca.xy(P)
        if planar:
            s = P[:, ca.sign]
            size = 4 + 30 * np.abs(s) / (np.abs(s).max() + 1e-12)
            for sel, colour, sign in ((s > 0, "tab:red", ">"), (s <= 0, "tab:blue", "<")):
                ax.scatter(x[sel], y[sel], s=size[sel], c=colour, alpha=0.35, lw=0,
                           label=f"limit, $a_i {sign} 0$ (size ∝ $|a_i|$)")
        else:
            ax.scatter(x, y, s=3, c="0.6", alpha=0.5, lw=0, label="limit particles")
        if nn is not None:
            x2, y2 = ca.xy(occupied(a, f"neurons_nn_N{widths[-1]}", k, 0))
            ax.scatter(x2, y2, s=10, facecolors="none", edgecolors="k", lw=0.6, label=f"N = {widths[-1]}, seed 0")
        if planar and "teacher_w" in a:
            tw = a["teacher_w"]
            if _gathers_on_rays(res.config.model.activation):
                # e.g. relu: positively homogeneous, so a neuron is identified only up to a*|w|, and
                # the particles gather on the rays through the teacher neurons
                for v in tw:
                    r = 10 * v / np.linalg.norm(v)
                    ax.plot([0, r[0]], [0, r[1]], ls="--", c="goldenrod", lw=0.8, zorder=1)
            ax.scatter(tw[:, 0], tw[:, 1], marker="*", s=160, c="gold", edgecolors="k", zorder=5, label="teacher")
        ax.set_title(f"t = {a['snap_t'][k]:.3g}")
        ax.set_xlabel(ca.labels[0])
    if planar:
        lim = plane_window(res, shown, max_points)
        axes[0].set_xlim(-lim, lim)  # the axes share x and y
        axes[0].set_ylim(-lim, lim)
    axes[0].set_ylabel(ca.labels[1])
    axes[-1].legend(fontsize=7, loc="best")
    return fig


def plane_window(res, shown, max_points=4000):
    """Half-width of the square window of the weight-plane panels: the 99.5th percentile of |w_1|, |w_2|
    over the limit's particles of the snapshots ``shown`` (a few far particles may fall outside), and
    at least every teacher neuron; 10 % margin."""
    a = res.arrays
    ca = cloud_axes(res)
    pts = [np.column_stack(ca.xy(occupied(a, "particles_mf", j)[:max_points])) for j in shown]
    lim = float(np.nanpercentile(np.abs(np.concatenate(pts)), 99.5))
    if "teacher_w" in a and np.size(a["teacher_w"]):
        lim = max(lim, float(np.max(np.abs(a["teacher_w"]))))
    return 1.1 * lim if lim > 0 else 1.0
