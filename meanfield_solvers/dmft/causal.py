r"""Causal (time-ordered Gauss–Seidel) sweep of the sampled DMFT map.

The discrete DMFT is strictly causal (docs/dmft.md §3.1, §3.4): every order parameter at time
:math:`t_k` depends only on order parameters at earlier times, on the same time's kernels of the
layer below (forward fields) or above (backward fields), and on :math:`f[k]`, which needs only
layer L's forward quantities at :math:`t_k`. So one sweep that advances **all** layers together in
time order, using each freshly estimated kernel/response as soon as it exists, solves the fixed-point
equations of :class:`~meanfield_solvers.dmft.sampled.SampledMap` exactly for the given white noise:

for k = 0..T:

1. forward, ℓ = 1..L: append block row k of chol(Φ^{ℓ-1}) and colour :math:`u^\ell[k]`; memory row
   :math:`H^\ell[k,<k]` from :math:`R_A^{\ell-1}[k,<k]` and :math:`\Phi^{\ell-1}[k,<k]\Delta[<k]`;
   march :math:`h^\ell[k]`, its tangents; estimate :math:`\Phi^\ell[k,\le k]`,
   :math:`R_A^\ell[k,<k]`;
2. output: :math:`f[k] = \gamma_0^{-1}\langle\partial\phi(h^L[k])/\partial r^L\rangle +
   \frac{dt}{P}\sum_{j<k}\Phi^L[k,j]\Delta[j]`, then :math:`\Delta[k]`;
3. backward, ℓ = L..1: append block row k of chol(G^{ℓ+1}) and colour :math:`r^\ell[k]`; memory row
   :math:`Z^\ell[k,\le k]` from :math:`R_B^\ell[k,\le k]` (instantaneous block included) and
   :math:`G^{\ell+1}[k,<k]\Delta[<k]`; march :math:`z^\ell[k]`, :math:`g^\ell[k]`, tangents; estimate
   :math:`G^\ell[k,\le k]`, :math:`R_B^{\ell-1}[k,\le k]`.

The sources are identical to those of the Jacobi map (incremental Cholesky of the leading blocks =
leading blocks of the full Cholesky; same fixed white noise), the estimators are identical, so the
sweep's output is the fixed point :math:`\Sigma^* = F(\Sigma^*)` of the Jacobi map up to rounding —
which :func:`~meanfield_solvers.dmft.sampled.solve_dmft` checks by applying the Jacobi map once more and
reporting the residual. The sweep ignores its input state (except the grid and targets).

Cost: one sweep ≈ one Jacobi iteration, but the marching GEMMs are step by step (the memory rows of
future times are unknown, so the blocked march cannot be used); memory: all layers' tangents of all
``n_tangent`` samples at once (no chunking), stored by seed time from the seed's time on only
(:mod:`~meanfield_solvers.dmft.triangular`: half the dense storage and half its flops).
"""
from __future__ import annotations

import numpy as np

from .. import gaussian
from ..threads import blas_threads
from .grid import Grid
from .march import PrimalMarch, SeedLayout, TangentMarch
from .responses import get_response_estimator
from .sources import JITTER, IncrementalCholesky, NoiseBank
from .state import DMFTState

__all__ = ["CausalSweep"]


