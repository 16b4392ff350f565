"""Scan figures: a metric against a parameter, seed means with error bars, optional power-law fits.

``meanfield plot DIR --x width --y risk_gap --hue task.d --logx --logy --fit`` draws, for each
value of ``hue``, the mean of ``y`` over the seeds at each ``x`` with its standard error
(std / sqrt(n_seeds); on a log y axis drawn ×/÷ exp(se/mean), :mod:`meanfield.viz.bands`), and
with ``--fit`` a least-squares line in log-log coordinates whose slope ± standard error goes to
the legend (ordinary least squares on the seed means, standard
error from the residual scatter with K - 2 degrees of freedom). Parameters that vary but are
neither ``x`` nor ``hue`` get one panel per combination, in increasing order of their values; the
points of several hue lines are moved sideways by a few percent so their bars stay readable. The
fits are also written next to the figure as JSON.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .. import store as _files
from .collect import collect

__all__ = ["plot_scan", "plot_scan_dir", "fit_power_law", "aggregate"]


def fit_power_law(x, y, yerr=None):
    """Least-squares fit of log y = c + s log x; returns ``(slope, slope_se, intercept)``.

    Uses :func:`meanfield.analysis.fluctuations.fit_power_law` (or ``analysis.fitting``) when
    available, with the standard errors scaled by the residual scatter; otherwise the same
    unweighted fit computed here (slope standard error from the residual variance, K - 2 dof).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    w = None
    if yerr is not None:
        yerr = np.asarray(yerr, float)
        ok &= np.isfinite(yerr) & (yerr > 0)
    x, y = x[ok], y[ok]
    if yerr is not None:
        w = yerr[ok]
    if x.size < 3 or np.ptp(np.log(x)) == 0:
        raise ValueError(f"need at least 3 distinct positive points to fit a slope, got {x.size}")
    impl = None
    for mod in ("meanfield.analysis.fluctuations", "meanfield.analysis.fitting"):
        try:
            impl = getattr(__import__(mod, fromlist=["fit_power_law"]), "fit_power_law")
            break
        except (ImportError, AttributeError):
            continue
    if impl is not None:
        f = impl(x, y, yerr=w, absolute_sigma=False) if w is not None else impl(x, y)
        return float(f.slope), float(f.slope_se), float(f.intercept)
    u, v = np.log(x), np.log(y)
    A = np.stack([u, np.ones_like(u)], 1)
    coef, res, *_ = np.linalg.lstsq(A, v, rcond=None)
    r = v - A @ coef
    s2 = float(r @ r) / (u.size - 2)
    se = math.sqrt(s2 / float(((u - u.mean()) ** 2).sum()))
    return float(coef[0]), se, float(coef[1])


def _key(v):
    return json.dumps(v.item() if hasattr(v, "item") else v, sort_keys=True)


def _order(keys):
    """Sort key of a tuple of :func:`_key` strings by value: numbers numerically (5 before 10), before
    anything else, which sorts by its text."""
    out = []
    for k in keys:
        v = json.loads(k)
        num = isinstance(v, (int, float)) and not isinstance(v, bool)
        out.append((0, float(v), "") if num else (1, 0.0, k))
    return out


def aggregate(table, x, y, by=()):
    """Mean, standard error and count of ``y`` over the rows sharing (``by`` values, ``x``).

    Returns a dict ``by-values tuple -> (xs, mean, sem, n)`` with xs sorted.
    """
    for c in (x, y, *by):
        if c not in table:
            raise ValueError(f"no column {c!r} in the scan table; columns: {', '.join(table)}")
    groups = {}
    n = len(table[x])
    for i in range(n):
        k = tuple(_key(table[b][i]) for b in by)
        groups.setdefault(k, {}).setdefault(table[x][i].item(), []).append(float(table[y][i]))
    out = {}
    for k, byx in groups.items():
        xs = sorted(byx, key=lambda v: (isinstance(v, str), v))
        mean, sem, cnt = [], [], []
        for xv in xs:
            vals = np.array(byx[xv], float)
            vals = vals[np.isfinite(vals)]
            mean.append(vals.mean() if vals.size else math.nan)
            sem.append(vals.std(ddof=1) / math.sqrt(vals.size) if vals.size > 1 else math.nan)
            cnt.append(vals.size)
        out[k] = (np.array(xs), np.array(mean), np.array(sem), np.array(cnt))
    return out


def _dodge(xs, i, n, log):
    """x positions of line ``i`` of ``n`` sharing one x grid, moved sideways by up to ±3 % of a log
    step (a factor exp(±0.03·k)) or of the x range, so that their error bars do not hide each other;
    the fits use the true x."""
    xs = np.asarray(xs, dtype=float)
    if n < 2 or xs.size == 0:
        return xs
    k = i - (n - 1) / 2
    if log:
        return xs * np.exp(0.03 * k)
    return xs + 0.01 * k * (np.ptp(xs) or 1.0)


