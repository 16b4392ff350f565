r"""The particle wing's run: set-up, finite-width ensembles and final metrics of a particle model.

The orchestrator (:func:`meanfield.run.run`) calls :func:`setup`, the registered limit method
(``particles``: :class:`meanfield.twolayer.limit.ParticlesMethod`), then :func:`train`, and merges
what each side recorded. Everything here is generic over :class:`meanfield_solvers.models.ParticleModel`:
the model and its task come from the model kind (``model.kind``; the built-in two-layer network
is :mod:`meanfield.twolayer.network`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from meanfield_solvers.state import ParticleState

from .. import seeding
from ..core.backend import choose_backend
from ..core.points import points_record, read_points
from ..core.registry import Side, get_model_kind
from ..health import Health
from ..march import march
from .dynamics import active, floating, initial_masses, needs_stream
from .observe import Observer, primary_risk
from .train import sgd_step

__all__ = ["ParticleSetup", "setup", "train", "final_metrics", "stack_records", "snapshot_indices"]

#: record on a grid both sides hit exactly when one step is a multiple of the other
COMMON_GRID = True


@dataclass
class ParticleSetup:
    """A prepared particle run: the config, the model and its task, the backend, the data."""

    cfg: object
    kind: str
    model: object
    task: object
    backend_name: str
    backend: object
    dtype: np.dtype
    expectation: str
    observer: Observer
    points: np.ndarray
    train_set: tuple | None
    arrays: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def setup(cfg, log) -> ParticleSetup:
    """Build the model, task, data sets and observer of a validated config."""
    backend_name, backend = choose_backend(cfg.run.backend, log)
    dtype = np.dtype(cfg.run.dtype)
    seed = cfg.run.seed
    kind = get_model_kind(cfg.model.kind)
    model, task = kind.build(cfg)
    obstacles = kind.analytic_obstacles(cfg.to_dict())
    expectation = cfg.limit.expectation
    if expectation == "auto":
        expectation = "analytic" if not obstacles else "mc"
    test = task.test_set(seeding.stream(seed, "test_set"), cfg.eval.n_test)
    test = tuple(a.astype(dtype) for a in test) if test is not None else None
    if cfg.eval.points:  # the user's own (validated: (n, d), finite)
        points = read_points(cfg.eval.points, task.d).astype(dtype)
    else:
        points = task.eval_points(seeding.stream(seed, "eval_points"), cfg.eval.n_points).astype(dtype)
    train_set = None
    if task.fixed_train is not None:
        train_set = task.fixed_train
    elif cfg.train.algorithm in ("sgd", "gd"):
        train_set = task.sample(seeding.stream(seed, "train_set"), cfg.train.n_train)
    if train_set is not None:
        train_set = tuple(a.astype(dtype) for a in train_set)
    # the population risk only exists where every expectation has a closed form
    population = task.population if not obstacles else None
    observer = Observer(model, backend, population, test, points, train_set, task.loss,
                        weight_decay=cfg.dynamics.weight_decay if active(cfg) else None)
    arrays = {"x_eval": points}
    arrays.update(task.arrays())
    summary = {"expectation": expectation, "backend": backend_name, "columns": list(model.columns),
               "plot_columns": list(model.plot_columns), "task_dims": task.array_dims()}
    if cfg.eval.points:
        summary["eval_points"] = points_record(cfg.eval.points)
    return ParticleSetup(cfg, model.kind, model, task, backend_name, backend, dtype, expectation, observer, points,
                         train_set, arrays, summary)


def largest_product_flops(st: ParticleSetup) -> float:
    """Floating-point operations of the largest matrix product one step of this run issues (the rule of
    :func:`meanfield_solvers.threads.blas_threads_for`): the particles or all networks' neurons against
    the Monte Carlo sample (only where the expectation is sampled), the training set, a minibatch, each
    other or the test sample, times 2d."""
    cfg = st.cfg
    units = cfg.limit.particles if cfg.limit.method != "none" else 0
    if cfg.train.seeds > 0:
        units = max(units, cfg.train.seeds * max(cfg.train.widths))
    rows = max(cfg.train.n_train, cfg.train.batch, cfg.eval.n_test, units,
               cfg.limit.mc_samples if st.expectation == "mc" else 0)
    return 2.0 * units * rows * cfg.task.d


def snapshot_indices(cfg, T):
    """Indices into the recording grid of the ``time.snapshots`` snapshot times (evenly spread)."""
    K = min(cfg.time.snapshots, T)
    return np.unique(np.round(np.linspace(0, T - 1, K)).astype(int)) if K else np.zeros(0, int)


def stack_records(records, template=None):
    """Stack observer dicts over time; records never reached (divergence) are NaN.

    ``template``: an observation giving the keys and shapes when no record was accepted (a side
    refused at its first record, :attr:`meanfield.march.MarchResult.refused`)."""
    first = next((r for r in records if r is not None), template)
    return {k: np.stack([np.asarray(r[k], dtype=np.float64) if r is not None else np.full(np.shape(v), np.nan)
                         for r in records])
            for k, v in first.items()}


def train(st: ParticleSetup, grid, limit: Side | None, progress, log) -> Side:
    """Train ``train.seeds`` networks of each width, coupled to the limit's particles when asked."""
    cfg, model = st.cfg, st.model
    seed, dtype = cfg.run.seed, st.dtype
    T = len(grid.t)
    snap_idx = snapshot_indices(cfg, T)
    S = cfg.train.seeds
    widths = list(cfg.train.widths) if S > 0 else []
    particles0 = limit.extra.get("particles0") if limit is not None else None
    coupled = coupled_widths(cfg, widths, particles0 is not None)
    M = cfg.limit.particles
    side = Side(summary={"coupling": bool(coupled)})
    arrays = side.arrays
    if coupled:
        # the seed variance of a coupled width is that of a subsample of a finite pool: smaller by 1 - N/M
        side.summary["coupling_factor"] = {str(N): 1.0 - N / M for N in widths if N in coupled}
        note = (f"coupled to the limit: widths {sorted(coupled)} start from subsamples of its {M} particles, "
                f"so their seed variance is smaller by (1 - N/M) = "
                + ", ".join(f"{1 - N / M:.3g}" for N in sorted(coupled)) + " (arrays: coupling_factor)")
        side.messages.append(note)
        log(note)
    elif cfg.train.coupling == "auto" and particles0 is not None and widths:
        note = (f"not coupled: width {max(widths)} is not smaller than the limit's {M} particles, so every "
                "width is drawn independently (train.coupling = 'auto')")
        side.messages.append(note)
        log(note)
    nn = {k: np.full((len(widths), S, T), np.nan) for k in ("risk_pop", "risk_test", "risk_train")}
    f_nn = np.full((len(widths), S, T, st.points.shape[0]), np.nan)
    if widths:
        side.summary["seconds_train"] = {}
    for wi, N in enumerate(widths):
        if N in coupled:
            drawn = [model.subsample(particles0, N, seeding.stream(seed, "nn_init", N, s)) for s in range(S)]
            theta0 = np.stack([th for th, _ in drawn])
            arrays[f"coupling_index_N{N}"] = np.stack([idx for _, idx in drawn]).astype(np.int64)
        else:
            theta0 = np.stack([model.draw(seeding.stream(seed, "nn_init", N, s), N) for s in range(S)])
        step, residency = sgd_step(cfg, model, st.backend, st.task, st.train_set,
                                   [seeding.stream(seed, "nn_data", N, s) for s in range(S)], S, dtype,
                                   log if wi == 0 else None)
        t0 = time.perf_counter()
        # np.unique keeps the steps increasing; repeated steps map back through `inv`
        uniq, inv = np.unique(grid.steps_nn, return_inverse=True)
        rng = tuple(seeding.stream(seed, "nn_noise", N, s) for s in range(S)) if needs_stream(cfg) else None
        theta0, mass = initial_masses(cfg, theta0.astype(dtype))
        res = march(step, ParticleState(theta0, mass=mass, rng=rng), uniq, cfg.train.lr, st.observer,
                    sorted(set(inv[snap_idx].tolist())), desc=f"N={N}", progress=progress, residency=residency,
                    health=Health.of(st.observer, cfg.train.divergence_factor))
        side.summary["seconds_train"][str(N)] = time.perf_counter() - t0
        rec = stack_records(res.records, res.refused)
        for k in nn:
            nn[k][wi] = rec[k].T[:, inv]
        f_nn[wi] = np.moveaxis(rec["f"], 0, 1)[:, inv]
        if "energy" in rec:
            if "energy_nn" not in arrays:
                arrays["energy_nn"] = np.full((len(widths), S, T), np.nan)
            arrays["energy_nn"][wi] = rec["energy"].T[:, inv]
        if len(snap_idx):
            arrays[f"neurons_nn_N{N}"] = np.stack([res.snapshots.get(int(inv[i]), np.full_like(theta0, np.nan))
                                                   for i in snap_idx])
            if mass is not None:
                arrays[f"masses_nn_N{N}"] = np.stack([res.snapshot_masses.get(int(inv[i]), np.full(mass.shape, np.nan))
                                                      for i in snap_idx])
        # the last kept state: the final one, or the last finite / accepted one of a diverged side (the
        # snapshots after a divergence are NaN: they were never reached)
        arrays[f"neurons_nn_final_N{N}"] = np.array(res.theta, dtype=dtype, copy=True)
        for note in res.notes:  # a risk at its precision floor: recorded as NaN from there on
            side.messages.append(note)
            log(note)
        if res.status != "completed":
            side.diverged.append({"side": f"width {N}", "status": res.status, "step": res.diverged_step,
                                  "time": res.diverged_time, "kept_step": res.kept_step, "message": res.message})
            log(res.message)
    if widths:
        arrays["widths"] = np.asarray(widths, dtype=np.int64)
        # factor by which coupling shrinks each width's seed variance (1: independent draws)
        arrays["coupling_factor"] = np.array([1.0 - N / M if N in coupled else 1.0 for N in widths])
        arrays["t_nn"] = grid.t_nn
        if limit is None and len(snap_idx):  # the snapshot times (the limit records them when it runs)
            arrays["snap_t"] = grid.t[snap_idx]
        primary = primary_risk(nn, st.observer.available)
        arrays.update(risk_nn=primary, risk_nn_pop=nn["risk_pop"], risk_nn_test=nn["risk_test"],
                      risk_nn_train=nn["risk_train"], f_nn=f_nn)
    return side


def coupled_widths(cfg, widths, have_limit) -> set:
    """The widths whose networks start from subsamples of the limit's particles.

    ``train.coupling = true``: every width (validation refused widths > limit.particles, and widths
    equal to it with two seeds or more);
    ``'auto'``: every width when the limit ran and every width is < limit.particles, else none — a
    width that takes the whole pool (N = M) would make every seed the same network, and coupling
    only some widths would give the widths different seed variances (a width scan's slope would mix
    the two); ``false``: none.
    """
    c = cfg.train.coupling
    if not have_limit or c is False or not widths or floating(cfg):  # (a floating population's rows are
        return set()                                                   # slots: no identity to follow)
    if c is True or max(widths) < cfg.limit.particles:
        return set(widths)
    return set()


def final_metrics(arrays, widths):
    """Summary numbers: the limit's final risk, each width's final seed-mean risk and sup-gap."""
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
