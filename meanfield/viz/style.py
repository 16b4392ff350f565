"""The one plot style of the project: every figure module draws through :func:`style`.

matplotlib is imported lazily with the Agg backend when there is no display, so plotting works on
headless machines and importing a figure module costs nothing until it draws.
"""
from __future__ import annotations

import os

__all__ = ["STYLE", "style", "colors", "save", "set_banner", "banner", "readable_log_ticks", "pm"]

_BANNER = {"text": None}

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
    "lines.linewidth": 1.6,
}


def style():
    """Import pyplot (Agg without a display) with the project's style applied; returns pyplot."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def colors(plt, n):
    """``n`` colours of the project's sequential map (viridis, the top 10 % left out for contrast)."""
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(1, n - 1) * 0.9) for i in range(n)]


def set_banner(text):
    """Stamp ``text`` (None: nothing) across the top of every figure saved by :func:`save` from now on
    in this process: the experiments' quick mode marks its figures as smoke tests this way."""
    _BANNER["text"] = text or None


def banner():
    """The active banner text (None when there is none)."""
    return _BANNER["text"]


def readable_log_ticks(ax):
    """Plain, uncrowded labels on the log axes of ``ax``: an axis spanning under two decades gets
    major ticks at 1, 2 and 5 × 10^k (every k × 10^j under one decade) labelled as plain numbers
    ('0.2', '3') and no minor labels
    (matplotlib otherwise labels every minor tick there, and the labels overlap)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, get_lim in ((ax.xaxis, ax.get_xlim), (ax.yaxis, ax.get_ylim)):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(get_lim())
        if not (lo > 0 and math.isfinite(hi)) or math.log10(hi / lo) >= 2:
            continue
        if isinstance(axis.get_major_formatter(), FuncFormatter):
            continue  # already set (e.g. explicit tick labels)
        subs = (1.0, 2.0, 5.0) if math.log10(hi / lo) >= 1 else tuple(float(k) for k in range(1, 10))
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def save(fig, path, **kw):
    """Save ``fig`` to ``path``: the one place figures are written (readable log ticks on every axis;
    the banner, if any, on top)."""
    for ax in fig.get_axes():
        readable_log_ticks(ax)
    if _BANNER["text"]:
        fig.text(0.5, 1.0, _BANNER["text"], ha="center", va="bottom", fontsize=9, fontweight="bold",
                 color="#b2182b", transform=fig.transFigure)
    fig.savefig(path, **kw)
    return path


def pm(x, se, digits=3):
    """``x ± se`` as every figure legend and every experiment table writes it (``digits`` significant
    digits for the value, two for the error), so a slope in a figure reads as in the table beside it."""
    return f"{x:.{digits}g} ± {se:.2g}"
