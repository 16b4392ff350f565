"""The ``meanfield`` command line: init, run, show, plot, export, bench, and scans (scan, status, collect).

Exit codes: 0 success; 2 invalid input (nothing written); 3 the run diverged (results up to the
last finite state are written); 1 any other failure.
"""
from __future__ import annotations

import argparse
import os
import sys

from meanfield_solvers.heap import retain_freed_memory

__all__ = ["main"]


def _err(msg):
    print(f"meanfield: {msg}", file=sys.stderr)


def verbosity(args) -> int:
    """-1 quiet, 0 normal, >= 1 verbose (``-q``/``-v`` before or after the subcommand)."""
    return -1 if getattr(args, "quiet", False) else int(getattr(args, "verbose", 0) or 0)


def progress_mode(args) -> str:
    """``--progress`` (default auto); ``-q`` silences it."""
    return "none" if verbosity(args) < 0 else (getattr(args, "progress", None) or "auto")


def _notice(args):
    """Where one-line notices go: stderr, nowhere under ``-q``."""
    return (lambda s: None) if verbosity(args) < 0 else (lambda s: print(s, file=sys.stderr))


def _cmd_run(args):
    from . import config as C
    from .run import RunDirError, run_to_dir

    try:
        cfg = C.load(args.config, args.set or ())
    except C.ConfigError as e:
        _err(str(e))
        return 2
    out = args.out or os.path.join("runs", cfg.run.name)
    try:
        res = run_to_dir(cfg, out, overwrite=args.overwrite, progress=progress_mode(args), log=_notice(args))
    except RunDirError as e:
        _err(str(e))
        return 2
    s = res.summary
    if verbosity(args) >= 0:
        msg = f"{s['status']}: wrote {out}/result.npz, summary.json, config.toml in {s['seconds_total']:.1f} s"
        if "risk_mf_final" in s:
            msg += f"; final limit risk {s['risk_mf_final']:.4g}"
        print(msg)
        if verbosity(args) >= 1:
            from .show import summary_text

            print(summary_text(out))
        print(f"next: meanfield plot {out}   (figures)   meanfield show {out}   (summary)")
    if s["status"] == "diverged":
        for dv in s["diverged"]:
            _err(f"diverged: {dv['message']}")
        return 3
    return 0


def _cmd_plot(args):
    from . import plot

    try:
        files = plot.plot_dir(args.dir, fmt=args.format, **plot.cli_options(args))
    except (FileNotFoundError, ValueError) as e:
        _err(str(e))
        return 2
    for f in files:
        print(f)
    return 0


def _cmd_bench(args):
    """Run the benchmark suite of the source checkout (``benchmarks/``, beside the package).

    The benchmarks sit above the product and are not installed with it, so ``meanfield`` never
    imports them: the suite runs as ``python -m benchmarks.suite`` in the checkout's root.
    """
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "benchmarks", "suite.py")):
        _err("meanfield bench runs the benchmarks of a source checkout (benchmarks/ beside the meanfield "
             f"package); {root} has none: clone the repository and install it with pip install -e .")
        return 1
    return subprocess.call([sys.executable, "-m", "benchmarks.suite", *args.rest], cwd=root)


def common_options(verbose_opts=True, progress=False):
    """A parent parser with the options every long-running subcommand shares."""
    from .core.progress import MODES

    c = argparse.ArgumentParser(add_help=False)
    if verbose_opts:
        # SUPPRESS: given after the subcommand they override the same options given before it
        c.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                       help="say more (repeatable): notices, timings, the run's summary at the end")
        c.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="only errors: no progress, notices or summary line")
    if progress:
        c.add_argument("--progress", choices=MODES, default="auto",
                       help="feedback while it runs: auto (a bar on a terminal or in a notebook, a plain "
                            "line every 10 s in logs and pipes), bar, text or none (default: auto)")
    return c


def build_parser():
    from . import __version__

    p = argparse.ArgumentParser(
        prog="meanfield", description="meanfield: mean-field (infinite-width) learning dynamics simulated beside "
                                      "finite-width networks trained on the same task.",
        epilog="Start with: meanfield init two-layer my.toml && meanfield run my.toml && meanfield plot runs/my "
               "(see README.md). `meanfield COMMAND -h` describes a command.")
    p.add_argument("--version", action="version", version=f"meanfield {__version__}",
                   help="print the package version and exit")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="say more (repeatable): notices, timings, the run's summary at the end")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors: no progress, notices or summary line")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    run_opts = common_options(progress=True)
    r = sub.add_parser("run", parents=[run_opts], help="run one config: the limit and the finite-width ensemble",
                       description="Run one config: the infinite-width limit beside the finite-width networks; "
                                   "writes config.toml, result.npz and summary.json into --out.")
    r.add_argument("config", help="TOML config file (start from `meanfield init`)")
    r.add_argument("--out", help="output directory (default: runs/<run.name>)")
    r.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    r.add_argument("--overwrite", action="store_true", help="replace a finished run already in --out")
    r.set_defaults(func=_cmd_run)
    pl = sub.add_parser("plot", parents=[common_options()], help="draw the figures of a run (or scan) directory",
                        description="Draw the figures of a run directory (risk, particles, convergence, "
                                    "fluctuations) or of a scan directory (a metric against a parameter).")
    pl.add_argument("dir", help="a run directory (written by meanfield run) or a scan directory")
    pl.add_argument("--format", default="png", choices=("png", "pdf"), help="figure file format (default: png)")
    from . import plot as _plot_mod  # noqa: F401  (light: matplotlib is imported lazily)

    _plot_mod.add_cli_options(pl)
    pl.set_defaults(func=_cmd_plot)
    b = sub.add_parser("bench", help="benchmark the backends (see benchmarks/; `meanfield bench --help`)",
                       add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options of the benchmark suite")
    b.set_defaults(func=_cmd_bench)
    for hook in _extensions():
        hook(sub)
    return p


def _extensions():
    """Subcommands contributed by other modules when present: init, show and export, and the scan
    family (scan, status, collect)."""
    hooks = []
    for mod in ("init", "show", "scan.cli"):  # show also registers export
        try:
            module = __import__(f"meanfield.{mod}", fromlist=["register"])
        except ImportError:
            continue
        hooks.append(module.register)
    return hooks


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    retain_freed_memory()
    if argv[:1] == ["bench"]:
        # the suite parses its own options; argparse's REMAINDER does not capture arguments that
        # look like options (`meanfield bench --quick` was refused), so hand them over untouched
        return _cmd_bench(argparse.Namespace(rest=argv[1:]))
    parser = build_parser()
    if not argv:  # `meanfield` alone: the help, not an error
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # global options only (e.g. `meanfield -v`)
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted; files already written are intact")
        return 130


if __name__ == "__main__":
    sys.exit(main())
