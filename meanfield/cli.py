"""The ``meanfield`` command line: run, plot, template, bench (and the scan family where installed).

Exit codes: 0 success; 2 invalid input (nothing written); 3 the run diverged or failed a record
check (README, Reliability; results up to the last accepted state are written); 1 any other failure.
No traceback reaches the user: an unexpected error prints one line naming its type and how to see
the traceback (``MEANFIELD_DEBUG=1``), exit 1.
"""
from __future__ import annotations

import argparse
import os
import sys

from meanfield_solvers.heap import retain_freed_memory

__all__ = ["main"]


def _err(msg):
    print(f"meanfield: {msg}", file=sys.stderr)


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
        res = run_to_dir(cfg, out, overwrite=args.overwrite, progress=not args.quiet,
                         log=lambda s: print(s, file=sys.stderr))
    except RunDirError as e:
        _err(str(e))
        return 2
    except OSError as e:  # the disk filled up or vanished after the checks: nothing finished was touched
        _err(f"could not write the run to {out}: {e}. A finished run already there is intact; free space or "
             "choose another --out and run again")
        return 1
    s = res.summary
    if not args.quiet:
        msg = f"{s['status']}: wrote {out}/result.npz, summary.json, config.toml in {s['seconds_total']:.1f} s"
        if "risk_mf_final" in s:
            msg += f"; final limit risk {s['risk_mf_final']:.4g}"
        print(msg)
    if s["status"] != "completed":  # diverged or failed
        for dv in s["diverged"]:
            _err(f"{dv.get('status', 'diverged')}: {dv['message']}")
        return 3
    return 0


def _cmd_template(args):
    """Print (or write) a config with every key at its default: running the defaults on purpose."""
    from . import config as C
    from . import store

    text = "# every key at its default (meanfield template); edit what you need\n" + C.to_toml(C.from_dict({}))
    if args.out:
        if os.path.exists(args.out):
            _err(f"--out {args.out} exists; choose a new file name")
            return 2
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
            _err(f"--out {args.out}: the folder {os.path.dirname(os.path.abspath(args.out))} does not exist")
            return 2
        try:
            store.check_output_location(os.path.dirname(os.path.abspath(args.out)), len(text), what="--out")
        except store.OutputLocationError as e:
            _err(str(e))
            return 2
        store.atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_plot(args):
    from . import plot

    if not os.path.isdir(args.dir):
        _err(f"{args.dir} is not a directory: give a run or scan directory")
        return 2
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


def _cmd_coordcheck(args):
    """Per-layer activation and update sizes against width (meanfield/deep/coordcheck.py)."""
    from . import config as C

    try:
        cfg = C.load(args.config, args.set or ())
    except C.ConfigError as e:
        _err(str(e))
        return 2
    from .deep.coordcheck import coordcheck_config
    from .deep.parametrisation import PARAMETRISATIONS

    names = [n.strip() for n in args.parametrisations.split(",")] if args.parametrisations else None
    bad = [n for n in names or [] if n not in PARAMETRISATIONS]
    if bad or args.steps < 1:
        _err(f"--parametrisations: unknown {bad}; choose from {sorted(PARAMETRISATIONS)}" if bad
             else f"--steps must be >= 1, got {args.steps}")
        return 2
    out = args.out or os.path.join("runs", f"{cfg.run.name}-coordcheck")
    try:  # before any training: the location must take the table, arrays and figure
        from . import store

        store.check_output_location(out, 1e6)
    except store.OutputLocationError as e:
        _err(str(e))
        return 2
    coordcheck_config(cfg, names, steps=args.steps, out=out)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="meanfield", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one config: the limit and the finite-width ensemble")
    r.add_argument("config", help="TOML config file")
    r.add_argument("--out", help="output directory (default: runs/<run.name>)")
    r.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    r.add_argument("--overwrite", action="store_true", help="replace a finished run already in --out")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary line")
    r.set_defaults(func=_cmd_run)
    t = sub.add_parser("template", help="print a config with every key at its default (run the defaults on purpose)")
    t.add_argument("--out", help="write it to this new file instead of stdout")
    t.set_defaults(func=_cmd_template)
    pl = sub.add_parser("plot", help="draw the figures of a run (or scan) directory")
    pl.add_argument("dir")
    pl.add_argument("--format", default="png", choices=("png", "pdf"))
    from . import plot as _plot_mod  # noqa: F401  (light: matplotlib is imported lazily)

    _plot_mod.add_cli_options(pl)
    pl.set_defaults(func=_cmd_plot)
    cc = sub.add_parser("coordcheck", help="coordinate check: per-layer activation and update sizes against width "
                        "over the first GD steps (train.widths, train.seeds, train.lr of the config)")
    cc.add_argument("config", help="TOML config file (a deep network: model.depth, activation, residual keys)")
    cc.add_argument("--parametrisations", help="comma-separated, e.g. mup,ntk,standard (default: the config's)")
    cc.add_argument("--steps", type=int, default=4, help="GD steps recorded (default 4)")
    cc.add_argument("--out", help="output directory (default: runs/<run.name>-coordcheck)")
    cc.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    cc.set_defaults(func=_cmd_coordcheck)
    b = sub.add_parser("bench", help="benchmark the backends (see benchmarks/)", add_help=False)
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=_cmd_bench)
    for hook in _extensions():
        hook(sub)
    return p


def _extensions():
    """Subcommands contributed by other modules (scan, status, collect) when present."""
    hooks = []
    try:
        from .scan.cli import register
    except ImportError:
        return hooks
    hooks.append(register)
    return hooks


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    retain_freed_memory()
    if argv[:1] == ["bench"]:
        # the suite parses its own options; argparse's REMAINDER does not capture arguments that
        # look like options (`meanfield bench --quick` was refused), so hand them over untouched
        return _cmd_bench(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted; files already written are intact")
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback reaches a user
        if os.environ.get("MEANFIELD_DEBUG"):
            raise
        _err(f"internal error: {type(e).__name__}: {e}. This is a bug: please report it with the command; "
             "MEANFIELD_DEBUG=1 shows the traceback")
        return 1


if __name__ == "__main__":
    sys.exit(main())
