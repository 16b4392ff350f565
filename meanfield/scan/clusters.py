"""Dask clusters a scan can start for ``--executor dask --cluster KIND``: a registry.

A cluster kind declares its options (the resources a user may set, in the scan spec's
``[cluster.<kind>]`` table or with ``--cluster-option KEY=VALUE``), checks them before anything
is written, and starts a dask cluster that computes the scan's runs:

* ``local``: a :class:`distributed.LocalCluster` of ``--workers`` single-threaded worker
  processes on this machine (the default of ``--executor dask`` without ``--scheduler``);
* ``slurm``: a :class:`dask_jobqueue.SLURMCluster` (extra ``[slurm]``): the scan's coordinator
  runs the dask scheduler where it is started (a login node, or a job of its own) and submits
  ``jobs`` batch jobs with ``sbatch``, each running ``processes`` dask worker processes on
  ``cores`` cores; a run is computed by one worker process at a time, with
  ``cores // processes`` threads for its numerical libraries (README, "Parameter scans").

Resources never change a result, so they are not part of any run's id: the same spec computed
on a laptop's LocalCluster and on a SLURM cluster gives the same run directories.

The command line overrides the spec key by key; list options given on the command line are
appended to the spec's list (one ``--cluster-option job_extra_directives=...`` per line).
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

__all__ = ["Option", "ClusterKind", "CLUSTERS", "register_cluster", "get_cluster", "check_options",
           "parse_cli_options", "spec_clusters", "RESOURCE"]

#: The dask worker resource a run holds: a worker process computes one run at a time, whatever
#: its thread count (numba's and BLAS's pools are per process; two runs in one process would
#: share them).
RESOURCE = "meanfield_run"


# --------------------------------------------------------------------------- option types
def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_pos_int(v):
    return None if _is_int(v) and v >= 1 else "must be an integer >= 1"


def _check_str(v):
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _check_str_list(v):
    if isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v):
        return None
    return "must be a list of non-empty strings"


_BYTES = re.compile(r"^\s*\d+(\.\d+)?\s*([kKmMgGtTpP]i?)?[bB]\s*$")


def _check_bytes(v):
    if isinstance(v, str) and _BYTES.match(v):
        return None
    return 'must be an amount of memory such as "4GB", "16 GiB" or "500MB"'


def _check_bytes_or_auto(v):
    if v == "auto" or _check_bytes(v) is None:
        return None
    return 'must be "auto" or an amount of memory such as "4GB"'



# SLURM's --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
_WALLTIME = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+|\d+-\d+:\d{1,2}|\d+-\d+:\d{1,2}:\d{1,2})$")


def _check_walltime(v):
    if isinstance(v, str) and _WALLTIME.match(v.strip()):
        return None
    return 'must be a SLURM time limit such as "01:30:00" (H:M:S), "90" (minutes) or "2-00:00:00" (D-H:M:S)'


@dataclass(frozen=True)
class Option:
    """One resource of a cluster kind.

    Attributes
    ----------
    name : str
    kind : {"int", "str", "bytes", "bytes_or_auto", "walltime", "str_list"}
        How a value is checked and how command-line text is read.
    doc : str
        One line for ``--help`` and the README.
    example : str
        A valid value as TOML (shown in the fix of an error).
    """

    name: str
    kind: str
    doc: str
    example: str

    def problem(self, value):
        """Why ``value`` is not valid (None when it is)."""
        return _CHECKS[self.kind](value)

    def parse(self, text: str):
        """A command-line value: integers for int options, a TOML list or one string for lists,
        the text as given otherwise (``memory=16GB`` and ``walltime=01:00:00`` need no quotes)."""
        text = text.strip()
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                return text  # reported by problem(), naming the option
        if self.kind == "str_list":
            if text.startswith("["):
                import tomllib

                try:
                    return tomllib.loads(f"v = {text}")["v"]
                except tomllib.TOMLDecodeError:
                    return text
            return [_unquote(text)]
        return _unquote(text)


def _unquote(text):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


_CHECKS = {"int": _check_pos_int, "str": _check_str, "bytes": _check_bytes, "bytes_or_auto": _check_bytes_or_auto,
           "walltime": _check_walltime, "str_list": _check_str_list}


# --------------------------------------------------------------------------- the registry
class ClusterKind:
    """A kind of dask cluster. Subclasses set :attr:`name`, :attr:`doc`, :attr:`options`."""

    name: str = ""
    doc: str = ""
    #: ``name -> Option``
    options: dict = {}
    #: the module a kind needs, and the extra of this package that installs it
    module: str = "distributed"
    extra: str = "dask"

    def problems(self, opts: dict) -> list:
        """Problems of a complete set of options beyond each key's own check (e.g. between keys)."""
        return []

    def start(self, stack, opts: dict, workers: int | None, threads: int, max_crashes: int):
        """Start the cluster inside ``stack`` (closed when the scan ends); return ``(cluster,
        submit_kwargs)``: the extra arguments every run's ``client.submit`` needs."""
        raise NotImplementedError

    def job_script(self, opts: dict, workers: int | None) -> str | None:
        """The batch script a job of this cluster runs (None: no batch jobs)."""
        return None

    def n_jobs(self, opts: dict, workers: int | None) -> int:
        """Batch jobs submitted (0: none)."""
        return 0


