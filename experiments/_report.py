"""Shared helpers of the experiment scripts: markdown tables, figure saving, number formatting, and the
quick-mode banner (``--quick`` outputs say on every results.md and figure that they are smoke tests)."""
import os

#: stamped on figures and results.md of --quick runs
QUICK_BANNER = "QUICK MODE: a smoke test at reduced size, not a result"
QUICK_NOTE = ("> **Quick mode — a smoke test.** Reduced sizes (fewer widths, seeds and samples, shorter times) "
              "check that the pipeline runs and that the claims hold in sign and rough size; the numbers below "
              "are not measurements. Run without `--quick` for the results quoted in the README.")
_state = {"quick": False}


def begin(quick):
    """Call first in every experiment's main: in quick mode, results.md and every figure get the banner."""
    from meanfield.viz import set_banner

    _state["quick"] = bool(quick)
    set_banner(QUICK_BANNER if quick else None)


def pm(x, se, digits=3):
    """``x ± se`` with ``digits`` significant digits: :func:`meanfield.viz.pm`, the format of the
    figures' legends, so a table and the figure beside it read the same."""
    from meanfield.viz import pm as _pm

    return _pm(x, se, digits)


def table(header, rows):
    """A markdown table from a header list and rows of already formatted cells."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_results(out, title, sections):
    """Write ``out/results.md``: a title and ``(heading, text)`` sections; returns the path."""
    os.makedirs(out, exist_ok=True)
    text = [f"# {title}" + (" (quick mode: smoke test)" if _state["quick"] else ""), ""]
    if _state["quick"]:
        text += [QUICK_NOTE, ""]
    for head, body in sections:
        text += [f"## {head}", "", body, ""]
    path = os.path.join(out, "results.md")
    with open(path, "w") as fh:
        fh.write("\n".join(text))
    return path


def save(fig, out, name, fmt="png"):
    """Save ``fig`` as ``out/name.fmt``, close it, return the path."""
    from meanfield.viz import save as save_figure
    from meanfield.viz import style

    path = os.path.join(out, f"{name}.{fmt}")
    save_figure(fig, path)
    style().close(fig)
    return path
