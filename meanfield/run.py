"""The one orchestrator: a validated config in, the limit and the finite-width networks side by side out.

``run(config) -> Result`` does the work in memory; ``run_to_dir(config, out)`` also writes
``config.toml``, ``result.npz`` and ``summary.json`` atomically. See the README for every key.

Every run goes the same way, whatever the model:

1. the config is validated (the generic checks, the registered limit method's and model kind's own);
2. the run's *wing* prepares it — :mod:`meanfield.twolayer.wing` for particle models (the two-layer
   network and any registered model kind), :mod:`meanfield.deep.wing` for deep muP networks;
3. both sides are recorded on one time grid (:func:`meanfield.core.grid.time_grid`);
4. the limit method registered under ``limit.method`` solves the limit
   (:mod:`meanfield.core.registry`), the wing trains the networks;
5. one :class:`~meanfield.core.result.Result` with named dimensions and provenance comes out.
"""
from __future__ import annotations

import os
import shutil
import time

from meanfield_solvers.heap import retain_freed_memory
from meanfield_solvers.threads import blas_threads_for

from . import checkpoint
from . import config as _config
from .core.grid import record_grid, time_grid  # noqa: F401  (record_grid: re-exported)
from .core.progress import resolve as resolve_progress
from .core.provenance import provenance, versions
from .core.registry import get_limit_method
from .core.result import Result, dims_of, load  # noqa: F401  (load: re-exported)
from .deep import limits as _deep_limits  # noqa: F401  (registers dmft, dmft_linear, ntk)
from .deep import wing as deep_wing
from .deep.checks import is_deep
from .twolayer import limit as _particle_limit  # noqa: F401  (registers particles)
from .twolayer import network as _network  # noqa: F401  (registers model.kind = 'network')
from .twolayer import wing as particle_wing

__all__ = ["Result", "run", "run_to_dir", "load", "record_grid", "RunDirError", "WINGS"]

#: the wings, by family: particle models, deep networks
WINGS = {"particle": particle_wing, "deep": deep_wing}


class RunDirError(RuntimeError):
    """The output directory cannot be used (it holds a result, is not writable, or too full)."""


def family_of(cfg) -> str:
    """``'deep'`` for deep runs (``model.depth >= 2`` or a deep limit method), else ``'particle'``."""
    return "deep" if is_deep(cfg) else "particle"


def run(cfg, progress="auto", log=None) -> Result:
    """Simulate the infinite-width limit and train the finite-width ensembles of ``cfg``.

    Parameters
    ----------
    cfg : Config, dict, or path of a TOML file
    progress : {"auto", "bar", "text", "none"} or bool
        Feedback while it runs (:mod:`meanfield.core.progress`): ``auto`` shows bars where a human
        watches (a terminal or a notebook) and a plain line every 10 s elsewhere (logs, pipes);
        ``True``/``False`` mean ``auto``/``none``.
    log : callable(str) or None
        Receives one-line notices (backend choice, divergence).
    """
    resolve_progress(progress)  # a bad mode is refused before any work
    retain_freed_memory()  # see meanfield_solvers.heap: numpy temporaries otherwise page-fault every step
    if isinstance(cfg, dict):
        cfg = _config.from_dict(cfg)
    elif isinstance(cfg, (str, os.PathLike)):
        cfg = _config.load(cfg)
    log = log or (lambda s: None)
    t_start = time.perf_counter()
    wing = WINGS[family_of(cfg)]
    setup = wing.setup(cfg, log)
    grid = time_grid(cfg, common=wing.COMMON_GRID)
    arrays = {"t": grid.t, **setup.arrays}
    summary = {"kind": setup.kind, "status": "completed", "dtype": cfg.run.dtype, "messages": [], **setup.summary}
    limit = None
    # small products: one BLAS thread (meanfield_solvers/threads.py; the deep wing and the DMFT pin their own)
    flops = getattr(wing, "largest_product_flops", None)
    with blas_threads_for(flops(setup) if flops else float("inf")):
        if cfg.limit.method != "none":
            limit = get_limit_method(cfg.limit.method).run(setup, grid, progress, log)
        nets = wing.train(setup, grid, limit, progress, log)
    diverged = []
    for side in (limit, nets):
        if side is None:
            continue
        arrays.update(side.arrays)
        summary.update(side.summary)
        summary["messages"] += side.messages
        diverged += side.diverged
    if diverged:
        # 'failed' (a record that cannot be vouched for: precision lost, a risk NaN from the start)
        # outranks 'diverged'; either way the run is not 'completed' (meanfield.health)
        summary["status"] = "failed" if any(d.get("status") == "failed" for d in diverged) else "diverged"
        summary["diverged"] = diverged
    widths = list(cfg.train.widths) if cfg.train.seeds > 0 else []
    summary.update(wing.final_metrics(arrays, widths))
    summary["seconds_total"] = time.perf_counter() - t_start
    summary["versions"] = versions()
    summary["provenance"] = provenance(summary.get("backend"))
    declared = summary.pop("task_dims", {}) or {}
    summary["dims"] = {k: declared.get(k) or dims_of(k) for k in arrays}
    return Result(arrays, summary, cfg)


