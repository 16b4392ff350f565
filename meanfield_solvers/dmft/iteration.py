r"""Damped fixed-point iteration with horizon continuation (docs/dmft.md §3.4).

A DMFT solve is the fixed point :math:`\Sigma = F(\Sigma)` of a map from order parameters to order
parameters (the sampled map of :mod:`meanfield_solvers.dmft.sampled`, or the closed-form deep-linear map of
:mod:`meanfield_solvers.dmft.linear`). This module only iterates such a map:

* **Continuation**: solve on horizons ``T_1 < T_2 < ... < T``; each stage starts from the previous
  one extended in time (kernels held constant, responses extended by 0, outputs by the Euler NTK
  flow). Without it the undamped iteration on a long horizon can diverge.
* **Damping**: :math:`\Sigma \leftarrow (1-\beta)\Sigma + \beta F(\Sigma)`, starting each stage
  from ``damping`` (1 by default); whenever the residual exceeds ``growth`` (1.5) times the best one
  of the stage, :math:`\beta` is halved (down to ``min_damping``, 0.5) for the rest of the stage.
  (A plain "residual grew" trigger fires on the harmless transient growth of the first iterations of
  a stage — the causal iteration is nilpotent-like and need not be monotone — and repeated halving
  to 1/8 was measured to stall an L = 3 solve at residual 3e-3 after 110 iterations.)
* **Convergence**: residual = max over layers of the relative Frobenius change of every kernel and
  response and the max change of ``f`` (:meth:`DMFTState.residual`). Intermediate stages stop at
  ``stage_tol``; the final stage must reach ``tol`` within ``max_iter`` iterations, else the status is
  ``'not_converged'``. A residual that is not finite or exceeds ``diverge_at`` gives ``'diverged'``;
  a source covariance that is not positive definite gives ``'not_positive_definite'``. Either way
  the state returned is that of the last stage that reached its target (``log.good_horizon``; the
  initial guess if none did), never the diverging iterate.

A small residual certifies a fixed point of the *discrete map*, not correctness of the estimator
inside it (docs/dmft.md §3.3(b)).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..threads import blas_threads
from .sources import KernelNotPositiveDefinite

__all__ = ["IterationLog", "stage_horizons", "iterate"]


@dataclass
class IterationLog:
    """Per-iteration record of a solve."""

    residuals: list = field(default_factory=list)   # max residual per iteration
    parts: list = field(default_factory=list)       # dict of per-component residuals
    horizons: list = field(default_factory=list)    # horizon T of the stage of each iteration
    betas: list = field(default_factory=list)       # damping used
    seconds: list = field(default_factory=list)     # wall time per iteration
    status: str = "not_converged"
    message: str = ""
    good_horizon: int | None = None  # horizon of the last stage that reached its target (None: none did)

    @property
    def iterations(self) -> int:
        return len(self.residuals)


def stage_horizons(T: int, stages: int) -> list:
    """``stages`` increasing horizons ending at ``T`` (roughly equal increments, each ≥ 1 step)."""
    stages = max(1, min(int(stages), T))
    return sorted({int(round(T * (s + 1) / stages)) for s in range(stages)})


def iterate(F, state0, grids, *, tol, stage_tol=None, max_iter=60, damping=1.0, min_damping=0.5,
            growth=1.5, diverge_at=1e6, log=None, verbose=False, F_first=None):
    """Iterate ``state <- blend(state, F(state))`` over continuation stages.

    Parameters
    ----------
    F : callable DMFTState -> DMFTState
    state0 : DMFTState on ``grids[0]`` (initial guess)
    grids : list of Grid, increasing horizons (the last is the target)
    tol, stage_tol : residual targets of the final and of the intermediate stages
    max_iter : iterations per stage
    damping, min_damping : initial and smallest β
    growth : halve β when the residual exceeds ``growth`` × the stage's best (``inf`` disables)
    log : IterationLog to append to (created if None)
    F_first : callable, optional
        Map used for the first iteration of every stage instead of ``F`` (the causal sweep, which
        solves the stage exactly; the following iterations of ``F`` then measure its residual).

    Returns
    -------
    (state, log)
    """
    log = IterationLog() if log is None else log
    stage_tol = tol if stage_tol is None else max(stage_tol, tol)
    beta = float(damping)
    state = state0
    good = state0  # the state of the last stage that reached its target
    for s, grid in enumerate(grids):
        last = s == len(grids) - 1
        target = tol if last else stage_tol
        if state.grid.n_t != grid.n_t:
            state = state.extended(grid)
        best = np.inf
        beta = float(damping)
        done = False
        for it in range(max_iter):
            t0 = time.perf_counter()
            try:
                new = (F_first if (it == 0 and F_first is not None) else F)(state)
            except KernelNotPositiveDefinite as e:
                log.status, log.message = "not_positive_definite", str(e)
                return good, log
            res, parts = state.residual(new)
            if not np.isfinite(res) or res > diverge_at:
                log.residuals.append(res)
                log.parts.append(parts)
                log.horizons.append(grid.T)
                log.betas.append(beta)
                log.seconds.append(time.perf_counter() - t0)
                log.status = "diverged"
                log.message = f"residual {res:.3e} at horizon T={grid.T} (iteration {log.iterations})"
                return good, log
            if res > growth * best and beta > min_damping:
                beta = max(beta / 2, min_damping)
                best = res  # judge the new beta from here
            else:
                best = min(best, res)
            state = state.blended(new, beta)
            log.residuals.append(res)
            log.parts.append(parts)
            log.horizons.append(grid.T)
            log.betas.append(beta)
            log.seconds.append(time.perf_counter() - t0)
            if verbose:
                worst = max(parts, key=parts.get)
                print(f"  T={grid.T:4d} it={log.iterations:3d} res={res:.3e} ({worst}) beta={beta:g} "
                      f"{log.seconds[-1]:.2f}s", flush=True)
            if res < target:
                done = True
                good, log.good_horizon = state, grid.T
                break
        if last:
            if done:
                log.status, log.message = "converged", f"residual {log.residuals[-1]:.3e} < tol {tol:g}"
            else:
                log.status = "not_converged"
                log.message = (f"final stage (T={grid.T}) reached residual {log.residuals[-1]:.3e} after "
                               f"{max_iter} iterations, tol {tol:g}; raise max_iter, add continuation stages "
                               f"or lower damping")
    return state, log
