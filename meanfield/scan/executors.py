"""Executors: where the runs of a scan are computed.

Both executors call :func:`execute_run` in a worker process; it writes the run's directory with
:func:`meanfield.run.run_to_dir` (atomic files, ``summary.json`` last) and returns a small dict
of plain values. Workers never touch the index: the coordinator records what they report.

* :class:`LocalExecutor`: K worker processes started with the *spawn* method (no fork of a
  process holding sqlite handles, thread pools or Numba state). Each worker is pinned to
  ``cores // K`` threads by setting ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS``, ... in the environment *before* it is spawned (those libraries read
  them once, at import), so K workers never oversubscribe the cores. Each worker runs one run
  at a time and the coordinator knows which, so a worker that dies (segfault, OOM killer,
  ``kill -9``) is charged to exactly that run: the run goes back to the queue, and after
  ``max_crashes`` deaths it is marked failed and not retried. A worker whose coordinator has died
  exits within half a second (a watchdog thread polls the parent pid), so ``kill -9`` of the
  coordinator leaves no orphan computing.
* :class:`DaskExecutor`: the same function submitted through a ``dask.distributed`` client,
  either to ``--scheduler ADDRESS`` or to a LocalCluster of K single-threaded, pinned worker
  processes. A worker death is retried by dask's scheduler; after ``max_crashes`` deaths
  (``distributed.scheduler.allowed-failures`` = max_crashes - 1 on a LocalCluster; a remote
  scheduler uses its own setting) the task ends with ``KilledWorker`` and the run is failed.

A run directory is locked (``fcntl.flock`` on ``<run>/.lock``) while a worker computes it: two
processes that reach the same run (an orphaned worker of a killed coordinator, a dask task
rescheduled after a network hiccup) never compute it twice; the second one finds
``summary.json`` once it gets the lock and reports the existing result.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback

__all__ = ["execute_run", "LocalExecutor", "DaskExecutor", "make_executor", "threads_per_worker",
           "pinned_env", "THREAD_ENV_VARS", "TEST_HOOK_ENV", "MAX_CRASHES"]

#: Thread-count variables read at import by Numba, OpenMP, OpenBLAS, MKL, Accelerate, numexpr.
THREAD_ENV_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

#: Test-only: JSON ``{"raise": [run names], "crash": {run name: n}, "sleep": seconds}`` read by
#: workers. ``crash`` kills the worker (SIGKILL) on the first n attempts of runs of that name.
TEST_HOOK_ENV = "MEANFIELD_SCAN_TEST_HOOK"

#: A run whose worker dies this many times is failed and not retried.
MAX_CRASHES = 3


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Threads each of ``workers`` processes may use so that together they fill the cores once."""
    return max(1, available_cores() // max(1, workers))


def thread_env(threads: int) -> dict:
    return {k: str(threads) for k in THREAD_ENV_VARS}


@contextlib.contextmanager
def pinned_env(threads: int):
    """Temporarily set the thread-count variables (a spawned child copies the environment)."""
    old = {k: os.environ.get(k) for k in THREAD_ENV_VARS}
    os.environ.update(thread_env(threads))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- the work of a worker
def _test_hook(cfg, out_dir):
    spec = os.environ.get(TEST_HOOK_ENV)
    if not spec:
        return
    hook = json.loads(spec)
    name = cfg.run.name
    if hook.get("sleep"):
        time.sleep(float(hook["sleep"]))
    if name in hook.get("raise", ()):
        raise RuntimeError(f"test hook: run {name!r} raises")
    n = hook.get("crash", {}).get(name)
    if n:
        marker = os.path.join(out_dir, ".test-crashes")
        done = int(open(marker).read() or 0) if os.path.exists(marker) else 0
        if done < n:
            with open(marker, "w") as fh:
                fh.write(str(done + 1))
            os.kill(os.getpid(), signal.SIGKILL)


def execute_run(rid: str, config_json: str, out_dir: str) -> dict:
    """Compute one run into ``out_dir`` (in a worker) and report its outcome.

    Parameters
    ----------
    rid : str
        The run id (echoed back).
    config_json : str
        The canonical resolved config (JSON, so nothing but plain text crosses processes).
    out_dir : str
        The run's directory; ``summary.json`` there marks it finished.

    Returns
    -------
    dict
        ``id``, ``status`` (completed, diverged or failed), ``error`` (text or None), ``seconds``
        (wall time here), ``seconds_run`` (the run's own total), ``reused`` (the directory was
        already finished), ``pid``.
    """
    import fcntl

    from .. import config as C
    from .. import store
    from ..run import run_to_dir
    from .runner import set_aside_damaged

    t0 = time.perf_counter()
    out = {"id": rid, "status": "failed", "error": None, "seconds": None, "seconds_run": None,
           "reused": False, "pid": os.getpid(), "threads": None}
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd = os.open(os.path.join(out_dir, ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    except OSError:
        out["error"] = traceback.format_exc(limit=3)
        return out
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
        summ = os.path.join(out_dir, "summary.json")
        set_aside_damaged(out_dir)  # a damaged run (checksums) is computed again
        if os.path.isfile(summ):
            s = store.load_json(summ)
            out.update(status=s.get("status", "completed"), seconds_run=s.get("seconds_total"), reused=True,
                       error=_diverged_text(s))
            return out
        store.clean_partial(out_dir)
        cfg = C.from_dict(json.loads(config_json))
        _test_hook(cfg, out_dir)
        res = run_to_dir(cfg, out_dir, resume="auto", progress="none")  # a killed attempt's checkpoint is
        # continued; the scan reports per run, not per step
        out.update(status=res.summary["status"], seconds_run=res.summary.get("seconds_total"),
                   error=_diverged_text(res.summary))
    except Exception:  # noqa: BLE001 - any failure of one run is recorded, the scan goes on
        out["error"] = traceback.format_exc(limit=-8)[-4000:]
    finally:
        os.close(fd)
        out["seconds"] = time.perf_counter() - t0
        numba = sys.modules.get("numba")  # imported by the run; its pool size shows the pinning
        out["threads"] = numba.config.NUMBA_NUM_THREADS if numba is not None else None
    return out


def _diverged_text(summary):
    if summary.get("status") not in ("diverged", "failed"):  # failed: a record check refused (meanfield.health)
        return None
    return "; ".join(d.get("message", "") for d in summary.get("diverged", [])) or "diverged"


# --------------------------------------------------------------------------- local process pool
def _watch_parent(parent_pid):
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(1)


def _worker_main(conn, parent_pid):
    """Loop of a local worker: receive a task, execute it, send the result; None ends it."""
    # Ctrl-C reaches the whole process group: the coordinator alone decides what to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(execute_run(*task))


def _death_text(exitcode):
    if exitcode is None:
        return "worker process vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process killed by {name}"
    return f"worker process exited with code {exitcode}"


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while spawning: an ignored signal stays ignored across exec, and Python then
    installs no KeyboardInterrupt handler, so a Ctrl-C during a worker's start-up (imports) cannot
    kill it with a traceback; the coordinator alone handles Ctrl-C and stops the workers."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class _Slot:
    def __init__(self, proc, conn, name):
        self.proc, self.conn, self.name, self.task = proc, conn, name, None


class LocalExecutor:
    """K spawned worker processes on this machine, one run each at a time.

    Parameters
    ----------
    workers : int
        Number of processes (default: the available cores).
    threads : int or None
        Threads per worker (default ``cores // workers``, at least 1).
    max_crashes : int
        Worker deaths after which a run is failed.
    """

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None, max_crashes: int = MAX_CRASHES):
        self.workers = max(1, int(workers or available_cores()))
        self.threads = threads or threads_per_worker(self.workers)
        self.max_crashes = max_crashes
        self._count = 0

    def _spawn(self, ctx):
        parent_conn, child_conn = ctx.Pipe()
        self._count += 1
        with pinned_env(self.threads), _sigint_ignored():
            proc = ctx.Process(target=_worker_main, args=(child_conn, os.getpid()), daemon=True,
                               name=f"meanfield-scan-worker-{self._count}")
            proc.start()
        child_conn.close()
        return _Slot(proc, parent_conn, f"local-{self._count}:pid{proc.pid}")

    def map(self, tasks, events):
        """Compute ``tasks`` (``(id, config_json, out_dir)`` tuples); report through ``events``.

        ``events.started(id, worker)``, ``events.finished(result)`` and
        ``events.crashed(id, error, final=False) -> bool`` (True: queue the run again) are called
        in this process, in order.
        """
        import multiprocessing as mp
        from multiprocessing.connection import wait

        queue = collections.deque(tasks)
        if not queue:
            return
        ctx = mp.get_context("spawn")
        slots = [self._spawn(ctx) for _ in range(min(self.workers, len(queue)))]
        try:
            while True:
                for s in slots:
                    if s.task is None and queue and s.proc.is_alive():
                        task = queue.popleft()
                        try:
                            s.conn.send(task)
                        except OSError:  # the worker died while idle: not this run's fault
                            queue.appendleft(task)
                            continue
                        s.task = task
                        events.started(task[0], s.name)
                busy = [s for s in slots if s.task is not None]
                if not busy and not queue:
                    break
                if not slots:
                    slots.append(self._spawn(ctx))
                    continue
                ready = set(wait([s.conn for s in busy] + [s.proc.sentinel for s in slots]))
                for s in list(slots):
                    if s.task is not None and s.conn in ready:
                        try:
                            res = s.conn.recv()
                        except (EOFError, OSError):
                            res = None  # died mid-send: handled as a death below
                        if res is not None:
                            s.task = None
                            events.finished(res)
                    if s.proc.sentinel in ready or not s.proc.is_alive():
                        s.proc.join(timeout=1.0)
                        if s.task is not None:
                            task, s.task = s.task, None
                            if events.crashed(task[0], _death_text(s.proc.exitcode)):
                                queue.append(task)
                        s.conn.close()
                        slots.remove(s)
                        if queue:
                            slots.append(self._spawn(ctx))
        finally:
            self._shutdown(slots)

    @staticmethod
    def _shutdown(slots):
        for s in slots:
            if s.task is None and s.proc.is_alive():
                with contextlib.suppress(OSError, BrokenPipeError):
                    s.conn.send(None)
            else:
                s.proc.terminate()  # interrupted mid-run: its directory has no summary.json
        deadline = time.monotonic() + 5.0
        for s in slots:
            s.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if s.proc.is_alive():
                s.proc.kill()
                s.proc.join()
            with contextlib.suppress(OSError):
                s.conn.close()


# --------------------------------------------------------------------------- dask
class DaskExecutor:
    """Runs submitted to a ``dask.distributed`` scheduler: one given by address, or a cluster
    started here from the registry of cluster kinds (:mod:`meanfield.scan.clusters`).

    Parameters
    ----------
    workers : int
        Worker processes (LocalCluster: its size; SLURM: the jobs needed for that many, unless
        the ``jobs`` option says otherwise). Ignored with ``scheduler``.
    scheduler : str or None
        Address of a running scheduler, e.g. ``tcp://10.0.0.5:8786``.
    threads : int or None
        Threads per LocalCluster worker process for the numerical libraries.
    cluster : str or None
        Cluster kind to start (default ``'local'``; not with ``scheduler``).
    cluster_options : dict or None
        The kind's options (resources), already checked by :func:`make_executor`.
    """

    name = "dask"

    def __init__(self, workers: int | None = None, scheduler: str | None = None, threads: int | None = None,
                 max_crashes: int = MAX_CRASHES, cluster: str | None = None, cluster_options: dict | None = None):
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("--executor dask needs dask.distributed: pip install 'meanfield-dynamics[dask]'") from None
        self.workers = int(workers) if workers else None
        self.scheduler = scheduler
        self.threads = threads or threads_per_worker(self.workers or available_cores())
        self.max_crashes = max_crashes
        self.cluster = cluster or "local"
        self.cluster_options = dict(cluster_options or {})
        self._submit_kwargs = {}

    def _client(self, stack):
        import dask
        from distributed import Client

        from .clusters import get_cluster

        if self.scheduler:
            return stack.enter_context(Client(self.scheduler))
        # allowed-failures is read when the scheduler starts (here, in this process, for every
        # kind): N - 1 tolerated deaths, the Nth fails
        stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": self.max_crashes - 1}))
        cluster, self._submit_kwargs = get_cluster(self.cluster).start(stack, self.cluster_options, self.workers,
                                                                       self.threads, self.max_crashes)
        return stack.enter_context(Client(cluster))

    def map(self, tasks, events):
        """As :meth:`LocalExecutor.map`; a run's start is not observed (attempts count at its end)."""
        import uuid

        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        tasks = list(tasks)
        if not tasks:
            return
        with contextlib.ExitStack() as stack:
            client = self._client(stack)
            futs = {}
            for task in tasks:
                f = client.submit(execute_run, *task, key=f"meanfield-run-{task[0]}-{uuid.uuid4().hex[:8]}",
                                  pure=False, retries=0, **self._submit_kwargs)
                futs[f] = task
            try:
                for f in as_completed(futs):
                    rid = futs[f][0]
                    try:
                        res = f.result()
                    except KilledWorker as e:
                        events.crashed(rid, f"dask worker died while running it: {e}", final=True)
                        continue
                    except Exception:  # noqa: BLE001 - e.g. a lost connection: the run failed
                        res = {"id": rid, "status": "failed", "error": traceback.format_exc(limit=-4)[-4000:],
                               "seconds": None, "seconds_run": None, "reused": False, "pid": None}
                    res["count_attempt"] = True
                    events.finished(res)
            finally:
                for f in futs:
                    if not f.done():
                        f.cancel()


def check_scheduler(address, timeout=3.0):
    """Fail fast (ValueError) when a dask scheduler address is malformed or nothing answers there.

    A TCP connection is tried for ``timeout`` seconds before dask is asked (whose own connect
    timeout is 30 s and ends in a traceback).
    """
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(address if "://" in address else "tcp://" + address)
    if u.scheme not in ("tcp", "tls"):
        return  # inproc://, ucx://: left to dask
    try:
        host, port = u.hostname, u.port or 8786
    except ValueError:
        raise ValueError(f"--scheduler {address!r} is not an address like tcp://HOST:8786") from None
    if not host:
        raise ValueError(f"--scheduler {address!r} is not an address like tcp://HOST:8786")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"--scheduler {address}: no dask scheduler answers at {host}:{port} within {timeout:g} s "
                         f"({e.strerror or e}); start one with `dask scheduler` or check the address") from None


def make_executor(kind: str, workers=None, scheduler=None, threads=None, cluster=None, cluster_options=None,
                  spec_clusters=None):
    """``'local'`` or ``'dask'`` executor, every argument checked first (ValueError naming the fix).

    Parameters
    ----------
    kind : {'local', 'dask'}
    workers, scheduler, threads
        As :class:`DaskExecutor` (a scheduler address is checked to answer).
    cluster : str or None
        Dask cluster kind to start (:data:`meanfield.scan.clusters.CLUSTERS`); needs ``kind='dask'``,
        excludes ``scheduler``.
    cluster_options : list of str or None
        ``KEY=VALUE`` texts of ``--cluster-option``, over the spec's options of that kind.
    spec_clusters : dict or None
        The spec's ``[cluster.<kind>]`` tables (``kind -> options``), already checked key by key.
    """
    from .clusters import get_cluster, parse_cli_options

    if workers is not None and int(workers) < 1:
        raise ValueError(f"--workers {workers}: must be >= 1")
    if kind not in ("local", "dask"):
        raise ValueError(f"unknown executor {kind!r}; choose 'local' or 'dask'")
    if kind == "local":
        if scheduler:
            raise ValueError("--scheduler needs --executor dask")
        if cluster or cluster_options:
            raise ValueError("--cluster and --cluster-option need --executor dask "
                             "(e.g. --executor dask --cluster slurm)")
        return LocalExecutor(workers, threads)
    if scheduler:
        if cluster or cluster_options:
            raise ValueError("--scheduler connects to a running cluster; --cluster starts one: give one of them")
        check_scheduler(scheduler)
        return DaskExecutor(workers, scheduler, threads)
    ck = get_cluster(cluster or "local")
    try:
        __import__(ck.module)
    except ImportError:
        raise ValueError(f"--cluster {ck.name} needs {ck.module}: pip install 'meanfield-dynamics[{ck.extra}]'") from None
    opts, problems = parse_cli_options(ck, cluster_options, (spec_clusters or {}).get(ck.name))
    if not problems:
        problems += ck.problems(opts)
    if problems:
        raise ValueError("invalid cluster options:\n" + "\n".join(f"  - {p}" for p in problems))
    return DaskExecutor(workers, None, threads, cluster=ck.name, cluster_options=opts)
