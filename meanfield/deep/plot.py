"""Figures of a deep run: loss curves, outputs f_μ(t), kernel heatmaps, kernel–target alignment.

Called by ``meanfield plot DIR`` (through :func:`meanfield.plot.plot_dir`) when the run directory holds a
deep run (``summary.json`` with ``kind = 'deep'``), and usable from Python: every function takes a
:class:`meanfield.run.Result` and an optional Axes/Figure.
"""
from __future__ import annotations

import os

import numpy as np

from ..viz import save as save_figure
from ..viz import style
from ..viz.bands import caption, legend, legend_note, se_band, seed_band

__all__ = ["is_deep_result", "plot_loss", "plot_outputs", "plot_kernels", "plot_alignment", "plot_deep_dir"]


def is_deep_result(res) -> bool:
    """Whether a loaded :class:`~meanfield.run.Result` is a deep run."""
    return res.summary.get("kind") == "deep" or "depth" in res.arrays


def _widths(res):
    return [int(n) for n in res.arrays.get("widths", [])]


def _colour(plt, i, W):
    return plt.get_cmap("viridis")(i / max(1, W - 1) * 0.9)


def _band(ax, t, curves, colour, label, pos):
    """Seed mean and its 16–84 % quantile band (:mod:`meanfield.viz.bands`: positive for positive data,
    so correct on log axes)."""
    m, lo, hi = seed_band(curves, axis=0)
    ax.plot(t[pos], m[pos], color=colour, label=label)
    ax.fill_between(t[pos], lo[pos], hi[pos], color=colour, alpha=0.2, lw=0)
    legend_note(ax, caption("seeds"))


def plot_loss(res, ax=None):
    """Training loss: the limit (black; MC error band) and each width's seed mean ± one std."""
    plt = style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    a = res.arrays
    t = a["t"]
    pos = t > 0
    widths = _widths(res)
    for i, N in enumerate(widths):
        _band(ax, a["t_nn"], a["risk_nn_train"][i], _colour(plt, i, len(widths)),
              f"N = {N} (mean of {a['risk_nn_train'].shape[1]} seeds)", pos)
    vals = np.concatenate([np.ravel(a.get("risk_mf_train", [1.0])), np.ravel(a.get("risk_nn_train", [1.0]))])
    logy = bool(np.nanmin(vals) > 0)
    if "risk_mf_train" in a:
        method = res.summary.get("limit", {}).get("method", "limit")
        ax.plot(t[pos], a["risk_mf_train"][pos], color="k", lw=2.2, label=f"{method} (N = ∞)")
        err = a.get("risk_mf_err")
        if err is not None and np.any(err > 0):
            lo, hi = se_band(a["risk_mf_train"], err, log=logy, k=2)
            ax.fill_between(t[pos], lo[pos], hi[pos], color="k", alpha=0.15, lw=0)
            legend_note(ax, caption("mc2", logy), color="k")
        if np.any(np.isfinite(a.get("risk_mf_test", np.nan))):
            ax.plot(t[pos], a["risk_mf_test"][pos], color="k", lw=1.2, ls="--", label="limit, test points")
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("time t")
    ax.set_ylabel("training loss")
    ax.set_title(f"L = {int(a['depth'])}, γ₀ = {res.summary.get('gamma0', float('nan')):.3g}", fontsize=9)
    legend(ax, fontsize=7)
    return ax


