"""The coordinator of a scan: expand, validate, reconcile with what is on disk, dispatch, record.

Order of work (:func:`run_scan`):

1. expand the spec and validate every point (nothing is written if one is invalid);
2. collapse equal resolved configs to one run each (ids are content hashes);
3. refuse more than :data:`CONFIRM_ABOVE` runs without ``yes``;
4. record the points in ``DIR/index.sqlite`` and *reconcile*: a run directory holding
   ``summary.json`` is finished whatever the index says (it may lag after a ``kill -9``), a run
   marked running or finished without one is pending again, failed runs stay failed unless
   ``retry_failed``;
5. hand the pending runs to the executor, writing each start, outcome and worker death to the
   index as it happens (this process is the index's only writer).

Resuming is running the same command again: finished runs are never recomputed or touched,
missing ones are computed once, and the final directory equals that of an uninterrupted scan.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

from .. import store as _files
from .executors import MAX_CRASHES, make_executor
from .identity import canonical_json
from .spec import ScanSpec, distinct, expand, load_spec, point_label
from .store import FINISHED, STATUSES, Index, IndexCorrupt, index_path, run_dir, set_aside

__all__ = ["ScanPlan", "ScanReport", "ScanRefused", "plan_scan", "run_scan", "reconcile", "scan_status",
           "CONFIRM_ABOVE"]

#: Scans with more distinct runs than this need an explicit confirmation (``--yes``).
CONFIRM_ABOVE = 5000


class ScanRefused(RuntimeError):
    """The scan is too large to start without confirmation."""


@dataclass
class ScanPlan:
    """An expanded, validated spec: every point and the distinct runs."""

    spec: ScanSpec
    points: list
    runs: dict  # id -> first Point

    @property
    def n_duplicates(self) -> int:
        return len(self.points) - len(self.runs)


@dataclass
class ScanReport:
    """Outcome of :func:`run_scan`: runs per status (of this spec) and the exit code."""

    out: str
    counts: dict
    ran: int = 0
    interrupted: bool = False
    problems: list = field(default_factory=list)  # (id, params, status, error) of diverged and failed runs

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.counts.get("completed", 0) == sum(self.counts.values()) else 1


def plan_scan(spec) -> ScanPlan:
    """Load (a path) or take a :class:`ScanSpec`, expand and validate it (raises SpecError)."""
    if not isinstance(spec, ScanSpec):
        spec = load_spec(spec)
    points = expand(spec)
    return ScanPlan(spec=spec, points=points, runs=distinct(points))


def _diverged_text(summary):
    if summary.get("status") not in ("diverged", "failed"):  # failed: a record check refused (meanfield.health)
        return None
    return "; ".join(d.get("message", "") for d in summary.get("diverged", [])) or "diverged"


def finished_on_disk(root, rid):
    """The summary of a whole finished run directory, or None.

    summary.json is written last, and it records the size and sha256 of the other files: a run
    is finished when its summary is readable and the files match it (:func:`meanfield.store.verify_run`).
    """
    d = run_dir(root, rid)
    if _files.verify_run(d):
        return None
    try:
        return _files.load_json(os.path.join(d, "summary.json"))
    except (OSError, ValueError):
        return None


def set_aside_damaged(d) -> list:
    """If run directory ``d`` holds a summary.json but is not a whole run (truncated or altered
    result, garbled summary), move the summary to ``summary.json.corrupt`` so that the run is
    recomputed; returns the problems found ([] for a whole run or no summary)."""
    summ = os.path.join(d, "summary.json")
    if not os.path.isfile(summ):
        return []
    problems = _files.verify_run(d)
    if problems:
        os.replace(summ, summ + ".corrupt")
    return problems


def reconcile(index: Index, root, ids, retry_failed: bool = False, log=None) -> list:
    """Bring the index in line with the run directories; return the ids to run (grid order).

    Every finished run is verified against the checksums in its summary; a damaged one is set
    aside (:func:`set_aside_damaged`) and computed again.
    """
    rows = index.runs(ids)
    updates = []
    status = {}
    for rid in ids:
        row = rows[rid]
        damaged = set_aside_damaged(run_dir(root, rid))
        if damaged and log is not None:
            log(f"run {rid} is damaged ({'; '.join(damaged)}): it will be computed again")
        s = finished_on_disk(root, rid)
        if s is not None:
            # 'failed' on disk: the run finished but a record check refused it (meanfield.health)
            st = s.get("status") if s.get("status") in FINISHED + ("failed",) else "completed"
            new = {"status": st, "seconds_run": s.get("seconds_total"), "error": _diverged_text(s)}
            if row["status"] != st:
                new["finished_at"] = time.time()
            if any(row[k] != v for k, v in new.items()):
                updates.append((rid, new))
        elif row["status"] in ("running",) + FINISHED:
            # interrupted mid-run, or a finished directory was deleted: compute it (again)
            st = "pending"
            updates.append((rid, {"status": st}))
        elif row["status"] == "failed" and retry_failed:
            st = "pending"
            updates.append((rid, {"status": st, "crashes": 0, "error": None}))
        else:
            st = row["status"]
        status[rid] = st
    index.update_many(updates)
    return [rid for rid in ids if status[rid] == "pending"]


class _Events:
    """Executor callbacks: write each event to the index and move the progress bar."""

    def __init__(self, index, counts, bar, log, max_crashes):
        self.index, self.counts, self.bar, self.log, self.max_crashes = index, counts, bar, log, max_crashes
        self.state = {}
        self.ran = 0

    def _move(self, rid, new):
        old = self.state.get(rid, "pending")
        self.counts[old] -= 1
        self.counts[new] += 1
        self.state[rid] = new
        self.bar.set(note=_counts_text(self.counts))

    def started(self, rid, worker):
        self.index.mark_running(rid, worker)
        self._move(rid, "running")

    def finished(self, res):
        rid, st = res["id"], res["status"]
        self.index.mark_finished(rid, st, error=res.get("error"), seconds=res.get("seconds"),
                                 seconds_run=res.get("seconds_run"), count_attempt=res.get("count_attempt", False))
        self._move(rid, st)
        self.ran += 1
        if st != "completed":
            first = (res.get("error") or "").strip().splitlines()
            self.log(f"run {rid} {st}: {first[-1] if first else ''}")
        self.bar.update(1)

    def crashed(self, rid, error, final=False):
        st = self.index.mark_crash(rid, error, self.max_crashes, final=final)
        self._move(rid, st)
        self.log(f"run {rid}: {error}" + ("; not retried (failed)" if st == "failed" else "; queued again"))
        if st == "failed":
            self.bar.update(1)
        return st == "pending"


def _counts_text(counts):
    return " ".join(f"{k}={counts[k]}" for k in STATUSES if counts.get(k))


def _bar(total, initial, mode):
    """The scan's reporter (:mod:`meanfield.core.progress`): a bar where a human watches, a line
    with the counts per status every interval in logs."""
    from ..core.progress import reporter

    return reporter(total, "scan", mode, unit="run", initial=initial, leave=True)


def open_index(out, log=None) -> Index:
    """The scan's index for writing; a damaged one is set aside and rebuilt (the run directories
    are the authority on finished runs: :func:`reconcile` re-derives their statuses; only the
    attempt and crash counts and the error texts of failed runs are lost, and failed runs run again)."""
    path = index_path(out)
    try:
        return Index(path)
    except IndexCorrupt as e:
        dest = set_aside(path)
        (log or (lambda s: None))(f"{e}; moved it to {os.path.basename(dest)} and rebuilt the index from the run "
                                  "directories")
        return Index(path)


def prepare(plan: ScanPlan, out, retry_failed=False, log=None):
    """Create ``out``, record the spec and points in the index, reconcile; returns (index, to_run)."""
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    index = open_index(out, log)
    try:
        if plan.spec.text:
            _files.atomic_write_text(os.path.join(out, "spec.toml"), plan.spec.text)
        index.set_meta(spec=plan.spec.text, spec_path=plan.spec.path or "", param_names=plan.spec.param_names,
                       updated_at=str(time.time()))
        index.register(plan.points, {rid: canonical_json(p.config) for rid, p in plan.runs.items()})
        to_run = reconcile(index, out, list(plan.runs), retry_failed=retry_failed, log=log)
    except BaseException:
        index.close()
        raise
    return index, to_run


def run_scan(spec, out, workers=None, executor="local", scheduler=None, yes=False, retry_failed=False,
             progress="auto", log=None, threads=None, cluster=None, cluster_options=None) -> ScanReport:
    """Run (or resume) a scan into directory ``out``.

    Parameters
    ----------
    spec : str, path or ScanSpec or ScanPlan
    out : str
        Scan directory (created): ``index.sqlite``, ``spec.toml``, ``runs/<id>/``.
    workers : int or None
        Worker processes (default: available cores).
    executor : {'local', 'dask'}
    scheduler : str or None
        dask scheduler address (default: a LocalCluster of ``workers`` processes).
    cluster : str or None
        dask cluster kind to start (``'local'``, ``'slurm'``: :mod:`meanfield.scan.clusters`),
        with the spec's ``[cluster.<kind>]`` resources.
    cluster_options : list of str or None
        ``KEY=VALUE`` overrides of those resources (``--cluster-option``).
    yes : bool
        Allow more than :data:`CONFIRM_ABOVE` runs.
    retry_failed : bool
        Run again the runs recorded as failed.
    progress : {"auto", "bar", "text", "none"} or bool
        Feedback on stderr (:mod:`meanfield.core.progress`): a bar where a human watches, a line
        with the counts per status every 10 s in logs.
    log : callable(str) or None
        Notices (failures, worker deaths); default: stderr.

    Returns
    -------
    ScanReport

    Raises
    ------
    SpecError
        An invalid spec or point (nothing written).
    ScanRefused
        Too many runs without ``yes`` (nothing written).
    """
    from ..core.progress import resolve

    resolve(progress)  # a bad mode is refused before anything is written
    log = log or (lambda s: print(s, file=sys.stderr))
    plan = spec if isinstance(spec, ScanPlan) else plan_scan(spec)
    n = len(plan.runs)
    if n > CONFIRM_ABOVE and not yes:
        raise ScanRefused(f"this scan has {n} distinct runs (more than {CONFIRM_ABOVE}); check it with --dry-run "
                          "and pass --yes to start it")
    ex = make_executor(executor, workers, scheduler, threads, cluster=cluster, cluster_options=cluster_options,
                       spec_clusters=plan.spec.clusters)
    out = os.fspath(out)
    _check_scan_out(plan, out)
    os.makedirs(out, exist_ok=True)
    with _coordinator_lock(out):
        return _run_locked(plan, out, ex, retry_failed, progress, log)


def _check_scan_out(plan, out):
    """The scan directory must be a directory (or creatable) where the results still to compute fit."""
    from ..core.memory import result_bytes

    need = 1e6 + sum(2 * result_bytes(p.config.to_dict()) for rid, p in plan.runs.items()
                     if not os.path.isfile(os.path.join(run_dir(out, rid), "summary.json")))
    try:
        _files.check_output_location(out, need)
    except _files.OutputLocationError as e:
        raise ScanRefused(str(e)) from None


@contextlib.contextmanager
def _coordinator_lock(out):
    """One coordinator per scan directory (the index has a single writer); the kernel releases
    the lock when the process dies, so a ``kill -9`` never leaves the directory locked."""
    import fcntl

    fd = os.open(os.path.join(out, ".coordinator.lock"), os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ScanRefused(f"another scan process is running on {out}; wait for it, or watch it with "
                              f"`meanfield status {out}`") from None
        yield
    finally:
        os.close(fd)


def _run_locked(plan, out, ex, retry_failed, progress, log):
    index, to_run = prepare(plan, out, retry_failed, log)
    ids = list(plan.runs)
    n = len(ids)
    counts = index.counts(ids)
    report = ScanReport(out=out, counts=counts)
    bar = _bar(n, n - len(to_run) - counts["running"], progress)
    events = _Events(index, counts, bar, lambda s: bar.write(s) if not bar.disable else log(s), MAX_CRASHES)
    bar.set(note=_counts_text(counts))
    tasks = [(rid, canonical_json(plan.runs[rid].config), run_dir(out, rid)) for rid in to_run]
    try:
        ex.map(tasks, events)
    except KeyboardInterrupt:
        report.interrupted = True
        # the workers were stopped: their runs have no summary.json and are pending again
        running = [rid for rid, st in events.state.items() if st == "running"]
        index.update_many([(rid, {"status": "pending"}) for rid in running])
    finally:
        bar.close()
        report.counts = index.counts(ids)
        report.ran = events.ran
        rows = index.runs(ids)
        report.problems = [(rid, json.loads(rows[rid]["params"]), rows[rid]["status"], rows[rid]["error"])
                           for rid in ids if rows[rid]["status"] in ("diverged", "failed")]
        index.close()
    return report


def format_report(report: ScanReport) -> str:
    """Counts per status and one line per run that did not complete."""
    total = sum(report.counts.values())
    lines = [f"scan {report.out}: {total} runs: " + ", ".join(f"{report.counts[s]} {s}" for s in STATUSES)
             + (" (interrupted: run the same command to resume)" if report.interrupted else "")]
    for rid, params, st, err in report.problems[:50]:
        first = (err or "").strip().splitlines()
        lines.append(f"  {st:9s} {rid}  {point_label(params)}" + (f"  -- {first[-1][:200]}" if first else ""))
    if len(report.problems) > 50:
        lines.append(f"  ... and {len(report.problems) - 50} more")
    return "\n".join(lines)


def scan_status(out) -> dict:
    """Counts per status and the rows of the runs of the latest spec (read-only)."""
    path = index_path(out)
    with Index(path, readonly=True) as index:  # IndexCorrupt: the CLI says how to rebuild it
        ids = index.scan_ids()
        rows = index.runs(ids)
        meta = index.meta()
    counts = {s: 0 for s in STATUSES}
    for r in rows.values():
        counts[r["status"]] += 1
    return {"counts": counts, "rows": [rows[i] for i in ids], "meta": meta}
