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

* **Record**: every iteration is logged with the reason it was needed (``IterationLog.reasons``):
  the first map of a stage (a causal sweep that solves it, or a Jacobi step from the lazy start /
  the previous stage extended), the certifying application after a sweep, or "residual above the
  target" for every further one — so a solve that takes more than the minimum says why.
* **Progress**: ``progress`` (optional callable) receives a :class:`SolveProgress` after every
  iteration (iteration, stage, residual, elapsed and estimated remaining seconds).

A small residual certifies a fixed point of the *discrete map*, not correctness of the estimator
inside it (docs/dmft.md §3.3(b)).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..threads import blas_threads
from .sources import KernelNotPositiveDefinite

__all__ = ["IterationLog", "SolveProgress", "stage_horizons", "iterate", "remaining_estimate"]


@dataclass
class IterationLog:
    """Per-iteration record of a solve."""

    residuals: list = field(default_factory=list)   # max residual per iteration
    parts: list = field(default_factory=list)       # dict of per-component residuals
    horizons: list = field(default_factory=list)    # horizon T of the stage of each iteration
    betas: list = field(default_factory=list)       # damping used
    seconds: list = field(default_factory=list)     # wall time per iteration
    reasons: list = field(default_factory=list)     # why each iteration was needed (str)
    status: str = "not_converged"
    message: str = ""
    good_horizon: int | None = None  # horizon of the last stage that reached its target (None: none did)

    @property
    def iterations(self) -> int:
        return len(self.residuals)


@dataclass(frozen=True)
class SolveProgress:
    """What a progress callback receives (generic: no printing, no logging here).

    Attributes
    ----------
    iteration : int, iterations done so far in this phase (1-based after the first)
    stage : int, 1-based continuation stage;  n_stages : int
    horizon : int, horizon T of the stage
    residual : float, residual of the iteration just done (NaN before the first)
    elapsed : float, seconds since the phase started
    remaining : float or None, estimated seconds left in the phase (None: no basis for a guess)
    phase : str, e.g. ``'solve'`` or ``'error batch 3/8'``
    reason : str, why this iteration was needed (:attr:`IterationLog.reasons`)
    """

    iteration: int
    stage: int
    n_stages: int
    horizon: int
    residual: float
    elapsed: float
    remaining: float | None
    phase: str = "solve"
    reason: str = ""


def remaining_estimate(residuals, seconds, target, stage_costs_left=0.0, certify_next=False):
    r"""Seconds left in a stage, from its residual history (a rough, stated guess, or None).

    After a causal sweep (``certify_next``) one certifying iteration remains: about the last
    iteration's time. Otherwise the residual is extrapolated geometrically with the last ratio
    :math:`q = r_k/r_{k-1}` (clamped to [0.05, 0.9]): :math:`\lceil\log(\text{target}/r_k)/\log q\rceil`
    more iterations at the mean time per iteration. ``stage_costs_left`` (seconds) is added for the
    later continuation stages.
    """
    if not residuals:
        return None
    last = residuals[-1]
    per = float(np.mean(seconds[-3:]))
    if certify_next:
        return per + stage_costs_left
    if last <= target:
        return stage_costs_left
    if len(residuals) < 2 or not residuals[-2] > 0:
        return None
    q = min(max(last / residuals[-2], 0.05), 0.9)
    more = int(np.ceil(np.log(target / last) / np.log(q)))
    return more * per + stage_costs_left


def stage_horizons(T: int, stages: int) -> list:
    """``stages`` increasing horizons ending at ``T`` (roughly equal increments, each ≥ 1 step)."""
    stages = max(1, min(int(stages), T))
    return sorted({int(round(T * (s + 1) / stages)) for s in range(stages)})


