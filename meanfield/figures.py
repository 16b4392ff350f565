r"""Convergence and fluctuation figures of a run (beyond the risk curves of :mod:`meanfield.plot`).

* :func:`plot_power_laws` — log–log points with error bars and fitted lines, the fitted slope
  :math:`\pm` its standard error in the legend (the generic scaling plot);
* :func:`plot_distance_scaling` — distances to the limit at the last snapshot against :math:`N`;
* :func:`plot_distances_vs_t` — :math:`W_2`, coupling distance and MMD against :math:`t`, one line
  per :math:`N`;
* :func:`plot_collapse` — :math:`N\operatorname{Var}` of output and risk against :math:`t` for
  several :math:`N` (the CLT collapse) and the fitted exponent :math:`-\gamma(t)`;
* :func:`plot_variance_scaling` — :math:`\operatorname{Var}` against :math:`N` at a few times;
* :func:`plot_clouds` / :func:`animate_clouds` — the particle cloud at the snapshot times, and a
  GIF of it over time (matplotlib ``PillowWriter``, no ffmpeg needed);
* :func:`write_figures` — all of those a result supports, into a directory (used by
  ``meanfield plot``).

Every function takes analysis objects from :mod:`meanfield.analysis.runs` or a
:class:`meanfield.Result` and uses :func:`meanfield.viz.style`.
"""
from __future__ import annotations

import os

import numpy as np

from .analysis.fitting import fit_power_law
from .twolayer.plot import cloud_axes, occupied
from .viz import colors as _viz_colors
from .viz import pm
from .viz import save as save_figure
from .viz import style
from .viz.bands import caption, legend, legend_note, se_band, se_errorbars

__all__ = [
    "plot_power_laws",
    "plot_distance_scaling",
    "plot_distances_vs_t",
    "plot_collapse",
    "plot_variance_scaling",
    "plot_clouds",
    "animate_clouds",
    "write_figures",
]


def _colors(plt, n):
    return _viz_colors(plt, n)


def plot_power_laws(ax, x, series, *, xlabel="width N", ylabel="", ref_slope=None, xsym="N"):
    r"""Log–log scaling plot with fitted power laws.

    Parameters
    ----------
    ax : matplotlib Axes
    x : array_like (K,)
    series : dict label -> (y, yerr or None)
        Each series is fitted by :func:`meanfield.analysis.fit_power_law` (weighted by ``yerr``
        when given); the legend reads ``label: slope = s ± se``. Non-positive or non-finite
        points are dropped (a series with fewer than 2 usable points is drawn unfitted).
    ref_slope : float, optional
        Draw a grey dashed reference line :math:`\propto x^{\text{ref}}` through the first series.
    xsym : str
        The abscissa's symbol in the reference line's label (TeX, e.g. ``r"\alpha"``).

    Returns
    -------
    dict label -> PowerLawFit or None
    """
    x = np.asarray(x, dtype=float)
    fits = {}
    first = None
    markers = "osD^v<>"
    for j, (label, (y, e)) in enumerate(series.items()):
        c = f"C{j}"
        y = np.asarray(y, dtype=float)
        e = None if e is None else np.asarray(e, dtype=float)
        ok = np.isfinite(y) & (y > 0)
        if e is not None:
            ok &= np.isfinite(e) & (e > 0)
        fit = None
        try:
            if ok.sum() >= (2 if e is not None else 3):
                fit = fit_power_law(x[ok], y[ok], None if e is None else e[ok])
        except ValueError:
            fit = None
        fits[label] = fit
        lab = label if fit is None else f"{label}: slope {pm(fit.slope, fit.slope_se)}"
        ax.errorbar(x[ok], y[ok], yerr=None if e is None else se_errorbars(y[ok], e[ok], log=True),
                    fmt=markers[j % len(markers)], color=c, ms=6 - j, mfc="none" if j else c, capsize=2, label=lab)
        if e is not None:
            legend_note(ax, caption("bars", True))
        if fit is not None:
            xx = np.geomspace(x[ok].min(), x[ok].max(), 50)
            ax.plot(xx, fit.predict(xx), color=c, lw=1.2)
            if first is None:
                first = (xx, fit.predict(xx))
    if ref_slope is not None and first is not None:
        xx, yy = first
        ax.plot(xx, yy[0] * (xx / xx[0]) ** ref_slope, ls="--", c="0.5", lw=1, label=f"$\\propto {xsym}^{{{ref_slope:g}}}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # label the sampled abscissae themselves (the log locator crowds a narrow range)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    legend(ax, fontsize=7)
    return fits


def plot_distance_scaling(dist, ax=None, k=-1):
    r"""Distances to the limit at snapshot ``k`` (default the last) against :math:`N`, with fits.

    Coupling distance (expected :math:`N^{-1/2}`), :math:`W_2` to the coupled subsample, and
    :math:`W_2` to the whole limit cloud (sampling floor :math:`N^{-1/p}`).
    """
    plt = style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    series = {}
    for name, label in (("coupled", "coupling distance"), ("w2_sub", "$W_2$ to coupled subsample"),
                        ("w2", "$W_2$ to limit cloud")):
        m, se = dist.mean(name)
        if np.any(np.isfinite(m[:, k])):
            series[label] = (m[:, k], se[:, k])
    plot_power_laws(ax, dist.widths, series, ylabel="distance to the limit", ref_slope=-0.5)
    ax.set_title(f"t = {dist.snap_t[k]:.3g}")
    return ax


def plot_distances_vs_t(dist, fig=None):
    r""":math:`W_2`, coupling distance and :math:`\mathrm{MMD}^2` against :math:`t`, one line per :math:`N`."""
    plt = style()
    names = [(n, lab) for n, lab in (("w2", "$W_2$ to limit cloud"), ("coupled", "coupling distance"),
                                     ("mmd2", "MMD$^2$")) if np.any(np.isfinite(getattr(dist, n)))]
    fig = fig or plt.figure(figsize=(4.0 * max(1, len(names)), 3.4), layout="constrained")
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)[0]
    cols = _colors(plt, len(dist.widths))
    for ax, (name, lab) in zip(axes, names):
        m, se = dist.mean(name)
        logy = bool(name != "mmd2" and np.nanmin(m[:, 1:] if m.shape[1] > 1 else m) > 0)
        for i, N in enumerate(dist.widths):
            ax.errorbar(dist.snap_t, m[i], yerr=se_errorbars(m[i], se[i], log=logy), marker="o", ms=3, capsize=2,
                        color=cols[i], label=f"N = {N}")
        ax.set_xlabel("mean-field time t")
        ax.set_ylabel(lab)
        if logy:
            ax.set_yscale("log")
        legend_note(ax, caption("bars", logy))
    legend(axes[0], fontsize=7)
    for ax in axes[1:]:
        legend(ax, notes_only=True, fontsize=7)
    return fig