CLUSTERS: dict = {}


def register_cluster(kind: ClusterKind) -> ClusterKind:
    """Register an instance under ``kind.name``."""
    if not kind.name:
        raise ValueError(f"{type(kind).__name__} must set a name")
    CLUSTERS[kind.name] = kind
    return kind


def get_cluster(name: str) -> ClusterKind:
    try:
        return CLUSTERS[name]
    except KeyError:
        m = difflib.get_close_matches(str(name), list(CLUSTERS), n=1)
        raise ValueError(f"--cluster {name}: unknown cluster" + (f" (did you mean {m[0]!r}?)" if m else "")
                         + f"; choose one of {', '.join(CLUSTERS)}") from None


def check_options(kind: ClusterKind, opts: dict, where: str) -> list:
    """Problems of the options ``opts`` of ``kind``, each naming the key and a valid value.

    ``where`` prefixes each problem (``"[cluster.slurm]"`` in a spec, ``"--cluster-option"``).
    """
    problems = []
    for key, value in opts.items():
        opt = kind.options.get(key)
        if opt is None:
            m = difflib.get_close_matches(key, list(kind.options), n=1)
            problems.append(f"{where}: unknown key {key!r}" + (f" (did you mean {m[0]!r}?)" if m else "")
                            + f"; the {kind.name} cluster takes: {', '.join(kind.options) or 'no options'}")
            continue
        why = opt.problem(value)
        if why:
            problems.append(f"{where}: {key} = {value!r} {why} (e.g. {key} = {opt.example})")
    return problems


def parse_cli_options(kind: ClusterKind, items, base: dict | None = None) -> tuple:
    """``KEY=VALUE`` texts of ``--cluster-option`` over the spec's ``base`` options.

    Returns ``(options, problems)``: the given values checked; list options accumulate (the
    spec's list, then each given value), every other key is replaced.
    """
    opts = dict(base or {})
    problems = []
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--cluster-option {item!r}: give KEY=VALUE (e.g. --cluster-option walltime=01:00:00)")
            continue
        opt = kind.options.get(key)
        if opt is None:
            problems += check_options(kind, {key: text}, "--cluster-option")
            continue
        value = opt.parse(text)
        why = opt.problem(value)
        if why:
            problems.append(f"--cluster-option {item!r}: {key} {why} (e.g. {key}={opt.example.strip(chr(34))})")
            continue
        if opt.kind == "str_list":
            value = list(opts.get(key) or []) + value
        opts[key] = value
    return opts, problems


def spec_clusters(table, problems: list) -> dict:
    """The ``[cluster]`` table of a scan spec as ``kind -> options``, every key checked.

    Each kind has its own sub-table (``[cluster.slurm]``, ``[cluster.local]``): a spec may carry
    the resources of several clusters and ``--cluster`` picks one; all are checked, so a typo is
    found before a run on any of them.
    """
    out = {}
    if not isinstance(table, dict):
        problems.append("[cluster] must be a table of [cluster.<kind>] tables, e.g. [cluster.slurm] "
                        "with cores = 8, memory = \"16GB\"")
        return out
    for name, opts in table.items():
        if name not in CLUSTERS:
            if name in CLUSTERS.get("slurm", ClusterKind()).options or not isinstance(opts, dict):
                problems.append(f"[cluster]: {name} = {opts!r} belongs under the table of the cluster it is for, "
                                f"e.g. [cluster.slurm] (cluster kinds: {', '.join(CLUSTERS)})")
                continue
            m = difflib.get_close_matches(name, list(CLUSTERS), n=1)
            problems.append(f"[cluster.{name}]: unknown cluster kind" + (f" (did you mean {m[0]!r}?)" if m else "")
                            + f"; choose one of {', '.join(CLUSTERS)}")
            continue
        if not isinstance(opts, dict):
            problems.append(f"[cluster]: {name} must be a table ([cluster.{name}]) of its options")
            continue
        kind = CLUSTERS[name]
        problems += check_options(kind, opts, f"[cluster.{name}]")
        out[name] = dict(opts)
    return out


