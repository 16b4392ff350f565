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
import time

from meanfield_solvers.heap import retain_freed_memory

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
    """The output directory cannot be used (it already holds a result)."""


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
        summary["status"] = "diverged"
        summary["diverged"] = diverged
    widths = list(cfg.train.widths) if cfg.train.seeds > 0 else []
    summary.update(wing.final_metrics(arrays, widths))
    summary["seconds_total"] = time.perf_counter() - t_start
    summary["versions"] = versions()
    summary["provenance"] = provenance(summary.get("backend"))
    declared = summary.pop("task_dims", {}) or {}
    summary["dims"] = {k: declared.get(k) or dims_of(k) for k in arrays}
    return Result(arrays, summary, cfg)


def run_to_dir(cfg, out, overwrite: bool = False, progress="auto", log=None) -> Result:
    """Run and write ``out/config.toml``, ``out/result.npz``, ``out/summary.json`` atomically.

    Refuses (before computing anything) a directory that already holds a finished run unless
    ``overwrite``; a refused or failed run never touches files already there.
    """
    if isinstance(cfg, dict):
        cfg = _config.from_dict(cfg)
    if os.path.exists(os.path.join(out, "summary.json")) and not overwrite:
        raise RunDirError(f"{out} already holds a finished run; choose another --out or pass --overwrite")
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"{out} exists and is not a directory; choose another --out")
    result = run(cfg, progress=progress, log=log)
    result.save(out)
    return result
