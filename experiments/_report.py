"""Shared helpers of the experiment scripts: markdown tables, figure saving, number formatting."""
import os


def pm(x, se, digits=3):
    """``x ± se`` with ``digits`` significant digits."""
    return f"{x:.{digits}g} ± {se:.2g}"


def table(header, rows):
    """A markdown table from a header list and rows of already formatted cells."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_results(out, title, sections):
    """Write ``out/results.md``: a title and ``(heading, text)`` sections; returns the path."""
    os.makedirs(out, exist_ok=True)
    text = [f"# {title}", ""]
    for head, body in sections:
        text += [f"## {head}", "", body, ""]
    path = os.path.join(out, "results.md")
    with open(path, "w") as fh:
        fh.write("\n".join(text))
    return path


def save(fig, out, name, fmt="png"):
    """Save ``fig`` as ``out/name.fmt``, close it, return the path."""
    from meanfield.plot import style

    path = os.path.join(out, f"{name}.{fmt}")
    fig.savefig(path)
    style().close(fig)
    return path
