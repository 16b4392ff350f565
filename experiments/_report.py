"""Shared helpers of the experiment scripts: markdown tables, figure saving, number formatting, and the
quick-mode banner (``--quick`` outputs say on every results.md and figure that they are smoke tests)."""
import argparse
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


def study_args(doc, name, argv=None, extra=None):
    """The command line every scan study shares (``--quick``, ``--out``, ``--workers``, ``--format``):
    parsed, the output folder made (default ``runs/<name>[_quick]``), the quick banner set. ``extra``, if
    given, is called with the parser to add a study's own options."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--format", default="png", choices=("png", "pdf"))
    if extra is not None:
        extra(ap)
    args = ap.parse_args(argv)
    args.out = args.out or os.path.join("runs", name + ("_quick" if args.quick else ""))
    os.makedirs(args.out, exist_ok=True)
    begin(args.quick)
    return args


def run_study_scan(spec_dict, folder, workers):
    """Run a study's scan quietly; a run that neither completed nor diverged stops the study."""
    from meanfield import scan

    rep = scan.run_scan(scan.spec_from_dict(spec_dict), folder, workers=workers, progress=False, log=lambda s: None)
    bad = {k: v for k, v in rep.counts.items() if k not in ("completed", "diverged") and v}
    if bad:
        raise RuntimeError(f"scan {folder}: runs neither completed nor diverged: {bad}; {rep.problems[:3]}")
    return rep
