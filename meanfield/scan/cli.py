"""Subcommands ``meanfield scan``, ``meanfield status`` and ``meanfield collect``.

``meanfield scan SPEC.toml --out DIR [--workers K] [--executor local|dask] [--scheduler ADDRESS]
[--cluster local|slurm] [--cluster-option KEY=VALUE ...] [--dry-run] [--yes] [--retry-failed]``

Exit codes: 0 every run of the spec completed; 1 some run diverged, failed or is unfinished
(a count per status is printed); 2 invalid spec or point, or a refused scan (nothing written);
130 interrupted (rerun the same command to resume).
"""
from __future__ import annotations

import json
import os
import sys

__all__ = ["register"]


def _err(msg):
    print(f"meanfield: {msg}", file=sys.stderr)


def _positive_int(text):
    import argparse

    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v}: must be >= 1 (worker processes)")
    return v


def _rebuild_hint(d):
    return (f"rebuild it from the run directories with `meanfield scan SPEC --out {d}` (SPEC: the spec you ran; "
            f"a copy is {os.path.join(d, 'spec.toml')}): finished runs are kept, nothing finished is recomputed")


def _scan_dir_problem(d):
    """Why ``d`` cannot be read as a scan directory (None when it can be tried)."""
    if not os.path.exists(d):
        return f"no scan directory at {d}"
    if not os.path.isdir(d):
        return f"{d} is not a directory: give a scan directory (the --out of meanfield scan)"
    return None


def _fmt_bytes(b):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if b < 1024 or unit == "TB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024


def _fmt_s(s):
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _dry_run(plan, out, workers, calibrate=True):
    from .estimate import estimate_runs
    from .executors import available_cores
    from .runner import CONFIRM_ABOVE, finished_on_disk

    n = len(plan.runs)
    done = [rid for rid in plan.runs if out and finished_on_disk(out, rid) is not None]
    todo = [rid for rid in plan.runs if rid not in set(done)]
    print(f"{len(plan.points)} grid points -> {n} distinct runs"
          + (f" ({plan.n_duplicates} points repeat an equal resolved config)" if plan.n_duplicates else ""))
    if out and done:
        print(f"{len(done)} already finished in {out}, {len(todo)} to run")
    if n > CONFIRM_ABOVE:
        print(f"more than {CONFIRM_ABOVE} runs: starting it needs --yes")
    if not todo:
        return 0
    est = estimate_runs([plan.runs[r].config.to_dict() for r in todo], calibrate=calibrate)
    K = workers or available_cores()
    print(f"memory per run: ~{_fmt_bytes(float(est.memory_each.mean()))} (largest "
          f"{_fmt_bytes(float(est.memory_each.max()))}; model: worker baseline + state x (stages + 3) + "
          "pairwise/MC temporaries (<= 2 x 64 MiB blocks) + result arrays x 2)")
    print(f"time: ~{_fmt_s(float(est.seconds_each.mean()))} per run (longest {_fmt_s(float(est.seconds_each.max()))}), "
          f"{_fmt_s(est.total_seconds())} of compute, ~{_fmt_s(est.wall_seconds(K))} wall with {K} worker(s); "
          f"model: step counts x per-step seconds from short probe runs of {est.calibrated} of {est.classes} "
          f"run class(es) ({est.probe_seconds:.1f} s of probing), the rest scaled by particle x sample x d work")
    return 0


def _print_job_script(args, plan):
    """--dry-run with a cluster: check its options and show the batch script its jobs would run."""
    from .clusters import get_cluster
    from .executors import make_executor

    try:
        ex = make_executor(args.executor, args.workers, args.scheduler, cluster=args.cluster,
                           cluster_options=args.cluster_option, spec_clusters=plan.spec.clusters)
    except ValueError as e:
        _err(str(e))
        return 2
    script = get_cluster(ex.cluster).job_script(ex.cluster_options, ex.workers)
    if script:
        n = get_cluster(ex.cluster).n_jobs(ex.cluster_options, ex.workers)
        print(f"--cluster {ex.cluster}: {n} job(s), each running:\n{script}")
    return 0


def _cmd_scan(args):
    from ..cli import progress_mode
    from .spec import SpecError
    from .runner import ScanRefused, format_report, plan_scan, run_scan

    try:
        plan = plan_scan(args.spec)
    except SpecError as e:
        _err(str(e))
        return 2
    stem = os.path.splitext(os.path.basename(args.spec))[0]
    out = args.out or os.path.join("runs", "scans", stem)
    if os.path.exists(out) and not os.path.isdir(out):
        _err(f"--out {out} exists and is not a directory; choose another --out")
        return 2
    if args.dry_run:
        if args.cluster or args.cluster_option:
            code = _print_job_script(args, plan)
            if code:
                return code
        return _dry_run(plan, args.out or (out if os.path.isdir(out) else None), args.workers)
    try:
        report = run_scan(plan, out, workers=args.workers, executor=args.executor, scheduler=args.scheduler,
                          yes=args.yes, retry_failed=args.retry_failed, progress=progress_mode(args),
                          cluster=args.cluster, cluster_options=args.cluster_option)
    except (ScanRefused, ValueError) as e:
        _err(str(e))
        return 2
    print(format_report(report))
    return report.exit_code


