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


#: tick multipliers within a decade, densest first, and the smallest gap between neighbours (log10)
_SUBS = (((1, 2, 3, 4, 5, 6, 7, 8, 9), 0.046), ((1, 2, 3, 5, 7), 0.146), ((1, 2, 5), 0.301), ((1,), 1.0))
#: the least distance between neighbouring tick labels, in inches (x labels are wide, y labels low)
_MIN_GAP_IN = {"x": 0.42, "y": 0.22}


def readable_log_ticks(ax):
    """Plain, uncrowded labels on the base-10 log axes of ``ax`` that span under two decades: major
    ticks at the densest of 1–9, {1, 2, 3, 5, 7}, {1, 2, 5}, {1} × 10^k whose closest neighbours are
    still ``_MIN_GAP_IN`` apart on the drawn axis (and at least two ticks in view), labelled as plain
    numbers ('0.2', '3'), no minor labels. (matplotlib otherwise labels every minor tick there and the
    labels overlap; '60 70 80 90 100' on a 4-inch axis did.) Axes over two decades keep 10^k labels;
    a log axis of another base (2^k) keeps its own ticks."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

    fig = ax.get_figure()
    pos = ax.get_position()
    w_in, h_in = fig.get_size_inches()
    for name, axis, get_lim, length in (("x", ax.xaxis, ax.get_xlim, pos.width * w_in),
                                        ("y", ax.yaxis, ax.get_ylim, pos.height * h_in)):
        if axis.get_scale() != "log":
            continue
        loc = axis.get_major_locator()
        if isinstance(loc, LogLocator) and float(getattr(loc, "_base", 10.0)) != 10.0:
            continue  # e.g. set_xscale("log", base=2): powers of two are the chosen ticks
        lo, hi = sorted(get_lim())
        if not (lo > 0 and math.isfinite(hi)) or math.log10(hi / lo) >= 2:
            continue
        if isinstance(axis.get_major_formatter(), FuncFormatter):
            continue  # already set (e.g. explicit tick labels)
        span = math.log10(hi / lo)
        per_decade = length / span  # inches per decade on the drawn axis

        def n_in_view(cand):
            ks = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            return sum(lo * (1 - 1e-9) <= m * 10.0 ** k <= hi * (1 + 1e-9) for k in ks for m in cand)

        readable = [c for c, gap in _SUBS if n_in_view(c) >= 2 and gap * per_decade >= _MIN_GAP_IN[name]]
        enough = [c for c, _ in _SUBS if n_in_view(c) >= 2]
        if n_in_view(_SUBS[0][0]) < 3:
            # a narrow range (0.085 ... 0.17 showed only '0.09' and '0.1'): round linear steps, which
            # are as readable on a log axis that spans less than a factor of ~3, thinned until apart
            ticks = _linear_ticks(lo, hi, length, _MIN_GAP_IN[name])
            if len(ticks) >= 2:
                axis.set_major_locator(FixedLocator(ticks))
                axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
                axis.set_minor_formatter(NullFormatter())
                axis.set_minor_locator(NullLocator())
                continue
        # the densest set that reads; else the sparsest that still shows two ticks
        subs = readable[0] if readable else (enough[-1] if enough else _SUBS[0][0])
        axis.set_major_locator(LogLocator(base=10, subs=tuple(float(m) for m in subs)))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _linear_ticks(lo, hi, length_in, min_gap_in):
    """Round, evenly spaced values in [lo, hi] (steps 1, 2, 2.5, 5 × 10^k) whose closest pair is at least
    ``min_gap_in`` inches apart on a log axis of ``length_in`` inches spanning lo ... hi."""
    import math

    from matplotlib.ticker import MaxNLocator

    per_log = length_in / math.log10(hi / lo)
    for nbins in (8, 6, 5, 4, 3, 2):
        vals = [v for v in MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
                if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9) and v > 0]
        # the tightest pair on a log axis is the top one
        if len(vals) >= 2 and math.log10(vals[-1] / vals[-2]) * per_log >= min_gap_in:
            return vals
    return []


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
    """``x ± se`` as every figure legend and every experiment table writes it, so a slope in a figure
    reads as in the table beside it: the error with two significant digits and the value rounded to
    the same decimal place (-0.450 ± 0.016, -0.405 ± 0.070, 12 ± 45), never a value quoted less
    precisely than its error. Without a positive finite error, or when that would take more than six
    decimals, ``digits`` significant digits for the value (enough to show the error's digits)."""
    import math

    x, se = float(x), float(se)
    if not (math.isfinite(x) and math.isfinite(se) and se > 0):
        return f"{x:.{digits}g} ± {se:.2g}"
    e = math.floor(math.log10(se))
    if float(f"{se:.1e}") >= 10.0 ** (e + 1):  # 0.0996 rounds to 0.10: one digit fewer
        e += 1
    dec = 1 - e
    if dec > 6:
        sig = max(digits, min(15, (math.floor(math.log10(abs(x))) if x else e) - e + 2))
        return f"{x:.{sig}g} ± {se:.2g}"
    if dec > 0:
        return f"{x:.{dec}f} ± {se:.{dec}f}"
    q = 10.0 ** (-dec)
    return f"{round(x / q) * q:.0f} ± {round(se / q) * q:.0f}"