class CausalSweep:
    r"""The sweep as a map ``state -> state`` (see module doc); same parameters as ``SampledMap``."""

    def __init__(self, activation, gamma0, bank: NoiseBank, u1, n_tangent, f_estimator, jitter=JITTER,
                 workers=1, responses=None):
        self.workers = max(1, int(workers))  # threads for the tangent groups of each step
        self.act = gaussian.get_activation(activation)
        self.gamma0 = float(gamma0)
        self.bank = bank
        self.u1 = u1
        self.n_tangent = int(n_tangent)
        self.f_estimator = f_estimator
        self.jitter = jitter
        # the response estimator (meanfield_solvers/dmft/responses.py): exact tangents unless told
        self.responses = get_response_estimator("tangent") if responses is None else responses

    def __call__(self, state: DMFTState) -> DMFTState:
        # BLAS on one thread whatever the worker count: the sweep's many small products are faster so
        # (meanfield_solvers/threads.py), and 1 and k workers then do the same arithmetic bit for bit
        # (with the library's default pool, a single worker's products were rounded differently)
        with blas_threads(1):
            if self.workers < 2:
                return self._sweep(state, None)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                return self._sweep(state, pool)

    def _sweep(self, state: DMFTState, pool) -> DMFTState:
        g: Grid = state.grid
        L, act, bank, S = state.L, self.act, self.bank, self.bank.S
        n, P, Pt, nt = g.n, g.n_train, g.n_pts, self.n_tangent
        y = state.y
        coef = self.gamma0 * g.dt / P

        Phi = [state.Phi[0]] + [np.zeros((n, n)) for _ in range(L)]
        G = [None] + [np.zeros((n, n)) for _ in range(L)] + [state.G[L + 1]]
        RA = [None] + [np.zeros((n, n)) for _ in range(1, L)]
        RB = [None] + [np.zeros((n, n)) for _ in range(1, L)]
        H = [None] + [np.zeros((n, n)) for _ in range(L)]
        Z = [None] + [np.zeros((n, n)) for _ in range(L)]

        shape = (g.n_t, Pt, S)
        pm, tm, chol_u, chol_r = [None], [None], [None, None], [None]
        for l in range(1, L + 1):
            u = np.broadcast_to(self.u1, shape) if l == 1 else np.zeros(shape)
            r = np.broadcast_to(bank.rL, shape) if l == L else np.zeros(shape)
            pm.append(PrimalMarch(act, u, r, g))
            tm.append(self.responses.tracker(act, pm[l], l, L, g, bank, nt, pool, self.workers))
            if l >= 2:
                chol_u.append(IncrementalCholesky(Phi[l - 1], Pt, self.jitter,
                                                  f"Phi^{l - 1} (covariance of u^{l})"))
            if l <= L - 1:
                chol_r.append(IncrementalCholesky(G[l + 1], Pt, self.jitter,
                                                  f"G^{l + 1} (covariance of r^{l})"))
        one = None
        if self.f_estimator == "pathwise":
            one = TangentMarch(act, pm[L].h, pm[L].z,
                               SeedLayout(g.n_t, Pt, P, False, False, True), g)
        f = np.zeros((g.n_t, Pt))
        delta = np.zeros(n)
        A = g.as4(Phi[L])

        for k in range(g.n_t):
            rows, past, upto = g.rows(k), slice(0, k * Pt), slice(0, (k + 1) * Pt)
            # ---- forward fields, layers 1..L
            for l in range(1, L + 1):
                if l >= 2:
                    Crow = chol_u[l].append()
                    pm[l].u[k] = Crow @ bank.eps_u[l][upto]
                Hk = H[l][rows, past]
                Hk[:] = coef * Phi[l - 1][rows, past] * delta[None, past]
                if l >= 2:
                    Hk += RA[l - 1][rows, past]
                pm[l].step_h(k, Hk @ pm[l].g[past], S)
                Phi[l][rows, upto] = pm[l].p[rows] @ pm[l].p[upto].T / S
                Phi[l][upto, rows] = Phi[l][rows, upto].T
                if tm[l] is not None:
                    tm[l].sweep_h(k, Hk)
                    if l <= L - 1:
                        RA4 = RA[l][rows].reshape(Pt, g.n_t, Pt)
                        RA4[:, :k + 1, :P] = tm[l].ra_rows(k)
            # ---- output f[k] and Delta[k]
            if one is not None:
                one.step_h(k, H[L][rows, past] @ one.dg[past], S)
                c = one.dp[rows].mean(axis=1)
            elif self.f_estimator == "stein":
                c = (pm[L].p[rows] - act.fn(pm[L].u[k])) @ bank.rL / S
            else:
                c = pm[L].p[rows] @ bank.rL / S
            f[k] = c / self.gamma0
            if k:
                f[k] += g.dt / P * np.einsum("mjn,jn->m", A[k, :, :k, :P],
                                             delta.reshape(g.n_t, Pt)[:k, :P])
            delta[k * Pt:k * Pt + P] = y - f[k, :P]
            # ---- backward fields, layers L..1
            for l in range(L, 0, -1):
                if l <= L - 1:
                    Crow = chol_r[l].append()
                    pm[l].r[k] = Crow @ bank.eps_r[l][upto]
                Zk = Z[l][rows, upto]
                Zk[:, : k * Pt] = coef * G[l + 1][rows, past] * delta[None, past]
                if l <= L - 1:
                    Zk += RB[l][rows, upto]
                pm[l].step_z(k, Zk @ pm[l].p[upto], S)
                G[l][rows, upto] = pm[l].g[rows] @ pm[l].g[upto].T / S
                G[l][upto, rows] = G[l][rows, upto].T
                if tm[l] is not None:
                    tm[l].sweep_z(k, Zk)
                    if l >= 2:
                        RB4 = RB[l - 1][rows].reshape(Pt, g.n_t, Pt)
                        RB4[:, :k + 1, :] = tm[l].rb_rows(k)
                if l == L and one is not None:
                    one.step_z(k, Zk @ one.dp[upto], S)
        return DMFTState(g, y, Phi, G, RA, RB, f)
