"""The time loop shared by the limit and the finite-width ensemble: step, record, detect divergence.

A step function maps ``(theta, k) -> theta_next``. The loop records the observer's output at the
requested step indices, keeps particle snapshots, and stops at the first step whose state is not
finite, keeping the last finite state and saying at which step and time it happened.

The state may live elsewhere than in host memory (a GPU): a ``residency`` object with
``put(host) -> state``, ``get(state) -> host`` and ``all_finite(state) -> bool`` (for example
:class:`solvers.particles.backends.cuda_flow.CudaFlow`) is then used for the transfers, so the
particles come back only at the recording steps and the divergence check reads a flag.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

__all__ = ["MarchResult", "march", "progress_bar"]


@dataclass
class MarchResult:
    records: list            # observer dicts at each requested record step (None if not reached)
    snapshots: dict          # record index -> theta copy
    theta: np.ndarray        # last finite state
    status: str = "completed"
    diverged_step: int | None = None
    diverged_time: float | None = None
    steps_done: int = 0
    message: str = ""


def progress_bar(total, desc, enabled):
    """A tqdm bar on stderr, or a no-op when disabled or stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True,
                disable=not enabled or not sys.stderr.isatty(), mininterval=0.5)


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


def march(step, theta0, record_steps, h, observe, snapshot_records=(), desc="", progress=False,
          residency=None) -> MarchResult:
    """Advance ``theta0`` to ``record_steps[-1]`` steps of size ``h``, recording on the way.

    Parameters
    ----------
    step : callable (theta, k) -> theta
    record_steps : increasing ints (step indices at which to observe; may include 0)
    observe : callable theta -> dict of arrays
    snapshot_records : indices into ``record_steps`` at which to keep a copy of theta
    residency : object with put/get/all_finite, or None (host arrays; see the module docstring)
    """
    where = _Host if residency is None else residency
    record_steps = [int(s) for s in record_steps]
    snaps = set(snapshot_records)
    res = MarchResult(records=[None] * len(record_steps), snapshots={}, theta=theta0)
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
                    res.snapshots[ri] = np.array(host, copy=True)
                ri += 1
            if k >= n_total:
                break
            new = step(theta, k)
            k += 1
            if not where.all_finite(new):
                res.status, res.diverged_step, res.diverged_time = "diverged", k, k * h
                res.message = (f"{desc}: parameters became non-finite at step {k} (t = {k * h:g}); "
                               f"the last finite state (step {k - 1}) is kept")
                return res
            theta = new
            res.steps_done = k
            if residency is None:
                res.theta = theta
            bar.update(1)
    finally:
        if residency is not None and res.steps_done:
            res.theta = where.get(theta)  # the last finite state, back on the host
        err.__exit__(None, None, None)
        bar.close()
    return res