def plot_scan(col, x="width", y="risk_gap", hue=None, logx=False, logy=False, fit=False, fig=None):
    """Draw ``y`` against ``x`` from a :class:`~meanfield.scan.collect.Collected`.

    Returns ``(fig, fits)`` with ``fits`` a list of dicts (panel, hue, slope, slope_se, intercept).
    """
    from ..viz import pm, style
    from ..viz.bands import caption, legend, legend_note, se_errorbars

    plt = style()
    t = col.table
    if not len(col):
        raise ValueError("the scan has no finished runs to plot yet")
    # an axis over train.widths is the width column itself: no panel per value of it
    skip = (x, hue) + (("train.widths",) if "width" in (x, hue) else ())
    varying = [p for p in col.param_names if p not in skip and len(set(map(_key, t[p]))) > 1]
    panel_keys = sorted({tuple(_key(t[p][i]) for p in varying) for i in range(len(col))}, key=_order)
    if len(panel_keys) > 12:
        raise ValueError(f"{len(panel_keys)} panels (parameters {', '.join(varying)} vary): choose --hue among them")
    n = len(panel_keys)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = fig or plt.figure(figsize=(5.0 * cols, 3.8 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    by = tuple(varying) + ((hue,) if hue else ())
    agg = aggregate(t, x, y, by)
    cmap = plt.get_cmap("viridis")
    fits = []
    for pi, pk in enumerate(panel_keys):
        ax = axes[pi]
        lines = sorted((k for k in agg if k[: len(varying)] == pk), key=_order)
        for li, k in enumerate(lines):
            xs, m, se, cnt = agg[k]
            color = cmap(0.9 * li / max(1, len(lines) - 1))
            label = f"{hue} = {json.loads(k[-1])}" if hue else (y if not fit else "seed mean")
            se0 = np.where(np.isfinite(se), se, 0.0)
            ax.errorbar(_dodge(xs, li, len(lines), bool(logx)), m, yerr=se_errorbars(m, se0, log=bool(logy)),
                        fmt="o", color=color, ms=4, capsize=3, lw=1.2)
            if fit:
                try:
                    # unweighted: with a handful of seeds the standard errors are themselves too noisy
                    # (~1/sqrt(2(n-1)) relative) to serve as weights; one lucky small error bar would
                    # otherwise pin the line
                    s, s_se, c = fit_power_law(xs, m)
                    xx = np.geomspace(np.min(xs), np.max(xs), 50)
                    ax.plot(xx, np.exp(c) * xx ** s, color=color, lw=1.2, ls="--")
                    label += f": slope {pm(s, s_se)}"
                    fits.append({"panel": dict(zip(varying, map(json.loads, pk))),
                                 "hue": json.loads(k[-1]) if hue else None, "slope": s, "slope_se": s_se,
                                 "intercept": c, "x": xs.tolist(), "y_mean": m.tolist(), "y_sem": se.tolist(),
                                 "n_seeds": cnt.tolist()})
                except (ValueError, TypeError) as e:
                    label += f" (no fit: {e})"
            ax.plot([], [], "o", color=color, label=label)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel(y + " (seed mean)")
        legend_note(ax, caption("bars", bool(logy)))
        if varying:
            ax.set_title(", ".join(f"{p} = {json.loads(v)}" for p, v in zip(varying, pk)), fontsize=9)
        legend(ax, fontsize=8)
    for ax in axes[n:]:
        ax.set_visible(False)
    cf = np.asarray(t.get("coupling_factor", []), dtype=float)
    if np.any(cf < 1):  # coupled networks: every seed variance (and gap spread) shrunk by 1 - N/M
        fig.text(0.01, 0.005, "coupled to the limit's particles: seed variances are smaller by (1 - N/M) = "
                 + ", ".join(f"{v:.3g}" for v in sorted(set(cf[cf < 1].tolist()))), fontsize=7, va="bottom")
        for f in fits:
            f["coupling_factor"] = sorted(set(cf[cf < 1].tolist()))
    return fig, fits


def plot_scan_dir(path, fmt="png", x=None, y=None, hue=None, logx=False, logy=False, fit=False, out=None):
    """Write ``DIR/scan_<y>_vs_<x>[_by_<hue>].<fmt>`` (and ``.fits.json`` with ``fit``); returns the paths."""
    from ..viz import save as save_figure
    from ..viz import style

    x, y = x or "width", y or "risk_gap"
    col = collect(path, trajectories=False)
    plt = style()
    fig, fits = plot_scan(col, x=x, y=y, hue=hue, logx=bool(logx), logy=bool(logy), fit=bool(fit))
    # named by everything that shapes the figure: two plots with different --hue never overwrite each other
    stem = out or os.path.join(path, (f"scan_{y}_vs_{x}" + (f"_by_{hue}" if hue else "")).replace("/", "_"))
    files = [f"{stem}.{fmt}"]
    save_figure(fig, files[0])
    plt.close(fig)
    if fit:
        files.append(f"{stem}.fits.json")
        _files.save_json(files[1], {"x": x, "y": y, "hue": hue, "fits": fits})
    return files
