# PYTHON_ARGCOMPLETE_OK  (argcomplete's marker: `activate-global-python-argcomplete` completes this command)
"""The ``meanfield`` command line: init, run, show, plot, export, template, coordcheck, bench, and scans
(scan, status, collect).

Exit codes: 0 success; 2 invalid input (nothing written); 3 the run diverged or failed a record
check (README, Reliability; results up to the last accepted state are written); 130 interrupted
(Ctrl-C: ``meanfield run`` writes a checkpoint first and prints the ``--resume`` command); 1 any other
failure. No traceback reaches the user: an unexpected error prints one line naming its type and how to see
the traceback (``MEANFIELD_DEBUG=1``), exit 1.

Shell completion (optional extra ``[completion]``: argcomplete): ``eval "$(register-python-argcomplete
meanfield)"`` in the shell's rc file completes subcommands, options and choices.
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
    from . import checkpoint as CK
    from . import config as C
    from .extend import ExtendError, extend_dir, parse_changes
    from .run import RunDirError, run_to_dir

    problem = _run_args_problem(args)
    if problem:
        _err(problem)
        return 2
    log = _notice(args)
    try:
        if args.extend:
            out = args.out or args.resume or args.config
            changes = parse_changes(args.extend)
            go = lambda: extend_dir(args.resume or args.config, changes, out=args.out,  # noqa: E731
                                    overwrite=args.overwrite, progress=progress_mode(args), log=log, sigint=True)
        elif args.resume:
            out = args.resume
            cfg = CK.config_of(CK.read(out))
            go = lambda: run_to_dir(cfg, out, progress=progress_mode(args), log=log, resume=True, sigint=True)  # noqa: E731
        else:
            cfg = C.load(args.config, args.set or ())
            out = args.out or os.path.join("runs", cfg.run.name)
            if args.dry_run:
                return _dry_run(cfg, out)
            go = lambda: run_to_dir(cfg, out, overwrite=args.overwrite, progress=progress_mode(args),  # noqa: E731
                                    log=log, sigint=True)
    except (C.ConfigError, CK.CheckpointError, ExtendError) as e:
        _err(str(e))
        return 2
    try:
        res = go()
    except (RunDirError, CK.CheckpointError, ExtendError) as e:
        _err(str(e))
        return 2
    except CK.Interrupted as e:
        _err(f"interrupted: the run stopped at {e.where}, t = {e.t:g}, after writing a checkpoint to {e.folder}; "
             f"continue it with: meanfield run --resume {out}")
        return 130
    except KeyboardInterrupt:
        _err(_interrupted_text(out))
        return 130
    except OSError as e:  # the disk filled up or vanished after the checks: nothing finished was touched
        _err(f"could not write the run to {out}: {e}. A finished run already there is intact; free space or "
             "choose another --out and run again")
        return 1
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
    if s["status"] != "completed":  # diverged or failed
        for dv in s["diverged"]:
            _err(f"{dv.get('status', 'diverged')}: {dv['message']}")
        return 3
    return 0


def _run_args_problem(args):
    """What is wrong with a combination of ``meanfield run`` options (None when nothing)."""
    if args.extend:
        if args.set or args.dry_run:
            return "--extend continues a finished run with its own config: --set and --dry-run do not apply"
        if bool(args.config) == bool(args.resume):
            return "--extend needs the finished run's directory: meanfield run --extend t_max=T DIR"
        d = args.resume or args.config
        if not os.path.isdir(d):
            return f"--extend: {d} is not a run directory"
        return None
    if args.resume:
        if args.config or args.set or args.dry_run or args.overwrite or args.out:
            return ("--resume DIR continues the interrupted run in DIR with the config of its checkpoint: give no "
                    "config, --set, --out, --overwrite or --dry-run with it")
        if not os.path.isdir(args.resume):
            return f"--resume {args.resume}: not a directory"
        return None
    if not args.config:
        return "give a config file (meanfield run CONFIG), or --resume DIR, or --extend t_max=T DIR"
    return None


def _interrupted_text(out):
    """What a Ctrl-C that stopped the run at once (no checkpoint written then) leaves: said truthfully."""
    from . import checkpoint as CK

    try:
        man = CK.read(out)
    except (CK.CheckpointError, OSError, ValueError):
        man = None
    finished = os.path.isfile(os.path.join(out, "summary.json"))
    if man is not None and not man.get("complete"):
        return (f"interrupted; the last checkpoint ({CK.describe(man)}, written {man.get('written')}) is in "
                f"{CK.folder_of(out)}: meanfield run --resume {out} continues from it (the work since then is lost)")
    if man is not None and not finished:  # stopped while writing the result of a run whose end is saved
        return (f"interrupted while writing the result; the checkpoint at the run's end is in {CK.folder_of(out)}: "
                f"meanfield run --resume {out} writes the result from it")
    return (f"interrupted before any checkpoint of this run was written: nothing of it was kept (a finished run "
            f"already in {out} is untouched)")


def _fmt_bytes(b):
    return f"{b / 1e9:.3g} GB" if b >= 1e9 else f"{b / 1e6:.3g} MB"


def _fmt_s(s):
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _dry_run(cfg, out):
    """``meanfield run --dry-run``: the memory and time estimates, nothing written."""
    from .checkpoint import schedule
    from .core.memory import estimate, result_bytes
    from .scan.estimate import estimate_runs

    d = cfg.to_dict()
    mem = estimate(d)
    print(f"memory: ~{_fmt_bytes(mem.total)} peak (largest terms: {mem.describe()}); refused above "
          f"run.max_memory_gb")
    # probes long enough (~1 s) that the per-step time stands above the timing noise, the best of two
    est = estimate_runs([d], budget_s=30.0, probe_target_s=1.0, repeats=2)
    print(f"time: ~{_fmt_s(float(est.seconds_each[0]))} (step counts x per-step seconds from short probe runs of "
          f"this config, {est.probe_seconds:.1f} s of probing)")
    print(f"result: ~{_fmt_bytes(result_bytes(d))} in {out}/result.npz")
    sch = schedule(cfg.run.checkpoint_every)
    if sch:
        every = f"every {sch[1]:g} of mean-field time" if sch[0] == "time" else f"every {cfg.run.checkpoint_every}"
        print(f"checkpoints: {every}, each up to ~{_fmt_bytes(result_bytes(d) + mem.total - 150e6)} in "
              f"{out}/checkpoint (the states and the records so far)")
    print("nothing was written (--dry-run)")
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


def common_options(verbose_opts=True, progress=False):
    """A parent parser with the options every long-running subcommand shares."""
    from .core.progress import MODES

    c = _Parser(add_help=False)
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

    p = _Parser(
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
    r.add_argument("config", nargs="?", help="TOML config file (start from `meanfield init`; with --extend: the "
                   "finished run's directory)")
    r.add_argument("--out", help="output directory (default: runs/<run.name>)")
    r.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    r.add_argument("--overwrite", action="store_true", help="replace a finished run already in --out")
    r.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR from its checkpoint "
                   "(bit-identical to an uninterrupted run)")
    r.add_argument("--extend", action="append", metavar="t_max=T", help="continue the finished run DIR (kept with "
                   "run.checkpoint_every) to the later time T; also records=R, snapshots=K (repeatable)")
    r.add_argument("--dry-run", action="store_true", help="estimate memory and time (short probe runs); write nothing")
    r.set_defaults(func=_cmd_run)
    t = sub.add_parser("template", help="print a config with every key at its default (run the defaults on purpose)")
    t.add_argument("--out", help="write it to this new file instead of stdout")
    t.set_defaults(func=_cmd_template)
    pl = sub.add_parser("plot", parents=[common_options()], help="draw the figures of a run (or scan) directory",
                        description="Draw the figures of a run directory (risk, particles, convergence, "
                                    "fluctuations) or of a scan directory (a metric against a parameter).")
    pl.add_argument("dir", help="a run directory (written by meanfield run) or a scan directory")
    pl.add_argument("--format", default="png", choices=("png", "pdf"), help="figure file format (default: png)")
    from . import plot as _plot_mod  # noqa: F401  (light: matplotlib is imported lazily)

    _plot_mod.add_cli_options(pl)
    pl.set_defaults(func=_cmd_plot)
    cc = sub.add_parser("coordcheck", parents=[common_options()], help="coordinate check: per-layer activation and update sizes against width "
                        "over the first GD steps (train.widths, train.seeds, train.lr of the config)")
    cc.add_argument("config", help="TOML config file (a deep network: model.depth, activation, residual keys)")
    cc.add_argument("--parametrisations", help="comma-separated, e.g. mup,ntk,standard (default: the config's)")
    cc.add_argument("--steps", type=int, default=4, help="GD steps recorded (default 4)")
    cc.add_argument("--out", help="output directory (default: runs/<run.name>-coordcheck)")
    cc.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    cc.set_defaults(func=_cmd_coordcheck)
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


def _complete(parser):
    """Answer a shell's completion request (argcomplete's protocol: the shell runs the command with
    ``_ARGCOMPLETE`` and ``COMP_LINE`` set; argcomplete prints the candidates and exits). Without
    that variable nothing is imported, so normal runs pay nothing; without argcomplete, nothing."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)


