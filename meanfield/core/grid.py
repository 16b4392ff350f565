r"""Recording grids in mean-field time.

A run records both sides (the limit with step ``dt``, the networks with step ``lr``) at the same
times whenever it can: when one step is an integer multiple of the other, the recording grid is
built on the coarser of the two and both sides hit it exactly; otherwise each side records at its
own nearest step (the networks within lr/2 of the limit's times).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["record_grid", "common_step", "TimeGrid", "time_grid"]


def record_grid(t_max, records, spacing, h):
    """Recording step indices for step size ``h`` (unique, increasing, starting at 0)."""
    n = int(round(t_max / h))
    if spacing == "linear":
        t = np.linspace(0.0, t_max, records)
    else:
        # (geomspace with one point returns its start: two log-spaced records are 0 and t_max)
        late = np.geomspace(min(h, t_max), t_max, records - 1) if records > 2 else np.array([t_max])
        t = np.concatenate([[0.0], late])
    return np.unique(np.clip(np.round(t / h).astype(np.int64), 0, n))


def common_step(dt, lr):
    """The coarser of dt and lr when it is an integer multiple of the finer one, else dt."""
    hi, lo = max(dt, lr), min(dt, lr)
    k = hi / lo
    return hi if abs(k - round(k)) < 1e-9 * k else dt


@dataclass(frozen=True)
class TimeGrid:
    """Where a run records.

    Attributes
    ----------
    steps : (T,) int array, the limit's step indices (or the networks' without a limit)
    h : float, the step of ``steps`` (limit.dt, or train.lr without a limit)
    t : (T,) recording times ``steps * h``
    steps_nn : (T,) the networks' step indices nearest to ``t`` (``round(t / lr)``)
    t_nn : (T,) the networks' recording times ``steps_nn * lr``
    """

    steps: np.ndarray
    h: float
    t: np.ndarray
    steps_nn: np.ndarray
    t_nn: np.ndarray


def time_grid(cfg, common: bool = True) -> TimeGrid:
    """The recording grid of a validated config.

    ``common``: record on the coarser of dt and lr when one is a multiple of the other (see the
    module docstring); False snaps the requested times to the limit's own step. Explicit times
    (``time.ts``, on both sides' step grids by validation) replace the records/spacing grid.
    """
    t_max, R, spacing = cfg.time.t_max, cfg.time.records, cfg.time.spacing
    do_limit = cfg.limit.method != "none"
    h = cfg.limit.dt if do_limit else cfg.train.lr
    if cfg.time.ts:
        # explicit times: validation put each on the step grid of every recording side, so rounding
        # moves a time by round-off only and both sides record at the same times
        steps = np.round(np.asarray(cfg.time.ts, dtype=float) / h).astype(np.int64)
        t = steps * h
        steps_nn = np.round(t / cfg.train.lr).astype(np.int64)
        return TimeGrid(steps=steps, h=h, t=t, steps_nn=steps_nn, t_nn=steps_nn * cfg.train.lr)
    h_rec = common_step(cfg.limit.dt, cfg.train.lr) if common and do_limit and cfg.train.seeds > 0 else h
    steps = record_grid(t_max, R, spacing, h_rec) * int(round(h_rec / h))
    t = steps * h
    steps_nn = np.round(t / cfg.train.lr).astype(np.int64)
    return TimeGrid(steps=steps, h=h, t=t, steps_nn=steps_nn, t_nn=steps_nn * cfg.train.lr)