def check_out(cfg, out, overwrite: bool = False, log=None, resuming: bool = False):
    """Everything about ``out`` that can be known before computing, refused as :class:`RunDirError`.

    * the leftovers of a killed earlier run there are repaired or removed
      (:func:`meanfield.store.recover_run_dir`: ``.tmp-*`` files, staging directories, an
      interrupted ``--overwrite``);
    * a directory holding the checkpoint of an interrupted run is refused unless ``resuming`` it
      or ``overwrite`` (start over), so that a stopped run is never lost by running into its folder;
    * a directory holding a finished run is refused unless ``overwrite``;
    * the location must be a directory (or creatable under one) where files can be written, with
      free space for the estimated ``result.npz`` (:func:`meanfield.core.memory.result_bytes`,
      twice over: the file and a margin for the other files and the staging of an overwrite;
      once more with checkpoints).
    """
    from . import store
    from .core.memory import result_bytes

    for note in store.recover_run_dir(out):
        (log or (lambda s: None))(note)
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"--out {out} exists and is not a directory; choose another --out")
    if not resuming and not overwrite and checkpoint.exists(out) and not _complete_checkpoint(out):
        raise RunDirError(f"{out} holds the checkpoint of an interrupted run; continue it with meanfield run "
                          f"--resume {out}, or start over with --overwrite")
    if os.path.exists(os.path.join(out, "summary.json")) and not overwrite:
        raise RunDirError(f"{out} already holds a finished run; choose another --out or pass --overwrite")
    try:
        need = (2 + bool(checkpoint.schedule(cfg.run.checkpoint_every))) * result_bytes(cfg.to_dict()) + 1e6
        store.check_output_location(out, need)
        if os.path.exists(os.path.join(out, "summary.json")):  # the new run is staged beside it
            store.check_output_location(os.path.dirname(os.path.realpath(out)), need)
    except store.OutputLocationError as e:
        raise RunDirError(str(e)) from None