class _Parser(argparse.ArgumentParser):
    """argparse with one extra hint: an option's value that starts with '-' (``--set -x=1``) is read
    by argparse as another option, and its own message ('expected one argument') does not say how to
    pass it; subparsers inherit the class."""

    def error(self, message):
        if "expected one argument" in message:
            message += " (a value that starts with '-' must be attached with '=', e.g. --set=-x.y=1)"
        super().error(message)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "_ARGCOMPLETE" in os.environ:
        _complete(build_parser())  # exits when argcomplete is installed
    retain_freed_memory()
    if argv[:1] == ["bench"]:
        # the suite parses its own options; argparse's REMAINDER does not capture arguments that
        # look like options (`meanfield bench --quick` was refused), so hand them over untouched
        return _cmd_bench(argparse.Namespace(rest=argv[1:]))
    parser = build_parser()
    if not argv:  # `meanfield` alone: the help, not an error
        parser.print_help()
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse's own exit (a usage error: 2; --help, --version: 0) as a status
        return e.code if isinstance(e.code, int) else 2
    if getattr(args, "func", None) is None:  # global options only (e.g. `meanfield -v`)
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except KeyboardInterrupt:  # (meanfield run says what its checkpoint holds itself)
        _err("interrupted")
        return 130
    except BrokenPipeError:  # the reader went away (`meanfield show DIR | head`): not an error
        try:
            sys.stdout = open(os.devnull, "w")  # so that the interpreter's final flush is silent too
        except OSError:
            pass
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback reaches a user
        if os.environ.get("MEANFIELD_DEBUG"):
            raise
        _err(f"internal error: {type(e).__name__}: {e}. This is a bug: please report it with the command; "
             "MEANFIELD_DEBUG=1 shows the traceback")
        return 1


if __name__ == "__main__":
    sys.exit(main())