def plot_outputs(res, fig=None, max_points=6):
    r"""Outputs :math:`f_\mu(t)` at up to ``max_points`` points (training points first, then test points),
    each with its target (dotted)."""
    plt = style()
    a = res.arrays
    P, Q = a["x_train"].shape[0], a["x_test"].shape[0]
    pts = list(range(min(P, max_points - min(Q, max_points // 3))))
    pts += [P + q for q in range(min(Q, max_points - len(pts)))]
    ncol = min(3, len(pts))
    nrow = int(np.ceil(len(pts) / ncol))
    if fig is None:
        fig = plt.figure(figsize=(3.4 * ncol, 2.6 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    widths = _widths(res)
    t = a["t"]
    pos = np.ones_like(t, dtype=bool)
    y = np.concatenate([a["y_train"], a["y_test"]])
    for ax, mu in zip(axes, pts):
        for i, N in enumerate(widths):
            _band(ax, a["t_nn"], a["f_nn"][i][:, :, mu], _colour(plt, i, len(widths)), f"N = {N}", pos)
        if "f_mf" in a:
            ax.plot(t, a["f_mf"][:, mu], color="k", lw=2.0, label="N = ∞")
            err = a.get("f_mf_err")
            if err is not None and np.any(err[:, mu] > 0):
                lo, hi = se_band(a["f_mf"][:, mu], err[:, mu], k=2)
                ax.fill_between(t, lo, hi, color="k", alpha=0.15, lw=0)
                legend_note(axes[0], caption("mc2"), color="k")
        ax.axhline(y[mu], color="0.5", lw=0.8, ls=":", label="target $y_\\mu$")
        ax.set_title(("train" if mu < P else "test") + f" point {mu if mu < P else mu - P}", fontsize=9)
        ax.set_xlabel("t")
    for ax in axes[len(pts):]:
        ax.set_visible(False)
    axes[0].set_ylabel("f_μ(t)")
    legend(axes[0], fontsize=7)
    return fig


def plot_kernels(res, fig=None, n_times=3, which="K"):
    """Heatmaps of a kernel (``'K'`` the NTK, or ``'Phi'``/``'G'`` of the last layer) at ``n_times`` times:
    the limit (first row) and the widest network's seed mean (second row)."""
    plt = style()
    a = res.arrays
    T = len(a["t"])
    idx = np.unique(np.round(np.linspace(0, T - 1, n_times)).astype(int))
    rows = []
    if f"{which}_inf" in a:
        rows.append(("N = ∞", a[f"{which}_inf"]))
    widths = _widths(res)
    if widths:
        rows.append((f"N = {widths[-1]} (seed mean)", a[f"{which}_nn"][-1]))
    if fig is None:
        fig = plt.figure(figsize=(2.8 * len(idx), 2.6 * max(1, len(rows))), layout="constrained")
    axes = fig.subplots(max(1, len(rows)), len(idx), squeeze=False)
    sel = [arr[idx] if which == "K" else arr[idx][:, -1] for _, arr in rows]
    vmax = max(np.nanmax(np.abs(s)) for s in sel) if sel else 1.0
    im = None
    for r, ((label, _), mats) in enumerate(zip(rows, sel)):
        for c, k in enumerate(idx):
            ax = axes[r, c]
            im = ax.imshow(mats[c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"{label}, t = {a['t'][k]:.3g}", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    name = {"K": "NTK K", "Phi": "feature kernel Φ^L", "G": "gradient kernel G^L"}[which]
    fig.suptitle(f"{name} (train points, then test points)", fontsize=9)
    return fig


def plot_alignment(res, ax=None):
    r"""Kernel–target alignment :math:`A(K) = y^\top Ky/(\lVert K\rVert_F\lVert y\rVert^2)` over time."""
    plt = style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    a = res.arrays
    widths = _widths(res)
    pos = np.ones_like(a["t"], dtype=bool)
    for i, N in enumerate(widths):
        _band(ax, a["t_nn"], a["align_nn"][i], _colour(plt, i, len(widths)), f"N = {N}", pos)
    if "align_mf" in a:
        ax.plot(a["t"], a["align_mf"], color="k", lw=2.2, label="N = ∞")
    ax.set_xlabel("time t")
    ax.set_ylabel("alignment A(K)")
    legend(ax, fontsize=7)
    return ax


def plot_deep_dir(path, res, fmt="png"):
    """Write ``loss``, ``outputs``, ``kernels`` and ``alignment`` figures into ``path``; returns the paths."""
    plt = style()
    files = []

    def save(fig, name):
        f = os.path.join(path, f"{name}.{fmt}")
        save_figure(fig, f)
        plt.close(fig)
        files.append(f)

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    plot_loss(res, ax)
    save(fig, "loss")
    save(plot_outputs(res), "outputs")
    if "K_mf" in res.arrays or "K_nn" in res.arrays:
        save(plot_kernels(res), "kernels")
        fig, ax = plt.subplots(figsize=(5.2, 3.8))
        plot_alignment(res, ax)
        save(fig, "alignment")
    return files
