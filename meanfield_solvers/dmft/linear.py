r"""Deep-linear DMFT (:math:`\phi(h) = h`): closed kernel equations, solved without sampling.

With :math:`\phi = \mathrm{id}` every single-site field is Gaussian and linear in the sources
(docs/dmft.md §5b). Writing the discrete memory operators of layer :math:`\ell` as the (n, n) matrices
``H``, ``Z`` of :func:`~meanfield_solvers.dmft.state.memory_operators`, the single-site equations
:math:`h = u + Hz`, :math:`z = r + Zh` give

.. math::
    M_{hu} = (I - HZ)^{-1},\quad M_{hr} = (I-HZ)^{-1}H,\quad
    M_{zr} = (I - ZH)^{-1},\quad M_{zu} = (I-ZH)^{-1}Z,

    \Phi^\ell = M_{hu}\Phi^{\ell-1}M_{hu}^\top + M_{hr}G^{\ell+1}M_{hr}^\top,\qquad
    G^\ell = M_{zu}\Phi^{\ell-1}M_{zu}^\top + M_{zr}G^{\ell+1}M_{zr}^\top,

    R_A^\ell = M_{hr}\ (= \partial h^\ell/\partial r^\ell),\qquad
    R_B^{\ell-1} = M_{zu}\ (= \partial z^\ell/\partial u^\ell),

    f_\mu[k] = \gamma_0^{-1}(M_{hr}\mathbf 1)_{k\mu}
        + \frac{dt}{P}\sum_{j<k}\sum_\nu\Phi^L_{\mu\nu}[k,j]\Delta_\nu[j]
        \;(=\gamma_0^{-1}\langle h^L_\mu[k]\,z^L[k]\rangle),

since :math:`r^L` is one N(0,1) scalar (:math:`G^{L+1}=\mathbf 1\mathbf 1^\top`). ``I − HZ`` and
``I − ZH`` are unit lower triangular (H is strictly causal), so the inverses are triangular solves.
These maps are iterated with :func:`~meanfield_solvers.dmft.iteration.iterate` (horizon continuation, damping);
by causality the iteration reaches its fixed point exactly after finitely many sweeps
(about L × new steps per stage). Cost O(L n³) per sweep, no Monte Carlo error: the exact oracle for the
sampled solver (same discretisation, same f formula).

References: Bordelon & Pehlevan (2022), arXiv:2205.09653; Bordelon & Pehlevan (2025),
arXiv:2502.02531 (deep linear networks, Volterra form).
"""
from __future__ import annotations

import time

import numpy as np
from scipy import linalg

from .grid import Grid
from ..threads import blas_threads
from .iteration import IterationLog, iterate, stage_horizons
from .ntk import init_kernels
from .result import DMFTResult, result_from_state
from .state import DMFTState, memory_operators, outputs_from_field_term

__all__ = ["DeepLinearMap", "solve_deep_linear"]


def _unit_lower_solve(A, B):
    r""":math:`A^{-1}B` for unit lower-triangular ``A``."""
    return linalg.solve_triangular(A, B, lower=True, unit_diagonal=True, check_finite=False)


class DeepLinearMap:
    """The closed-form deep-linear fixed-point map ``state -> state`` (see module doc)."""

    def __init__(self, gamma0):
        self.gamma0 = float(gamma0)

    def __call__(self, state: DMFTState) -> DMFTState:
        g, L = state.grid, state.L
        I = np.eye(g.n)
        Phi = [state.Phi[0]] + [None] * L
        G = [None] * (L + 1) + [state.G[L + 1]]
        RA, RB = [None] * L, [None] * L
        c = None
        for l in range(1, L + 1):
            H, Z = memory_operators(state, l, self.gamma0)
            M_hu = _unit_lower_solve(I - H @ Z, I)
            M_hr = M_hu @ H
            M_zr = _unit_lower_solve(I - Z @ H, I)
            M_zu = M_zr @ Z
            Pl, Gl = state.Phi[l - 1], state.G[l + 1]
            Phi[l] = M_hu @ Pl @ M_hu.T + M_hr @ Gl @ M_hr.T
            G[l] = M_zu @ Pl @ M_zu.T + M_zr @ Gl @ M_zr.T
            if l <= L - 1:
                RA[l] = M_hr
            if l >= 2:
                RB[l - 1] = M_zu
            if l == L:
                c = M_hr.sum(axis=1).reshape(g.n_t, g.n_pts) / self.gamma0
        f = outputs_from_field_term(c, Phi[L], g, state.y)
        return DMFTState(g, state.y, Phi, G, RA, RB, f)