def plot_collapse(fl, fig=None):
    r"""Fluctuation collapse: :math:`N\operatorname{Var}` against :math:`t` for each :math:`N`.

    Left: output variance (averaged over evaluation points); middle: risk variance; right: the
    fitted exponent :math:`-\gamma(t)` of :math:`\operatorname{Var}\propto N^{-\gamma}` with
    :math:`\pm` one standard error (mean-field CLT: :math:`-1`).
    """
    plt = style()
    fig = fig or plt.figure(figsize=(12, 3.5), layout="constrained")
    axes = fig.subplots(1, 3)
    cols = _colors(plt, len(fl.widths))
    pos = fl.t > 0
    for ax, sc, lab in ((axes[0], fl.f, r"$N\,\mathrm{Var}\,f_N(t,x)$"), (axes[1], fl.risk, r"$N\,\mathrm{Var}\,R_N(t)$")):
        logy = bool(np.nanmin(sc.scaled[:, pos]) > 0)
        for i, N in enumerate(fl.widths):
            y, e = sc.scaled[i], sc.scaled_se[i]
            lo, hi = se_band(y, e, log=logy)
            ax.plot(fl.t[pos], y[pos], color=cols[i], label=f"N = {int(N)}")
            ax.fill_between(fl.t[pos], lo[pos], hi[pos], color=cols[i], alpha=0.2, lw=0)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        legend_note(ax, caption("se", logy))
        ax.set_xlabel("mean-field time t")
        ax.set_ylabel(lab)
    legend(axes[0], fontsize=7)
    legend(axes[1], notes_only=True, fontsize=7)
    ax = axes[2]
    for s, se, lab, c in ((fl.f_slope, fl.f_slope_se, "output", "C0"), (fl.risk_slope, fl.risk_slope_se, "risk", "C1")):
        ax.plot(fl.t[pos], s[pos], color=c, label=lab)
        ax.fill_between(fl.t[pos], (s - se)[pos], (s + se)[pos], color=c, alpha=0.2, lw=0)
    legend_note(ax, caption("se"))
    ax.axhline(-1, ls="--", c="0.5", lw=1, label="CLT: $-1$")
    ax.set_xscale("log")
    ax.set_xlabel("mean-field time t")
    ax.set_ylabel(r"fitted exponent $-\gamma$ of Var $\propto N^{-\gamma}$")
    legend(ax, fontsize=7)
    return fig