def _complete_checkpoint(out) -> bool:
    from . import store

    try:
        return bool(store.load_json(os.path.join(checkpoint.folder_of(out), checkpoint.MANIFEST)).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def _continued_from(cfg, out, resume):
    """The checkpoint manifest of ``out`` that this run continues (see :func:`run_to_dir`), or None."""
    if not resume:
        return None
    if not checkpoint.exists(out):
        if resume == "auto":
            return None
        if os.path.isfile(os.path.join(out, "summary.json")):
            raise checkpoint.CheckpointError(f"the run in {out} is finished: nothing to resume")
        raise checkpoint.CheckpointError(f"{out} holds no checkpoint to resume: only a run with "
                                         "run.checkpoint_every set, or stopped with Ctrl-C, leaves one")
    man = checkpoint.read(out)
    if man["config"] != _config.to_toml(cfg):
        if resume == "auto":
            return None
        raise checkpoint.CheckpointError(f"the checkpoint in {out} is of another config than the one given")
    if man.get("complete") and os.path.isfile(os.path.join(out, "summary.json")):
        if resume == "auto":
            return None
        raise checkpoint.CheckpointError(f"the run in {out} is finished: nothing to resume (continue it to a later "
                                         f"time with meanfield run --extend t_max=... {out})")
    return man


def run_to_dir(cfg, out, overwrite: bool = False, progress="auto", log=None, *, resume=False,
               sigint: bool = False, source: dict | None = None) -> Result:
    """Run and write ``out/config.toml``, ``out/result.npz``, ``out/summary.json`` atomically.

    Refuses (before computing anything, :func:`check_out`) a directory that already holds a
    finished run unless ``overwrite``, and a location that is unwritable or too full for the
    estimated result; a refused or failed run never touches a finished run already there, and a
    replaced one is swapped whole (:func:`meanfield.store.write_run`).

    Checkpoints (:mod:`meanfield.checkpoint`; README, "Long runs"): with ``run.checkpoint_every``
    set, the state of both sides is saved into ``out/checkpoint`` while the run computes, and the
    checkpoint at its end is kept (an extension continues it).

    Parameters
    ----------
    cfg : Config or dict
        What to run (its resolved form is written as ``out/config.toml``).
    out : str or path
        The run's directory.
    overwrite : bool
        Replace a finished run already in ``out`` (swapped whole, atomically).
    progress : {'auto', 'bar', 'text', 'none'}
        Feedback while it runs, as for :func:`run`.
    log : callable(str) or None
        Receives one-line notices.
    resume : False, True or ``"auto"``
        True: continue the interrupted run whose checkpoint is in ``out`` (the config must be the
        checkpoint's); ``"auto"``: continue it when there is one of this config, else start (scan
        workers); False: a checkpoint of an interrupted run in ``out`` is refused unless
        ``overwrite`` (this run then starts over).
    sigint : bool
        Ctrl-C writes a checkpoint at the next step boundary and stops the run with
        :class:`meanfield.checkpoint.Interrupted` (``meanfield run``).
    source : dict or None
        A checkpoint manifest (:func:`meanfield.checkpoint.read`) to continue from, of another
        directory or config (``--extend``, :mod:`meanfield.extend`).

    Returns
    -------
    Result
        The run's result, the one written to ``out`` (:func:`meanfield.load` reads it back).
    """
    if isinstance(cfg, dict):
        cfg = _config.from_dict(cfg)
    out = os.fspath(out)
    man = source if source is not None else _continued_from(cfg, out, resume)
    check_out(cfg, out, overwrite or man is not None, log, resuming=man is not None or resume == "auto")
    if overwrite and man is None and checkpoint.exists(out) and not _complete_checkpoint(out):
        # --overwrite starts an interrupted run over: its checkpoint must not be resumed in its stead
        shutil.rmtree(checkpoint.folder_of(out), ignore_errors=True)
    every = cfg.run.checkpoint_every
    keep = checkpoint.schedule(every) is not None
    ck = checkpoint.Checkpointer(out, _config.to_toml(cfg), every, source=man) if (keep or sigint or man) else None
    with checkpoint.lock(out, keep or man is not None), checkpoint.activate(ck), \
            checkpoint.stop_on_sigint(ck if sigint else None, log or (lambda s: None)):
        result = run(cfg, progress=progress, log=log)
    if ck is not None:
        result.summary["checkpoint"] = {"every": every, "saves": ck.saves + keep,
                                        "continued_from": checkpoint.describe(man) if man else None}
    if keep:
        ck.finish()  # before the result: a finished run always has the checkpoint at its end
    result.save(out, carry=(checkpoint.FOLDER,) if keep else ())
    if not keep:  # a checkpoint of an interruption, now superseded by the finished run
        shutil.rmtree(checkpoint.folder_of(out), ignore_errors=True)
    return result
