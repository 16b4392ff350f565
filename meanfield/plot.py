"""``meanfield plot``: the dispatcher above the figure modules.

A scan directory goes to :mod:`meanfield.scan.plot`; a run directory to the figures of its family:
deep runs to :mod:`meanfield.deep.plot`, particle-model runs to :mod:`meanfield.twolayer.plot`
(risk curves, particle snapshots) and :mod:`meanfield.figures` (convergence and fluctuation
figures). Every figure module draws in the one style of :mod:`meanfield.viz.style`.
"""
from __future__ import annotations

import os

from .twolayer.plot import plot_particles, plot_risk  # noqa: F401  (re-exported)
from .viz import save as save_figure
from .viz import style  # noqa: F401  (re-exported)

__all__ = ["plot_risk", "plot_particles", "plot_dir", "style", "add_cli_options", "cli_options"]

def add_cli_options(parser):
    """Options of ``meanfield plot`` used for scan directories."""
    parser.add_argument("--x", help="scan plot: parameter on the x axis (e.g. width)")
    parser.add_argument("--y", help="scan plot: metric on the y axis (e.g. risk_gap)")
    parser.add_argument("--hue", help="scan plot: parameter giving one line each (the file name then ends in "
                        "_by_<hue>)")
    parser.add_argument("--logx", action="store_true", help="scan plot: logarithmic x axis")
    parser.add_argument("--logy", action="store_true", help="scan plot: logarithmic y axis")
    parser.add_argument("--fit", action="store_true", help="scan plot: fit and show power-law slopes")


def cli_options(args):
    return {k: getattr(args, k, None) for k in ("x", "y", "hue", "logx", "logy", "fit")}


def plot_dir(path, fmt="png", **scan_opts):
    """Write the figures of a run directory (or delegate to the scan plots); returns the paths."""
    if os.path.isfile(os.path.join(path, "index.sqlite")):
        from .scan.plot import plot_scan_dir

        return plot_scan_dir(path, fmt=fmt, **scan_opts)
    from .core.result import load

    res = load(path)
    if res.summary.get("kind") == "deep":
        from .deep.plot import plot_deep_dir

        files = plot_deep_dir(path, res, fmt=fmt)
        # a deep run at L = 1 with [fluctuations] predict = true records the two-layer names: same figures
        from .twolayer.fluct_plot import write_prediction_figures

        return files + write_prediction_figures(res, path, fmt)
    plt = style()
    files = []
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    plot_risk(res, ax)
    f = os.path.join(path, f"risk.{fmt}")
    save_figure(fig, f)
    plt.close(fig)
    files.append(f)
    if "snap_t" in res.arrays and res.arrays["snap_t"].size:
        fig = plot_particles(res)
        f = os.path.join(path, f"particles.{fmt}")
        save_figure(fig, f)
        plt.close(fig)
        files.append(f)
    # convergence and fluctuation figures, drawn when the result has what they need
    from .figures import write_figures

    files += write_figures(res, path, fmt)
    # predicted fluctuations ([fluctuations] predict = true): bands over the seed spread, N Var collapse
    from .twolayer.fluct_plot import write_prediction_figures

    files += write_prediction_figures(res, path, fmt)
    return files