def iterate(F, state0, grids, *, tol, stage_tol=None, max_iter=60, damping=1.0, min_damping=0.5,
            growth=1.5, diverge_at=1e6, log=None, verbose=False, F_first=None, first_reason=None,
            first_exact=True, progress=None, phase="solve"):
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
    first_reason : str, optional
        What ``F_first`` is, for the record (default: "causal sweep").
    first_exact : bool
        Whether ``F_first`` solves the stage exactly (then the next iteration is recorded as the
        certification; else as a Jacobi step from a warm start).
    progress : callable ``SolveProgress -> None``, optional
        Called after every iteration (exceptions it raises propagate: a caller may use it to stop).
    phase : str, label passed to ``progress``

    Returns
    -------
    (state, log)
    """
    log = IterationLog() if log is None else log
    stage_tol = tol if stage_tol is None else max(stage_tol, tol)
    beta = float(damping)
    state = state0
    good = state0  # the state of the last stage that reached its target
    t_phase = time.perf_counter()
    stage_seconds = []  # wall time of each finished stage (for the remaining-time guess)
    for s, grid in enumerate(grids):
        last = s == len(grids) - 1
        target = tol if last else stage_tol
        start = "the lazy initial state" if s == 0 else f"stage T={grids[s - 1].T} extended"
        if state.grid.n_t != grid.n_t:
            state = state.extended(grid)
        best = np.inf
        beta = float(damping)
        done = False
        t_stage = time.perf_counter()
        n_log0 = log.iterations
        for it in range(max_iter):
            t0 = time.perf_counter()
            sweep = it == 0 and F_first is not None
            if sweep:
                reason = f"{first_reason or 'causal sweep'}: solves stage T={grid.T} in one pass"
            elif it == 0:
                reason = f"first Jacobi step of stage T={grid.T}, from {start}"
            elif it == 1 and F_first is not None and first_exact:
                reason = "certification: the Jacobi map applied to the sweep's result (its residual)"
            elif it == 1 and F_first is not None:
                reason = "first Jacobi step from the sweep's result (the sweep was not exact: warm start)"
            else:
                reason = (f"residual {log.residuals[-1]:.2e} above the {'final' if last else 'stage'} "
                          f"target {target:g}")
            try:
                new = (F_first if sweep else F)(state)
            except KernelNotPositiveDefinite as e:
                log.status, log.message = "not_positive_definite", str(e)
                return good, log
            log.reasons.append(reason)
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
            if progress is not None:
                progress(SolveProgress(
                    iteration=log.iterations, stage=s + 1, n_stages=len(grids), horizon=grid.T,
                    residual=float(res), elapsed=time.perf_counter() - t_phase,
                    remaining=_remaining(log, n_log0, target, grids, s, stage_seconds, t_stage, done,
                                         sweep),
                    phase=phase, reason=reason))
            if done:
                break
        stage_seconds.append(time.perf_counter() - t_stage)
        if last:
            if done:
                log.status, log.message = "converged", f"residual {log.residuals[-1]:.3e} < tol {tol:g}"
            else:
                log.status = "not_converged"
                log.message = (f"final stage (T={grid.T}) reached residual {log.residuals[-1]:.3e} after "
                               f"{max_iter} iterations, tol {tol:g}; raise max_iter, add continuation stages "
                               f"or lower damping")
    return state, log


def _remaining(log, n_log0, target, grids, s, stage_seconds, t_stage, done, sweep):
    """Estimated seconds left: this stage (from its residuals) plus the later stages, each guessed
    from the last finished (or current) stage's time scaled by the cube of the horizon ratio (the
    tangent march costs ~ T^3, docs/dmft.md §3.5)."""
    if s + 1 < len(grids):
        ref_T, ref_t = (grids[s].T, time.perf_counter() - t_stage) if done or not stage_seconds \
            else (grids[s - 1].T, stage_seconds[-1])
        later = sum(ref_t * (g.T / ref_T) ** 3 for g in grids[s + 1:])
    else:
        later = 0.0
    if done:
        return later
    return remaining_estimate(log.residuals[n_log0:], log.seconds[n_log0:], target, later,
                              certify_next=sweep)