def plot_variance_scaling(fl, ax=None, n_times=3, which="f"):
    r""":math:`\operatorname{Var}` against :math:`N` at ``n_times`` times (log-spaced indices), with fits."""
    plt = style()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.8))
    sc = fl.f if which == "f" else fl.risk
    slope = fl.f_slope if which == "f" else fl.risk_slope
    ok = np.where(np.isfinite(slope))[0]  # times where a fit exists (no vanishing variance)
    idx = ok[np.unique(np.round(np.linspace(0, ok.size - 1, n_times)).astype(int))] if ok.size else []
    series = {f"t = {fl.t[i]:.3g}": (sc.var[:, i], sc.var_se[:, i]) for i in idx}
    plot_power_laws(ax, fl.widths, series, ylabel=("Var $f_N(x)$" if which == "f" else "Var $R_N$"), ref_slope=-1)
    return ax


def _cloud_setup(res):
    a = res.arrays
    if "snap_t" not in a or a["snap_t"].size == 0 or "particles_mf" not in a:
        raise ValueError("needs snapshots of the limit (time.snapshots >= 1)")
    return a, cloud_axes(res)


def plot_clouds(res, fig=None, max_points=3000, seed_index=0, max_panels=5):
    r"""Particle clouds at (up to ``max_panels`` evenly chosen) snapshot times: the limit (grey) and
    each width's neurons (one seed). The GIF (:func:`animate_clouds`) shows every snapshot.

    :math:`d = 2` without bias: the plane of :math:`w`; otherwise :math:`(|w_i|, a_i)`.
    """
    plt = style()
    a, ca = _cloud_setup(res)
    planar = ca.planar
    n_snap = a["snap_t"].size
    shown = np.unique(np.round(np.linspace(0, n_snap - 1, min(n_snap, max_panels))).astype(int))
    K = shown.size
    widths = [int(n) for n in a.get("widths", [])]
    cols = _colors(plt, len(widths))
    fig = fig or plt.figure(figsize=(3.2 * K, 3.3))
    axes = fig.subplots(1, K, sharex=True, sharey=True, squeeze=False)[0]
    for k, ax in zip(shown, axes):
        x, y = ca.xy(occupied(a, "particles_mf", k)[:max_points])
        ax.scatter(x, y, s=3, c="0.6", alpha=0.5, lw=0, label="limit")
        for i, N in enumerate(widths):
            x, y = ca.xy(occupied(a, f"neurons_nn_N{N}", k, seed_index))
            ax.scatter(x, y, s=9, facecolors="none", edgecolors=[cols[i]], lw=0.6, label=f"N = {N}")
        if planar and "teacher_w" in a:
            tw = a["teacher_w"]
            ax.scatter(tw[:, 0], tw[:, 1], marker="*", s=140, c="gold", edgecolors="k", zorder=5, label="teacher")
        ax.set_title(f"t = {a['snap_t'][k]:.3g}")
        ax.set_xlabel(ca.labels[0])
    axes[0].set_ylabel(ca.labels[1])
    axes[-1].legend(fontsize=6, loc="best")
    return fig


