"""Run orchestration: one config in, the limit and the finite-width ensemble side by side out.

``run(config) -> Result`` does the work in memory; ``run_to_dir(config, out)`` also writes
``config.toml``, ``result.npz`` and ``summary.json`` atomically. See the README for every key.
"""
from __future__ import annotations

import os
import time

import numpy as np

from solvers.heap import retain_freed_memory
from solvers.models import TwoLayer
from solvers.state import ParticleState

from . import config as _config
from . import seeding, store
from .twolayer.limit import particle_step
from .core.backend import choose_backend
from .core.grid import record_grid, time_grid  # noqa: F401  (record_grid: re-exported)
from .core.provenance import provenance, versions
from .core.result import Result, dims_of, load  # noqa: F401  (load: re-exported)
from .march import march
from .twolayer.observe import Observer
from .tasks import make_task
from .twolayer.train import sgd_step

__all__ = ["Result", "run", "run_to_dir", "load", "record_grid", "RunDirError"]


class RunDirError(RuntimeError):
    """The output directory cannot be used (it already holds a result)."""


def _model(cfg, d):
    m = cfg.model
    return TwoLayer(activation=m.activation, d=d, alpha=m.alpha, bias=m.bias,
                    lr_a=1.0 if m.train_a else 0.0, lr_w=m.lr_w, lr_b=m.lr_w, a_init=m.a_init, a_std=m.a_std,
                    a_value=m.a_value, w_std=m.w_std, b_std=m.b_std, antithetic=m.antithetic)


def run(cfg, progress: bool = False, log=None) -> Result:
    """Simulate the infinite-width limit and train the finite-width ensembles of ``cfg``.

    Parameters
    ----------
    cfg : Config, dict, or path of a TOML file
        Deep configs (``model.depth >= 2`` or ``limit.method`` in dmft, dmft_linear, ntk) are run by
        :func:`meanfield.deep.run.run_deep` (its docstring lists their result keys).
    progress : bool
        Show progress bars on stderr (only when it is a terminal).
    log : callable(str) or None
        Receives one-line notices (backend choice, divergence).
    """
    retain_freed_memory()  # see solvers.heap: numpy temporaries otherwise page-fault every step
    if isinstance(cfg, dict):
        cfg = _config.from_dict(cfg)
    elif isinstance(cfg, (str, os.PathLike)):
        cfg = _config.load(cfg)
    log = log or (lambda s: None)
    from .deep.checks import is_deep

    if is_deep(cfg):  # depth >= 2 or a dmft/dmft_linear/ntk limit: see meanfield.deep.run
        from .deep.run import run_deep

        return run_deep(cfg, progress=progress, log=log)
    t_start = time.perf_counter()
    backend_name, backend = choose_backend(cfg.run.backend, log)
    dtype = np.dtype(cfg.run.dtype)
    seed = cfg.run.seed
    task = make_task(cfg)
    d = task.d
    model = _model(cfg, d)
    expectation = cfg.limit.expectation
    if expectation == "auto":
        expectation = "analytic" if not _config.analytic_obstacles(cfg) else "mc"

    test = tuple(a.astype(dtype) for a in task.test_set(seeding.stream(seed, "test_set"), cfg.eval.n_test))
    if task.fixed_train is not None:
        points = task.fixed_train[0][: cfg.eval.n_points] if task.X_test is None else task.X_test[: cfg.eval.n_points]
    else:
        points = task.sample(seeding.stream(seed, "eval_points"), cfg.eval.n_points)[0]
    points = points.astype(dtype)
    train_set = None
    if task.fixed_train is not None:
        train_set = task.fixed_train
    elif cfg.train.algorithm in ("sgd", "gd"):
        train_set = task.sample(seeding.stream(seed, "train_set"), cfg.train.n_train)
    if train_set is not None:
        train_set = tuple(a.astype(dtype) for a in train_set)
    # the population risk only exists where every expectation has a closed form
    population = task.population if not _config.analytic_obstacles(cfg) else None
    observer = Observer(model, backend, population, test, points, train_set, task.loss)

    do_limit = cfg.limit.method != "none"
    # record on a grid both sides hit exactly when one step is a multiple of the other, so that
    # risk gaps compare the two sides at the same time
    grid = time_grid(cfg)
    steps_ref, t = grid.steps, grid.t
    T = len(t)
    K = min(cfg.time.snapshots, T)
    snap_idx = np.unique(np.round(np.linspace(0, T - 1, K)).astype(int)) if K else np.zeros(0, int)

    arrays = {"t": t, "x_eval": points}
    summary = {"status": "completed", "expectation": expectation, "backend": backend_name,
               "dtype": cfg.run.dtype, "messages": []}
    diverged = []

    # ---------------------------------------------------------------- the limit
    particles0 = None
    if do_limit:
        particles0 = model.draw(seeding.stream(seed, "init"), cfg.limit.particles)
        step, residency = particle_step(cfg, model, backend, task, expectation, dtype, log)
        t0 = time.perf_counter()
        res = march(step, ParticleState(particles0.astype(dtype)), steps_ref, cfg.limit.dt, observer, snap_idx,
                    desc="limit", progress=progress, residency=residency)
        summary["seconds_limit"] = time.perf_counter() - t0
        rec = _stack(res.records)
        primary = rec["risk_pop"] if np.any(np.isfinite(rec["risk_pop"])) else rec["risk_test"]
        arrays.update(risk_mf=primary, risk_mf_test=rec["risk_test"], risk_mf_train=rec["risk_train"], f_mf=rec["f"])
        ns = min(cfg.limit.particles, cfg.eval.max_snapshot_particles)
        arrays["snap_t"] = t[snap_idx]
        arrays["particles_mf"] = np.stack([res.snapshots.get(i, np.full_like(particles0, np.nan))[:ns] for i in snap_idx]) \
            if len(snap_idx) else np.zeros((0, ns, model.p))
        arrays["particles_mf_final"] = res.theta[:ns]
        if res.status != "completed":
            diverged.append({"side": "limit", "step": res.diverged_step, "time": res.diverged_time,
                             "message": res.message})
            log(res.message)

    # ---------------------------------------------------------------- finite widths
    S = cfg.train.seeds
    widths = list(cfg.train.widths) if S > 0 else []
    coupling = cfg.train.coupling
    if coupling == "auto":
        coupling = do_limit and bool(widths) and max(widths) <= cfg.limit.particles
    summary["coupling"] = bool(coupling)
    t_nn = None
    nn = {k: np.full((len(widths), S, T), np.nan) for k in ("risk_pop", "risk_test", "risk_train")}
    f_nn = np.full((len(widths), S, T, points.shape[0]), np.nan)
    if widths:
        steps_nn, t_nn = grid.steps_nn, grid.t_nn
        summary["seconds_train"] = {}
    for wi, N in enumerate(widths):
        if coupling:
            drawn = [model.subsample(particles0, N, seeding.stream(seed, "nn_init", N, s)) for s in range(S)]
            theta0 = np.stack([th for th, _ in drawn])
            arrays[f"coupling_index_N{N}"] = np.stack([idx for _, idx in drawn]).astype(np.int64)
        else:
            theta0 = np.stack([model.draw(seeding.stream(seed, "nn_init", N, s), N) for s in range(S)])
        step, residency = sgd_step(cfg, model, backend, task, train_set,
                                   [seeding.stream(seed, "nn_data", N, s) for s in range(S)], S, dtype,
                                   log if wi == 0 else None)
        t0 = time.perf_counter()
        # np.unique keeps the steps increasing; repeated steps map back through `inv`
        uniq, inv = np.unique(steps_nn, return_inverse=True)
        res = march(step, ParticleState(theta0.astype(dtype)), uniq, cfg.train.lr, observer, sorted(set(inv[snap_idx].tolist())),
                    desc=f"N={N}", progress=progress, residency=residency)
        summary["seconds_train"][str(N)] = time.perf_counter() - t0
        rec = _stack(res.records)
        for k in nn:
            nn[k][wi] = rec[k].T[:, inv]
        f_nn[wi] = np.moveaxis(rec["f"], 0, 1)[:, inv]
        if len(snap_idx):
            arrays[f"neurons_nn_N{N}"] = np.stack([res.snapshots.get(int(inv[i]), np.full_like(theta0, np.nan))
                                                   for i in snap_idx])
        if res.status != "completed":
            diverged.append({"side": f"width {N}", "step": res.diverged_step, "time": res.diverged_time,
                             "message": res.message})
            log(res.message)
    if widths:
        arrays["widths"] = np.asarray(widths, dtype=np.int64)
        arrays["t_nn"] = t_nn
        primary = nn["risk_pop"] if np.any(np.isfinite(nn["risk_pop"])) else nn["risk_test"]
        arrays.update(risk_nn=primary, risk_nn_pop=nn["risk_pop"], risk_nn_test=nn["risk_test"],
                      risk_nn_train=nn["risk_train"], f_nn=f_nn)
    if hasattr(task, "teacher_w"):
        arrays["teacher_w"], arrays["teacher_a"] = task.teacher_w, task.teacher_a

    if diverged:
        summary["status"] = "diverged"
        summary["diverged"] = diverged
    summary.update(_final_metrics(arrays, widths))
    summary["seconds_total"] = time.perf_counter() - t_start
    summary["versions"] = versions()
    summary["kind"] = model.kind
    summary["columns"] = list(model.columns)
    summary["provenance"] = provenance(backend_name)
    summary["dims"] = {k: dims_of(k) for k in arrays}
    return Result(arrays, summary, cfg)