def _cmd_status(args):
    from .runner import scan_status
    from .spec import point_label
    from .store import STATUSES, IndexCorrupt

    if _scan_dir_problem(args.dir):
        _err(_scan_dir_problem(args.dir))
        return 2
    try:
        st = scan_status(args.dir)
    except FileNotFoundError as e:
        _err(str(e))
        return 2
    except IndexCorrupt as e:
        _err(f"{e}; {_rebuild_hint(args.dir)}")
        return 2
    c = st["counts"]
    total = sum(c.values())
    print(f"{args.dir}: {total} runs: " + ", ".join(f"{c[s]} {s}" for s in STATUSES))
    secs = [r["seconds"] for r in st["rows"] if r["seconds"] is not None]
    if secs:
        print(f"compute so far: {_fmt_s(sum(secs))} over {len(secs)} finished attempt(s), "
              f"{_fmt_s(sum(secs) / len(secs))} each")
    for r in st["rows"]:
        if r["status"] == "completed" or (r["status"] == "pending" and not args.all and not r["error"]):
            continue
        first = (r["error"] or "").strip().splitlines()
        extra = f" attempts={r['attempts']}" + (f" crashes={r['crashes']}" if r["crashes"] else "")
        if r["status"] == "running":
            extra += f" on {r['worker']}"
        print(f"  {r['status']:9s} {r['id']}  {point_label(json.loads(r['params']))}{extra}"
              + (f"  -- {first[-1][:200]}" if first else ""))
    return 0


def _cmd_collect(args):
    from .. import store
    from .collect import collect
    from .store import IndexCorrupt

    if _scan_dir_problem(args.dir):
        _err(_scan_dir_problem(args.dir))
        return 2
    if args.csv:
        if os.path.isdir(args.csv):
            _err(f"--csv {args.csv} is a directory; give a file name")
            return 2
        folder = os.path.dirname(os.path.abspath(args.csv))
        if not os.path.isdir(folder):
            _err(f"--csv {args.csv}: the folder {folder} does not exist; create it or choose another path")
            return 2
        try:
            store.check_output_location(folder, 0, what="--csv")
        except store.OutputLocationError as e:
            _err(str(e))
            return 2
    try:
        col = collect(args.dir, trajectories=False)
    except FileNotFoundError as e:
        _err(str(e))
        return 2
    except IndexCorrupt as e:
        _err(f"{e}; {_rebuild_hint(args.dir)}")
        return 2
    if col.damaged:
        for rid, problems in col.damaged[:20]:
            _err(f"run {rid} is damaged: {'; '.join(problems)}")
        _err(f"{len(col.damaged)} finished run(s) of {args.dir} are damaged; no table written. Recompute them with "
             f"`meanfield scan SPEC --out {args.dir}` (the scan verifies every finished run against its checksums "
             "and computes damaged ones again)")
        return 2
    if args.csv:
        col.to_csv(args.csv)
        print(f"wrote {len(col)} rows ({len(col.columns)} columns) to {args.csv}")
    else:
        sys.stdout.write(col.to_csv())
    if col.missing:
        _err(f"{len(col.missing)} run(s) of the spec have no results yet (see meanfield status {args.dir})")
    return 0


def register(sub):
    """Add the ``scan``, ``status`` and ``collect`` subcommands to an argparse subparsers object."""
    from ..cli import common_options

    s = sub.add_parser("scan", parents=[common_options(progress=True)],
                       help="run a parameter scan (resumable): a grid of configs in parallel",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    s.add_argument("spec", help="scan spec TOML (base config, [axes], [[zip]], seeds; start from "
                               "`meanfield init scan`)")
    s.add_argument("--out", help="scan directory (default: runs/scans/<spec file name>)")
    s.add_argument("--workers", "-j", type=_positive_int, default=None,
                   help="worker processes, >= 1 (default: available cores)")
    s.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local: a process pool on this machine (default); dask: a dask.distributed cluster "
                        "(extra [dask])")
    s.add_argument("--scheduler", help="address of a running dask scheduler (default with --executor dask: "
                                       "start the --cluster)")
    from .clusters import CLUSTERS

    s.add_argument("--cluster", choices=tuple(CLUSTERS), default=None,
                   help="with --executor dask, the cluster to start: " + "; ".join(
                       f"{k}: {v.doc}" for k, v in CLUSTERS.items()) + " (default: local). Its resources come from "
                   "the spec's [cluster.<kind>] table and --cluster-option")
    s.add_argument("--cluster-option", action="append", metavar="KEY=VALUE", default=None,
                   help="a resource of the --cluster over the spec's (repeatable), e.g. cores=8, memory=16GB, "
                        "walltime=04:00:00, queue=compute, account=proj, jobs=4, "
                        "job_extra_directives=--qos=short (list options append)")
    s.add_argument("--dry-run", action="store_true",
                   help="print the number of distinct runs and memory/time estimates, then exit")
    s.add_argument("--yes", "-y", action="store_true", help="allow a scan of more than 5000 runs")
    s.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    s.set_defaults(func=_cmd_scan)
    st = sub.add_parser("status", help="progress of a scan directory: runs per status, failures")
    st.add_argument("dir", help="scan directory (written by meanfield scan)")
    st.add_argument("--all", action="store_true", help="also list pending runs")
    st.set_defaults(func=_cmd_status)
    c = sub.add_parser("collect", help="tidy table of a scan: one row per (run, width)")
    c.add_argument("dir", help="scan directory (written by meanfield scan)")
    c.add_argument("--csv", help="write the table to this file (default: CSV on stdout)")
    c.set_defaults(func=_cmd_collect)
