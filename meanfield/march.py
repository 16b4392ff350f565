"""The time loop shared by every side of every run: step, record, detect divergence.

A step function maps ``(state, k) -> state_next``, where the state is a
:class:`meanfield_solvers.state.ParticleState` (positions, masses, random streams, step count: particle
models) or a bare array (the deep networks' weights). The loop records the observer's output at the
requested step indices, keeps snapshots of the positions, and stops

* at the first step whose state (positions or masses) is not finite, keeping the last finite state;
* at the first record that the side's :class:`meanfield.health.Health` refuses (an available risk
  not finite, below its rounding error, or above ``train.divergence_factor`` times its reference:
  README, *Reliability*), keeping the state of the last accepted record;

saying in both cases at which step and time it happened and which state is kept
(``kept_step``). A side is ``completed`` only when every record passed, so a completed side has
finite, in-range records by construction.

The state may live elsewhere than in host memory (a GPU): a ``residency`` object with
``put(host) -> state``, ``get(state) -> host`` and ``all_finite(state) -> bool`` (for example
:class:`meanfield_solvers.particles.backends.cuda_flow.CudaFlow`) is then used for the transfers, so the
particles come back only at the recording steps and the divergence check reads a flag.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meanfield_solvers.state import DynamicsFailure, ParticleState

from .health import Health, floor_notes
from .core.progress import reporter

__all__ = ["MarchResult", "march", "progress_bar"]


@dataclass
class MarchResult:
    records: list            # observer dicts at each requested record step (None if not reached)
    snapshots: dict          # record index -> copy of the positions
    theta: np.ndarray        # positions of the last finite state
    status: str = "completed"
    diverged_step: int | None = None
    diverged_time: float | None = None
    steps_done: int = 0
    message: str = ""
    state: object = None     # the last finite state itself (a host ParticleState, or the array)
    snapshot_masses: dict = field(default_factory=dict)  # record index -> copy of the masses (if any)
    kept_step: int = 0       # the step of ``state``/``theta`` (the last finite or last accepted one)
    refused: dict | None = None  # the observation a record check refused (its keys and shapes)
    notes: list = field(default_factory=list)  # sentences for the run's messages (a risk at its precision floor)


def progress_bar(total, desc, mode):
    """The loop's progress reporter in ``mode`` (``auto``, ``bar``, ``text``, ``none`` or a bool; see
    :mod:`meanfield.core.progress`)."""
    return reporter(total, desc, mode, unit="step")


class _Host:
    """The default residency: the state is the host array itself."""

    @staticmethod
    def put(theta):
        return theta

    @staticmethod
    def get(state):
        return state

    @staticmethod
    def all_finite(state):
        return bool(np.all(np.isfinite(state)))

    @staticmethod
    def positions(host):
        return host


def _positions(where, host):
    """The positions of a host state (residencies of bare arrays have no ``positions``)."""
    get = getattr(where, "positions", None)
    return host if get is None else get(host)


class _States:
    """Residency of a :class:`ParticleState`: positions through ``inner`` (host or device), masses
    and streams on the host."""

    def __init__(self, inner):
        self.inner = inner

    def put(self, state):
        return state.replace(theta=self.inner.put(state.theta))

    def get(self, state):
        return state.replace(theta=self.inner.get(state.theta))

    def all_finite(self, state):
        return self.inner.all_finite(state.theta) and (state.mass is None or bool(np.all(np.isfinite(state.mass))))

    @staticmethod
    def positions(host):
        return host.theta


def _host_copy(host):
    """A copy of a host state that later in-place steps cannot reach (positions and masses)."""
    if isinstance(host, ParticleState):
        return host.replace(theta=np.array(host.theta, copy=True),
                            mass=None if host.mass is None else np.array(host.mass, copy=True))
    return np.array(host, copy=True)


def march(step, theta0, record_steps, h, observe, snapshot_records=(), desc="", progress="none",
          residency=None, health=None, checkpoint=None) -> MarchResult:
    """Advance ``theta0`` to ``record_steps[-1]`` steps of size ``h``, recording on the way.

    Parameters
    ----------
    step : callable (state, k) -> state
    theta0 : the initial state: a :class:`ParticleState` or an array
    record_steps : increasing ints (step indices at which to observe; may include 0)
    observe : callable host state -> dict of arrays
    snapshot_records : indices into ``record_steps`` at which to keep a copy of the positions
    residency : object with put/get/all_finite over positions, or None (host arrays; see the
        module docstring)
    health : :class:`meanfield.health.Health` or None
        The record criteria; None: ``Health.of(observe)`` (the observer's available risks and
        target scale, the default divergence factor).
    checkpoint : None, or the :class:`meanfield.checkpoint.Loop` of this call. When None and the run
        in progress writes checkpoints (:func:`meanfield.checkpoint.active`), the call goes through
        its Loop: a loop that ended before an interruption returns its saved result, a resumed one
        starts at its saved position, and a checkpoint is written at step boundaries when due.
        The random streams that ``step`` holds are those in ``step.streams`` (saved and restored).
    progress : progress mode of :mod:`meanfield.core.progress` (``auto``, ``bar``, ``text``, ``none``)
    """
    if checkpoint is None:
        from .checkpoint import loop_for

        loop = loop_for(step, record_steps, snapshot_records, h, desc)
        if loop is not None:
            return loop.run(march, step, theta0, record_steps, h, observe, snapshot_records=snapshot_records,
                            desc=desc, progress=progress, residency=residency, health=health)
    where = _Host if residency is None else residency
    if isinstance(theta0, ParticleState):
        where = _States(where)
    health = Health.of(observe) if health is None else health
    record_steps = [int(s) for s in record_steps]
    snaps = set(snapshot_records)
    res = MarchResult(records=[None] * len(record_steps), snapshots={}, theta=_positions(where, theta0), state=theta0)
    theta = where.put(theta0)
    n_total = record_steps[-1]
    ri = 0
    kept = None  # (host state, step) of the last accepted record
    bar = progress_bar(n_total, desc, progress)
    # overflow on the way to a divergence is expected and reported below, not warned about
    err = np.errstate(over="ignore", invalid="ignore")
    err.__enter__()
    try:
        k = 0
        if checkpoint is not None:  # a resumed loop starts at its saved position
            k, ri, kept, theta = checkpoint.start(res, where, theta, k, ri, kept, health)
            bar.update(k)
        while True:
            host = None
            while ri < len(record_steps) and record_steps[ri] == k:
                if host is None:
                    host = where.get(theta)
                obs = observe(host)
                verdict = health.check(obs, k, k * h)
                if verdict is not None:
                    res.status, res.diverged_step, res.diverged_time = verdict.status, k, k * h
                    res.refused = obs
                    if kept is None:  # refused at the first record: the initial state is all there is
                        kept = (theta0, 0)
                    res.state, res.kept_step = kept
                    res.theta = _positions(where, res.state)
                    res.message = (f"{desc}: {verdict.reason}; the state of the last accepted record "
                                   f"(step {res.kept_step}) is kept")
                    return res
                kept = (_host_copy(host), k)
                res.records[ri] = obs
                if ri in snaps:
                    res.snapshots[ri] = np.array(_positions(where, host), copy=True)
                    if getattr(host, "mass", None) is not None:
                        res.snapshot_masses[ri] = np.array(host.mass, copy=True)
                ri += 1
            if checkpoint is not None:
                checkpoint.boundary(k, ri, kept, health, res, lambda: where.get(theta) if host is None else host,
                                    n_total)
            if k >= n_total:
                break
            try:
                new = step(theta, k)
            except DynamicsFailure as e:  # e.g. a birth-death population died out
                res.status, res.diverged_step, res.diverged_time = "diverged", k + 1, (k + 1) * h
                res.message = (f"{desc}: step {k + 1} (t = {(k + 1) * h:g}) failed: {e}; the last good state "
                               f"(step {k}) is kept")
                break
            k += 1
            if not where.all_finite(new):
                res.status, res.diverged_step, res.diverged_time = "diverged", k, k * h
                res.message = (f"{desc}: parameters became non-finite at step {k} (t = {k * h:g}); "
                               f"the last finite state (step {k - 1}) is kept")
                break
            theta = new
            res.steps_done = k
            if residency is None:
                res.state = theta
                res.theta = _positions(where, theta)
            bar.update(1)
        res.kept_step = res.steps_done
        if residency is not None and res.steps_done:
            res.state = where.get(theta)  # the last finite state, back on the host
            res.theta = _positions(where, res.state)
    finally:
        err.__exit__(None, None, None)
        bar.close()
        res.notes = floor_notes(health, desc)
    return res