def animate_clouds(res, path, fps=None, max_points=3000, seed_index=0):
    r"""GIF of the limit's particle cloud (and the widest network's neurons) over the snapshot times.

    Written with matplotlib's ``PillowWriter`` (no ffmpeg); one frame per snapshot (``time.snapshots``:
    12 or more show the motion; the snapshots follow the recording times, log-spaced by default, so
    the fast early motion gets as many frames as the slow late one). ``fps`` defaults to a 4–6 s loop.
    Returns ``path``.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = style()
    a, ca = _cloud_setup(res)
    planar = ca.planar
    K = a["snap_t"].size
    widths = [int(n) for n in a.get("widths", [])]
    xy = [ca.xy(occupied(a, "particles_mf", k)[:max_points]) for k in range(K)]
    xy_nn = [ca.xy(occupied(a, f"neurons_nn_N{widths[-1]}", k, seed_index)) for k in range(K)] if widths else None
    teacher = a["teacher_w"] if planar and "teacher_w" in a else np.zeros((0, 2))
    allx = np.concatenate([u for u, _ in xy] + ([u for u, _ in xy_nn] if xy_nn else []) + [teacher[:, 0]])
    ally = np.concatenate([v for _, v in xy] + ([v for _, v in xy_nn] if xy_nn else []) + [teacher[:, 1]])
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    lo_x, hi_x = np.nanpercentile(allx, [0.5, 99.5])
    lo_y, hi_y = np.nanpercentile(ally, [0.5, 99.5])
    if teacher.size:  # the teacher neurons, where the particles go, always in the window
        lo_x, hi_x = min(lo_x, teacher[:, 0].min()), max(hi_x, teacher[:, 0].max())
        lo_y, hi_y = min(lo_y, teacher[:, 1].min()), max(hi_y, teacher[:, 1].max())
    pad_x, pad_y = 0.1 * (hi_x - lo_x + 1e-12), 0.1 * (hi_y - lo_y + 1e-12)
    ax.set_xlim(lo_x - pad_x, hi_x + pad_x)
    ax.set_ylim(lo_y - pad_y, hi_y + pad_y)
    ax.set_xlabel(ca.labels[0])
    ax.set_ylabel(ca.labels[1])
    if planar and "teacher_w" in a:
        tw = a["teacher_w"]
        ax.scatter(tw[:, 0], tw[:, 1], marker="*", s=140, c="gold", edgecolors="k", zorder=5, label="teacher")
    sc = ax.scatter(*xy[0], s=4, c="0.5", alpha=0.5, lw=0, label="limit")
    sc2 = ax.scatter(*xy_nn[0], s=10, facecolors="none", edgecolors="C3", lw=0.6,
                     label=f"N = {widths[-1]}") if xy_nn else None
    # the longest title text while laying out, so tight_layout keeps room for every frame's title
    title = ax.set_title(max((f"t = {v:.3g}" for v in a["snap_t"]), key=len))
    ax.legend(fontsize=7, loc="upper right")
    from .viz import banner

    if banner():  # the quick-mode stamp, as on the figures written through viz.save
        fig.suptitle(banner(), fontsize=7, fontweight="bold", color="#b2182b")

    def frame(k):
        sc.set_offsets(np.column_stack(xy[k]))
        if sc2 is not None:
            sc2.set_offsets(np.column_stack(xy_nn[k]))
        title.set_text(f"t = {a['snap_t'][k]:.3g}")
        return (sc, title) if sc2 is None else (sc, sc2, title)

    fig.tight_layout()  # the GIF is written frame by frame, without savefig's tight bounding box
    anim = FuncAnimation(fig, frame, frames=K, blit=False)
    anim.save(path, writer=PillowWriter(fps=fps or max(2, round(K / 5))))
    plt.close(fig)
    return path


def _save(fig, path, fmt, files):
    f = f"{path}.{fmt}"
    save_figure(fig, f)
    style().close(fig)
    files.append(f)


def write_figures(res, outdir, fmt="png", *, gif=True, dist=None, fl=None, **dist_kw):
    r"""Write every convergence/fluctuation figure ``res`` supports into ``outdir``; returns paths.

    * ≥ 2 widths and ≥ 2 seeds: ``variance_collapse``, ``variance_scaling``;
    * snapshots of the limit and the networks: ``distances_t``, ``distance_scaling`` (≥ 2 widths),
      ``clouds`` and ``clouds.gif`` (≥ 2 snapshots).

    ``dist``/``fl`` reuse already computed :func:`~meanfield.analysis.runs.neuron_distances` /
    :func:`~meanfield.analysis.runs.fluctuations`; ``dist_kw`` goes to ``neuron_distances``.
    """
    from .analysis import runs

    plt = style()
    a = res.arrays
    files = []
    widths = [int(n) for n in a.get("widths", [])]
    S = a["risk_nn"].shape[1] if "risk_nn" in a else 0
    if len(widths) >= 2 and S >= 2:
        fl = fl or runs.fluctuations(res)
        _save(plot_collapse(fl), os.path.join(outdir, "variance_collapse"), fmt, files)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        plot_variance_scaling(fl, axes[0], which="f")
        plot_variance_scaling(fl, axes[1], which="risk")
        _save(fig, os.path.join(outdir, "variance_scaling"), fmt, files)
    has_snaps = "particles_mf" in a and a.get("snap_t", np.zeros(0)).size > 0 and widths
    if has_snaps:
        # bounded cost for big runs: exact W2 only up to 1024 points a side, MMD on 1000 particles
        dist = dist or runs.neuron_distances(res, **{"exact_max": 1024, "mmd_max": 1000, **dist_kw})
        _save(plot_distances_vs_t(dist), os.path.join(outdir, "distances_t"), fmt, files)
        if len(widths) >= 2:
            fig, ax = plt.subplots(figsize=(5.2, 3.8))
            plot_distance_scaling(dist, ax)
            _save(fig, os.path.join(outdir, "distance_scaling"), fmt, files)
        _save(plot_clouds(res), os.path.join(outdir, "clouds"), fmt, files)
        if gif and a["snap_t"].size >= 2:
            files.append(animate_clouds(res, os.path.join(outdir, "clouds.gif")))
    return files