def _stack(records):
    """Stack observer dicts over time; records never reached (divergence) are NaN."""
    first = next(r for r in records if r is not None)  # step 0 is always recorded
    return {k: np.stack([np.asarray(r[k], dtype=np.float64) if r is not None else np.full(np.shape(v), np.nan)
                         for r in records])
            for k, v in first.items()}


def _final_metrics(arrays, widths):
    m = {}
    if "risk_mf" in arrays:
        fin = arrays["risk_mf"][np.isfinite(arrays["risk_mf"])]
        m["risk_mf_final"] = float(fin[-1]) if fin.size else float("nan")
    if widths:
        m["risk_nn_final_mean"] = {}
        if "risk_mf" in arrays:
            m["risk_gap_sup"] = {}
        for i, N in enumerate(widths):
            r = arrays["risk_nn"][i]
            m["risk_nn_final_mean"][str(N)] = float(np.nanmean(r[:, -1])) if np.any(np.isfinite(r[:, -1])) else float("nan")
            if "risk_mf" in arrays:
                same = np.isclose(arrays["t"], arrays["t_nn"], rtol=1e-9, atol=1e-12)
                gap = np.where(same, np.abs(np.nanmean(r, axis=0) - arrays["risk_mf"]), np.nan)
                m["risk_gap_sup"][str(N)] = float(np.nanmax(gap)) if np.any(np.isfinite(gap)) else float("nan")
    return m


def run_to_dir(cfg, out, overwrite: bool = False, progress: bool = False, log=None) -> Result:
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