def solve_deep_linear(X, y, L: int, gamma0: float, dt: float, T: int, *, X_test=None,
                      tol: float = 1e-12, max_iter: int = 200, damping: float = 1.0,
                      stages: int | None = None, n_threads: int | None = 1,
                      verbose: bool = False) -> DMFTResult:
    r"""Exact (no sampling) DMFT of a deep linear muP network on ``t = dt * arange(T+1)``.

    Parameters
    ----------
    X : (P, D) array
        Training inputs.
    y : (P,) array
        Targets.
    L : int
        Hidden layers.
    gamma0 : float
        Feature-learning strength, ≠ 0.
    dt : float
        Step (the same discrete-time convention as :func:`solve_dmft`).
    T : int
        Number of steps.
    X_test : (Q, D) array, optional
        Extra points that carry no loss.
    tol : float
        Residual target (the iteration reaches rounding level, so 1e-12 is the default).
    max_iter : int
        Sweeps per continuation stage.
    damping : float
        β (fixed: no automatic fallback, see Notes).
    stages : int, optional
        Continuation stages, default ``ceil(T/10)`` (10 new steps per stage).
    n_threads : int or None
        BLAS threads (default 1; None leaves the setting alone).
    verbose : bool
        Print one line per iteration.

    Notes
    -----
    The undamped iteration on a stage with m new steps is exact after about (L+1)·m sweeps (each
    sweep makes one more link of the causal chain exact: layer to layer within a time step, step to
    step), but the residual is not monotone on the way; damping would trade that finite termination
    for slow geometric convergence, so the residual-growth fallback of :func:`iterate` is disabled
    here. Shorten the stages (``stages``) if an undamped stage overflows.

    Returns
    -------
    DMFTResult
        MC error fields are exactly zero; ``status`` as for :func:`solve_dmft`.
    """
    t0 = time.perf_counter()
    if gamma0 == 0:
        raise ValueError("gamma0 = 0 is the lazy limit: use meanfield_solvers.dmft.solve_ntk")
    if int(T) != T or T < 1 or not dt > 0 or L < 1:
        raise ValueError(f"need integers L, T >= 1 and dt > 0, got L={L}, T={T}, dt={dt}")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    Xall = X if X_test is None else np.concatenate([X, np.asarray(X_test, dtype=float)], axis=0)
    grid = Grid(T + 1, Xall.shape[0], X.shape[0], float(dt))
    stages = int(np.ceil(T / 10)) if stages is None else int(stages)
    grids = [grid.with_steps(Ts) for Ts in stage_horizons(T, stages)]
    init = init_kernels(Xall, L, "linear")
    state0 = DMFTState.lazy(init, grids[0], y)
    with blas_threads(n_threads):
        state, log = iterate(DeepLinearMap(gamma0), state0, grids, tol=tol, max_iter=max_iter,
                             damping=damping, growth=np.inf, log=IterationLog(), verbose=verbose)
    if state.grid.n_t != grid.n_t:  # stopped early: solved up to log.good_horizon, the rest is extension
        state = state.extended(grid)
    info = dict(activation="linear", L=L, gamma0=gamma0, dt=dt, T=T, tol=tol, max_iter=max_iter,
                stages=[gg.T for gg in grids], seconds=time.perf_counter() - t0)
    return result_from_state(state, log, info)
