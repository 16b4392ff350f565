r"""Error bands that mean one thing on every figure, and stay correct on logarithmic axes.

The choice, made once for the whole project:

* **Spread over seeds** (independent networks): the line is the seed mean (the number the tables
  report) and the band spans the **16th to 84th percentiles** of the seeds (the ±1σ quantiles of a
  Gaussian; linear interpolation between order statistics). A quantile band lies inside the range
  of the data, so it is positive whenever the data are, is the same band on linear and log axes, and
  does not assume symmetric spread (risks across seeds are skewed). The band it replaces, mean ± one
  standard deviation clipped at 1e-300, spanned 1e-314 … 1e14 on log axes when the spread exceeded
  the mean, flattening the data into a line.
* **An estimate with a standard error** (N·Var, a Monte Carlo error, a fitted exponent): on a
  linear axis :math:`y \pm k\,\mathrm{se}`; on a log axis :math:`y \times\!/\!\div \exp(k\,\mathrm{se}/y)`,
  i.e. :math:`\log y \pm k\,\mathrm{se}/y`, the delta-method standard error of :math:`\log y`
  (equal to :math:`y \pm k\,\mathrm{se}` to first order when se ≪ y, and positive always).

Every figure states which band it draws through :func:`caption` in its legend (:func:`legend_note`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["QUANTILES", "seed_band", "se_band", "se_errorbars", "caption", "legend_note", "legend",
           "figure_legend"]

#: the percentiles of the seed band (±1σ of a Gaussian)
QUANTILES = (15.865525393145708, 84.13447460685429)


def seed_band(samples, axis=0):
    """``(mean, lo, hi)`` over ``axis`` of ``samples``: the seed mean and its 16–84 % quantile band
    (NaNs ignored)."""
    a = np.asarray(samples, dtype=float)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a diverged width)
            m = np.nanmean(a, axis=axis)
            lo, hi = np.nanpercentile(a, QUANTILES, axis=axis)
    return m, lo, hi


def se_band(y, se, log=False, k=1.0):
    """``(lo, hi)`` of an estimate ``y`` with standard error ``se``: ``y ± k se`` on linear axes,
    ``y ×/÷ exp(k se / y)`` on log axes (NaN where y ≤ 0 there)."""
    y, se = np.asarray(y, dtype=float), np.asarray(se, dtype=float)
    if not log:
        return y - k * se, y + k * se
    with np.errstate(all="ignore"):
        f = np.exp(k * se / np.where(y > 0, y, np.nan))
        return y / f, y * f


def se_errorbars(y, se, log=False, k=1.0):
    """The ``yerr`` argument of ``errorbar`` for :func:`se_band` (a (2, n) array of lower, upper lengths)."""
    lo, hi = se_band(y, se, log, k)
    y = np.asarray(y, dtype=float)
    return np.stack([y - lo, hi - y])


_CAPTIONS = {
    "seeds": "band: 16–84 % of seeds",
    "se": "band: ±1 s.e.",
    "se_log": "band: ×/÷ exp(s.e./value) (±1 s.e. of log)",
    "mc2": "grey: ±2 MC s.e.",
    "mc2_log": "grey: ×/÷ exp(2 MC s.e./value)",
    "bars": "bars: ±1 s.e.",
    "bars_log": "bars: ×/÷ exp(s.e./value) (±1 s.e. of log)",
}


def caption(kind: str, log: bool = False) -> str:
    """The legend text of a band: ``kind`` in ``seeds``, ``se``, ``mc2``, ``bars``."""
    if kind == "seeds":
        return _CAPTIONS["seeds"]
    return _CAPTIONS[f"{kind}_log" if log else kind]


def legend_note(ax, text, color="0.55"):
    """Remember ``text`` as an entry of ``ax``'s legend (drawn by :func:`legend`): a shaded patch for a
    band, a vertical bar for error bars (``text`` starting with 'bars:'), so the key looks like what it
    explains."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    if text.startswith("bars:"):
        handle = Line2D([], [], color=color, marker="|", markersize=10, markeredgewidth=1.5, ls="none",
                        label=text)
    else:
        handle = Patch(facecolor=color, alpha=0.3, edgecolor="none", label=text)
    notes = getattr(ax, "_meanfield_notes", [])
    if text not in [n.get_label() for n in notes]:
        notes.append(handle)
    ax._meanfield_notes = notes
    return handle


def legend(ax, notes_only=False, **kw):
    """``ax.legend`` with the notes of :func:`legend_note` appended (``notes_only``: just the notes,
    for the panels beside the one that names the lines)."""
    handles, labels = ([], []) if notes_only else ax.get_legend_handles_labels()
    notes = getattr(ax, "_meanfield_notes", [])
    return ax.legend(handles + notes, labels + [n.get_label() for n in notes], **kw)


def figure_legend(fig, ax, ncol=4, **kw):
    """The legend of :func:`legend` for ``ax``'s lines and notes, drawn once below all of ``fig``'s panels
    (``ncol`` columns) instead of over the data of one of them; the tight bounding box of the save path
    keeps it in the image."""
    handles, labels = ax.get_legend_handles_labels()
    notes = getattr(ax, "_meanfield_notes", [])
    kw.setdefault("fontsize", 8)
    return fig.legend(handles + notes, labels + [n.get_label() for n in notes], loc="upper center",
                      bbox_to_anchor=(0.5, 0.0), ncol=ncol, **kw)
