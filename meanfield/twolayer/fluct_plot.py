"""Figures of a run with predicted fluctuations (``[fluctuations] predict = true``).

* ``fluct_bands``: for a few outputs, the limit curve with the predicted band ±2σ/√N of each width
  (σ² the predicted N·Var for that width's initialisation) over the measured seed spread of that
  width (dotted: mean ± 2 standard deviations over seeds, the same Gaussian quantity as the band);
* ``fluct_collapse``: measured N·Var of each width over time (markers, ±1 SE) against the prediction
  (line, ±1 SE of the finite reference sample) and the naive estimate (dashed). Its y axis is
  logarithmic, so both errors are drawn as ×/÷ exp(SE/value) (:mod:`meanfield.viz.bands`; positive,
  equal to ±1 SE to first order) and the legend says so.

``meanfield plot`` draws them when the result has ``fluct_nvar``.
"""
from __future__ import annotations

import os

import numpy as np

from ..viz import colors as _colors
from ..viz import save, style
from ..viz.bands import caption, figure_legend, legend_note, se_band, se_errorbars

__all__ = ["measured_outputs", "plot_bands", "plot_prediction_collapse", "write_prediction_figures"]

_LIMIT = {"risk_train": "risk_mf_train", "risk_test": "risk_mf_test", "risk_pop": "risk_mf"}
_NETS = {"risk_train": "risk_nn_train", "risk_test": "risk_nn_test", "risk_pop": "risk_nn_pop"}


def measured_outputs(res, name):
    """``(limit (T,), networks (W, S, T) or None)`` of the output called ``name`` (``f[q]`` or a risk)."""
    a = res.arrays
    if name.startswith("f["):
        q = int(name[2:-1])
        nets = a["f_nn"][..., q] if "f_nn" in a else None
        return a["f_mf"][:, q], nets
    return a[_LIMIT[name]], (a[_NETS[name]] if _NETS[name] in a else None)


def _chosen(outputs, k=3):
    fs = [o for o in outputs if o.startswith("f[")][:2]
    rs = [o for o in outputs if o.startswith("risk")][:1]
    return (fs + rs)[:k]


def _panels(res, names):
    """What both prediction figures start from: the arrays, output names, the chosen outputs, the
    widths, one panel per output, the recording times with a prediction, the colour cycle."""
    plt = style()
    a = res.arrays
    outs = list(res.summary["fluct_outputs"])
    names = names or _chosen(outs)
    widths = [int(n) for n in a.get("widths", [])]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    colors = _colors(plt, len(widths))  # the project's width colours (viridis), as on every other figure
    return a, outs, names, widths, fig, axes, a["t"], a["fluct_predicted"].astype(bool), colors


def plot_bands(res, names=None):
    a, outs, names, widths, fig, axes, t, ok, colors = _panels(res, names)
    for ax, name in zip(axes[0], names):
        o = outs.index(name)
        lim, nets = measured_outputs(res, name)
        ax.plot(t, lim, color="k", lw=1.5, label="limit")
        for wi, N in enumerate(widths):
            c = colors[wi % len(colors)]
            sd = np.sqrt(np.maximum(a["fluct_nvar_nn"][wi][:, o], 0) / N)
            ax.fill_between(t[ok], (lim - 2 * sd)[ok], (lim + 2 * sd)[ok], color=c, alpha=0.25,
                            label=f"N={N}: predicted")
            if nets is not None and nets.shape[1] >= 2:
                m, s = np.nanmean(nets[wi], axis=0), np.nanstd(nets[wi], axis=0, ddof=1)
                ax.plot(a.get("t_nn", t), m - 2 * s, color=c, ls=":", lw=1)
                ax.plot(a.get("t_nn", t), m + 2 * s, color=c, ls=":", lw=1, label=f"N={N}: measured")
        ax.set_xlabel("t")
        ax.set_title(name)
    legend_note(axes[0][0], "band: limit ± 2σ/√N (σ² predicted); dotted: seed mean ± 2 sd")
    fig.tight_layout()
    figure_legend(fig, axes[0][0], ncol=3)  # below the panels, off the data
    return fig


def plot_prediction_collapse(res, names=None):
    a, outs, names, widths, fig, axes, t, ok, colors = _panels(res, names)
    for ax, name in zip(axes[0], names):
        o = outs.index(name)
        _, nets = measured_outputs(res, name)
        for wi, N in enumerate(widths):
            c = colors[wi % len(colors)]
            pred, se = a["fluct_nvar_nn"][wi][:, o], a["fluct_nvar_se"][:, o]
            ax.plot(t[ok], pred[ok], color=c, lw=1.5, label=f"predicted, N={N}")
            lo, hi = se_band(pred, se, log=True)
            ax.fill_between(t[ok], lo[ok], hi[ok], color=c, alpha=0.2, lw=0)
            if nets is not None and nets.shape[1] >= 4:
                from ..analysis.fluctuations import variance_stderr

                x = nets[wi]
                nvar = N * np.nanvar(x, axis=0, ddof=1)
                ax.errorbar(a.get("t_nn", t), nvar, yerr=se_errorbars(nvar, N * variance_stderr(x, method="analytic"),
                                                                      log=True),
                            fmt="o", ms=3, color=c, label=f"measured, N={N}")
        ax.plot(t[ok], a["fluct_naive"][ok, o], "k--", lw=1, label="naive (own transported term)")
        if "fluct_nvar_replicas" in a:
            ax.plot(t, a["fluct_nvar_replicas"][:, o], color="0.5", lw=1, ls="-.", label="forward replicas")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("N Var")
        ax.set_title(name)
    legend_note(axes[0][0], "band: " + caption("se", True)[len("band: "):] + ", reference sample")
    legend_note(axes[0][0], caption("bars", True), color="k")
    fig.tight_layout()
    figure_legend(fig, axes[0][0], ncol=3)  # below the panels, off the data
    return fig


def write_prediction_figures(res, outdir, fmt="png"):
    """Write ``fluct_bands`` and ``fluct_collapse`` when ``res`` holds a prediction; returns the paths."""
    if "fluct_nvar" not in res.arrays:
        return []
    plt = style()
    files = []
    for name, fn in (("fluct_bands", plot_bands), ("fluct_collapse", plot_prediction_collapse)):
        fig = fn(res)
        f = os.path.join(outdir, f"{name}.{fmt}")
        save(fig, f)  # the one save path: banner, readable log ticks
        plt.close(fig)
        files.append(f)
    return files
