"""The one plot style of the project: every figure module draws through :func:`style`.

matplotlib is imported lazily with the Agg backend when there is no display, so plotting works on
headless machines and importing a figure module costs nothing until it draws.
"""
from __future__ import annotations

import os

__all__ = ["STYLE", "style", "colors", "save", "set_banner", "banner"]

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


def save(fig, path, **kw):
    """Save ``fig`` to ``path`` (the one place figures are written: the banner, if any, goes on top)."""
    if _BANNER["text"]:
        fig.text(0.5, 1.0, _BANNER["text"], ha="center", va="bottom", fontsize=9, fontweight="bold",
                 color="#b2182b", transform=fig.transFigure)
    fig.savefig(path, **kw)
    return path
