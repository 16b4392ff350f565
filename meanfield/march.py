"""The time loop shared by every side of every run: step, record, detect divergence.

A step function maps ``(state, k) -> state_next``, where the state is a
:class:`meanfield_solvers.state.ParticleState` (positions, masses, random streams, step count: particle
models) or a bare array (the deep networks' weights). The loop records the observer's output at the
requested step indices, keeps snapshots of the positions, and stops at the first step whose state
(positions or masses) is not finite, keeping the last finite state and saying at which step and
time it happened.

The state may live elsewhere than in host memory (a GPU): a ``residency`` object with
``put(host) -> state``, ``get(state) -> host`` and ``all_finite(state) -> bool`` (for example
:class:`meanfield_solvers.particles.backends.cuda_flow.CudaFlow`) is then used for the transfers, so the
particles come back only at the recording steps and the divergence check reads a flag.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from meanfield_solvers.state import DynamicsFailure, ParticleState

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


def march(step, theta0, record_steps, h, observe, snapshot_records=(), desc="", progress="none",
          residency=None) -> MarchResult:
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
    progress : progress mode of :mod:`meanfield.core.progress` (``auto``, ``bar``, ``text``, ``none``)
    """
    where = _Host if residency is None else residency
    if isinstance(theta0, ParticleState):
        where = _States(where)
    record_steps = [int(s) for s in record_steps]
    snaps = set(snapshot_records)
    res = MarchResult(records=[None] * len(record_steps), snapshots={}, theta=_positions(where, theta0), state=theta0)
    theta = where.put(theta0)
    n_total = record_steps[-1]
    ri = 0
    expected = None
    bar = progress_bar(n_total, desc, progress)
    # overflow on the way to a divergence is expected and reported below, not warned about
    err = np.errstate(over="ignore", invalid="ignore")
    err.__enter__()
    try:
        k = 0
        while True:
            host = None
            while ri < len(record_steps) and record_steps[ri] == k:
                if host is None:
                    host = where.get(theta)
                obs = observe(host)
                if expected is None:  # NaN at step 0 means 'not available' (e.g. no training set)
                    expected = {n: np.isfinite(v) for n, v in obs.items() if n.startswith("risk")}
                bad = [n for n, ok in expected.items() if np.any(ok & ~np.isfinite(obs[n]))]
                if bad:
                    res.status, res.diverged_step, res.diverged_time = "diverged", k, k * h
                    res.message = f"{desc}: {bad[0]} became non-finite at step {k} (t = {k * h:g})"
                    return res
                res.records[ri] = obs
                if ri in snaps:
                    res.snapshots[ri] = np.array(_positions(where, host), copy=True)
                    if getattr(host, "mass", None) is not None:
                        res.snapshot_masses[ri] = np.array(host.mass, copy=True)
                ri += 1
            if k >= n_total:
                break
            try:
                new = step(theta, k)
            except DynamicsFailure as e:  # e.g. a birth-death population died out
                res.status, res.diverged_step, res.diverged_time = "diverged", k + 1, (k + 1) * h
                res.message = (f"{desc}: step {k + 1} (t = {(k + 1) * h:g}) failed: {e}; the last good state "
                               f"(step {k}) is kept")
                return res
            k += 1
            if not where.all_finite(new):
                res.status, res.diverged_step, res.diverged_time = "diverged", k, k * h
                res.message = (f"{desc}: parameters became non-finite at step {k} (t = {k * h:g}); "
                               f"the last finite state (step {k - 1}) is kept")
                return res
            theta = new
            res.steps_done = k
            if residency is None:
                res.state = theta
                res.theta = _positions(where, theta)
            bar.update(1)
    finally:
        if residency is not None and res.steps_done:
            res.state = where.get(theta)  # the last finite state, back on the host
            res.theta = _positions(where, res.state)
        err.__exit__(None, None, None)
        bar.close()
    return res