# --------------------------------------------------------------------------- local
class LocalKind(ClusterKind):
    name = "local"
    doc = "a dask LocalCluster of --workers single-threaded worker processes on this machine"
    options = {
        "memory_limit": Option("memory_limit", "bytes_or_auto", "memory limit of each worker process (dask's "
                               "memory_limit; \"auto\": the machine's memory / workers)", '"4GB"'),
    }

    def start(self, stack, opts, workers, threads, max_crashes):
        import logging

        from distributed import LocalCluster

        from .executors import available_cores, thread_env

        n = max(1, int(workers or available_cores()))
        cluster = stack.enter_context(LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
            env=thread_env(threads), silence_logs=logging.ERROR, memory_limit=opts.get("memory_limit", "auto")))
        return cluster, {}


register_cluster(LocalKind())


# --------------------------------------------------------------------------- slurm
class SlurmKind(ClusterKind):
    name = "slurm"
    doc = "batch jobs submitted with sbatch through dask-jobqueue (extra [slurm])"
    module = "dask_jobqueue"
    extra = "slurm"
    options = {o.name: o for o in (
        Option("cores", "int", "cores per job (#SBATCH --cpus-per-task)", "8"),
        Option("processes", "int", "dask worker processes per job, each computing one run at a time with "
               "cores // processes threads (default: cores, one thread per run)", "8"),
        Option("memory", "bytes", "memory per job (#SBATCH --mem)", '"16GB"'),
        Option("walltime", "walltime", "time limit of each job (#SBATCH -t)", '"04:00:00"'),
        Option("queue", "str", "partition (#SBATCH -p)", '"compute"'),
        Option("account", "str", "account charged (#SBATCH -A)", '"myproject"'),
        Option("jobs", "int", "jobs to submit (default: enough for --workers worker processes, else 1)", "4"),
        Option("job_extra_directives", "str_list", "further #SBATCH lines, e.g. [\"--qos=short\"]",
               '["--qos=short"]'),
        Option("job_script_prologue", "str_list", "shell lines run before the worker starts (module load, "
               "source a virtual environment)", '["source ~/venv/bin/activate"]'),
        Option("python", "str", "Python of the jobs (default: this one, sys.executable)", '"~/venv/bin/python"'),
        Option("interface", "str", "network interface the workers listen on (e.g. ib0)", '"ib0"'),
        Option("local_directory", "str", "scratch folder of each worker on its node", '"$TMPDIR"'),
        Option("log_directory", "str", "folder of the jobs' stdout/stderr files", '"slurm-logs"'),
    )}

    def problems(self, opts):
        out = []
        try:
            import dask
            import dask_jobqueue  # noqa: F401 - loads its defaults (~/.config/dask/jobqueue.yaml)
        except ImportError:
            return []  # reported when the cluster is chosen (the extra to install)
        for key in ("cores", "memory"):
            if key not in opts and dask.config.get(f"jobqueue.slurm.{key}", None) is None:
                out.append(f"[cluster.slurm]: {key} is required (no default in your dask config); set it in the "
                           f"spec or with --cluster-option {key}=... (e.g. {key} = {self.options[key].example})")
        cores, procs = opts.get("cores"), opts.get("processes")
        if _is_int(cores) and _is_int(procs) and procs > cores:
            out.append(f"[cluster.slurm]: processes = {procs} exceeds cores = {cores}; give each worker process at "
                       f"least one core (processes <= cores)")
        return out

    def _kwargs(self, opts):
        import dask

        cores = opts.get("cores", dask.config.get("jobqueue.slurm.cores", None))
        procs = opts.get("processes", cores)
        run_threads = max(1, int(cores) // int(procs))
        # the numerical libraries read their thread counts at import: export them before the worker starts
        from .executors import thread_env

        exports = " ".join(f"{k}={v}" for k, v in thread_env(run_threads).items())
        kw = dict(cores=cores, processes=procs, job_name="meanfield",
                  job_script_prologue=[f"export {exports}"] + list(opts.get("job_script_prologue", [])),
                  worker_extra_args=["--resources", f"{RESOURCE}=1"])
        for key in ("memory", "walltime", "queue", "account", "python", "interface", "local_directory",
                    "log_directory", "job_extra_directives"):
            if key in opts:
                kw[key] = opts[key]
        return kw

    def n_jobs(self, opts, workers):
        if "jobs" in opts:
            return opts["jobs"]
        import dask

        cores = opts.get("cores", dask.config.get("jobqueue.slurm.cores", None))
        procs = opts.get("processes", cores)
        return max(1, math.ceil(workers / procs)) if workers else 1

    def _cluster(self, opts):
        from dask_jobqueue import SLURMCluster

        return SLURMCluster(**self._kwargs(opts))

    def start(self, stack, opts, workers, threads, max_crashes):
        # (threads: unused; each job's runs get cores // processes threads, exported in its script)
        cluster = stack.enter_context(self._cluster(opts))
        cluster.scale(jobs=self.n_jobs(opts, workers))
        return cluster, {"resources": {RESOURCE: 1}}

    def job_script(self, opts, workers):
        with self._cluster(opts) as cluster:
            return cluster.job_script()


register_cluster(SlurmKind())
