r"""Forward march of the single-site processes for a whole batch of samples, and their tangents.

Discrete single-site process of one layer (docs/dmft.md §3.1), left-point rule, strict causality:

.. math::
    h[k] = u[k] + \sum_{j<k} H[k,j]\,g[j],\qquad \phi[k] = \phi(h[k]),

    z[k] = r[k] + \sum_{j\le k} Z[k,j]\,\phi[j],\qquad g[k] = \phi'(h[k])\,z[k],

with ``H``, ``Z`` the (n, n) memory operators of :func:`meanfield_solvers.dmft.state.memory_operators`.
Samples are columns: an ``(n, S)`` history per field, so each step is a pair of GEMMs over the whole
batch; there is no loop over samples.

The march is a blocked forward substitution (:func:`causal_march`): for a block of ``block`` time
steps the contribution of all earlier times is one GEMM ``H[block, :past] @ g[:past]`` (arithmetic
intensity ∝ block size, so it runs near peak BLAS speed instead of being limited by memory bandwidth),
and only the couplings inside the block are done step by step.

Tangents (exact forward-mode derivatives with unit seeds, docs/dmft.md §3.3(a)) obey the linearised march

.. math::
    dh[k] = du[k] + \sum_{j<k}H[k,j]\,dg[j],\quad d\phi[k] = \phi'(h[k])\,dh[k],

    dz[k] = dr[k] + \sum_{j\le k}Z[k,j]\,d\phi[j],\quad
    dg[k] = \phi''(h[k])\,z[k]\,dh[k] + \phi'(h[k])\,dz[k],

with one seed per source component, ``du = e_{(j,ν)}`` or ``dr = e_{(j,ν)}``. Averaging gives the
discrete responses exactly causally, with no matrix inverse:
:math:`R_A^\ell = \langle\partial\phi(h^\ell)/\partial r^\ell\rangle` (r-seeds, training points
only — the response to a test point's backward source is identically zero because test points carry
no loss), :math:`R_B^{\ell-1} = \langle\partial g^\ell/\partial u^\ell\rangle` (u-seeds, all points;
its diagonal time blocks contain the instantaneous :math:`\langle\phi''(h)z\rangle` term), and the
"one" seed ``dr = 1`` (all components; :math:`r^L` is one scalar per sample) for the output term
:math:`\langle\partial\phi(h^L)/\partial r^L\rangle`. Seeds are ordered by time, so at step ``k``
only the columns of seeds at times ≤ k are active (a seed's tangent vanishes before its time).

This estimator needs :math:`\phi''` as a function; for relu it is a Dirac delta and the pathwise
derivative silently drops the :math:`\delta(h)z` terms (docs/dmft.md §3.3) — the caller refuses that case.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import Grid

__all__ = ["causal_march", "PrimalMarch", "SeedLayout", "TangentMarch", "tangent_averages", "gram"]


def causal_march(H, Z, grid: Grid, p_hist, g_hist, step_h, step_z, block: int = 8, active_cols=None):
    r"""Blocked forward substitution of the coupled causal recursion.

    For k = 0..T: ``acc_h = Σ_{j<k} H[k,j] g[j]``, ``step_h(k, acc_h, cols)`` fills ``p_hist[k]``;
    then ``acc_z = Σ_{j≤k} Z[k,j] p[j]``, ``step_z(k, acc_z, cols)`` fills ``g_hist[k]``.

    Parameters
    ----------
    H, Z : (n, n) arrays (only the causal blocks are read: ``H[k, j<k]``, ``Z[k, j≤k]``)
    grid : Grid
    p_hist, g_hist : (n, C) arrays, written in place by the step functions (must be zero-initialised
        where ``active_cols`` leaves them unwritten)
    step_h, step_z : callables ``(k, acc (n_pts, cols) array, cols) -> None``; they may modify ``acc``
    block : int
        Time steps per block.
    active_cols : callable ``k -> int``, optional
        Number of leading columns that can be non-zero at times ≤ k (default: all).
    """
    P, n_t = grid.n_pts, grid.n_t
    C = p_hist.shape[1]
    for k0 in range(0, n_t, block):
        k1 = min(k0 + block, n_t)
        cols = C if active_cols is None else active_cols(k1 - 1)
        r0, r1 = k0 * P, k1 * P
        if k0 > 0:
            acc_h = H[r0:r1, :r0] @ g_hist[:r0, :cols]
            acc_z = Z[r0:r1, :r0] @ p_hist[:r0, :cols]
        else:
            acc_h = np.zeros((r1 - r0, cols))
            acc_z = np.zeros((r1 - r0, cols))
        for k in range(k0, k1):
            a = (k - k0) * P
            rows = slice(k * P, (k + 1) * P)
            ah = acc_h[a:a + P]
            if k > k0:
                ah += H[rows, r0:k * P] @ g_hist[r0:k * P, :cols]
            step_h(k, ah, cols)
            az = acc_z[a:a + P]
            az += Z[rows, r0:(k + 1) * P] @ p_hist[r0:(k + 1) * P, :cols]
            step_z(k, az, cols)


class PrimalMarch:
    r"""Primal fields of ``S`` samples of one layer: histories ``h, z, p = φ(h), g`` (n, S).

    Parameters
    ----------
    act : Activation (``fn``, ``d1``)
    u, r : (n_t, n_pts, S) arrays (views; constant-in-time sources may be broadcast views)
    grid : Grid
    """

    def __init__(self, act, u, r, grid: Grid):
        self.act, self.u, self.r, self.grid = act, u, r, grid
        S = u.shape[-1]
        self.h = np.empty((grid.n, S))
        self.z = np.empty((grid.n, S))
        self.p = np.zeros((grid.n, S))
        self.g = np.zeros((grid.n, S))

    def step_h(self, k, acc, cols):
        rows = self.grid.rows(k)
        np.add(self.u[k], acc, out=self.h[rows])
        self.p[rows] = self.act.fn(self.h[rows])

    def step_z(self, k, acc, cols):
        rows = self.grid.rows(k)
        np.add(self.r[k], acc, out=self.z[rows])
        np.multiply(self.act.d1(self.h[rows]), self.z[rows], out=self.g[rows])

    def run(self, H, Z, block=8):
        causal_march(H, Z, self.grid, self.p, self.g, self.step_h, self.step_z, block)
        return self


@dataclass(frozen=True)
class SeedLayout:
    """Which unit seeds a tangent march carries, ordered by time.

    Column order (per sample): ``[one] + [r-seeds at t_0 (train points), u-seeds at t_0 (all points),
    r-seeds at t_1, ...]``.
    """

    n_t: int
    n_pts: int
    n_train: int
    r_seeds: bool
    u_seeds: bool
    one_seed: bool
    seed_times: int | None = None  # seeds only at the first seed_times times (None: all n_t)

    @property
    def n_seed_t(self):
        return self.n_t if self.seed_times is None else min(self.seed_times, self.n_t)

    @property
    def n_one(self):
        return int(self.one_seed)

    @property
    def nr(self):
        return self.n_train if self.r_seeds else 0

    @property
    def nu(self):
        return self.n_pts if self.u_seeds else 0

    @property
    def per_t(self):
        return self.nr + self.nu

    @property
    def R(self):
        return self.n_one + self.n_seed_t * self.per_t

    def active(self, k):
        """Seeds (counted from the first column) that can be non-zero at times ≤ k."""
        return self.n_one + min(k + 1, self.n_seed_t) * self.per_t

    def seeds_at(self, k):
        """Whether unit seeds enter at time ``k``."""
        return k < self.n_seed_t

    def r_index(self, k):
        return self.n_one + k * self.per_t + np.arange(self.nr)

    def u_index(self, k):
        return self.n_one + k * self.per_t + self.nr + np.arange(self.nu)

    def r_columns(self):
        """Seed index of r-seed (j, ν) for all j, ν < n_train, j-major."""
        return np.concatenate([self.r_index(k) for k in range(self.n_seed_t)]) if self.nr else np.zeros(0, int)

    def u_columns(self):
        return np.concatenate([self.u_index(k) for k in range(self.n_seed_t)]) if self.nu else np.zeros(0, int)


class TangentMarch:
    r"""Forward-mode tangents of a chunk of ``c`` samples with the unit seeds of a :class:`SeedLayout`.

    Histories ``dp`` (= dφ) and ``dg`` are ``(n, R*c)`` arrays, column ``seed * c + sample``.
    The coefficients :math:`\phi'(h[k])` and :math:`\phi''(h[k])z[k]` are formed at step ``k`` from
    the primal histories, so the tangents can advance in lockstep with a primal march.

    Parameters
    ----------
    act : Activation (``d1``, ``d2``)
    h, z : (n, c) primal histories of the chunk (views; row ``k`` must be final before step ``k``)
    seeds : SeedLayout
    grid : Grid
    """

    def __init__(self, act, h, z, seeds: SeedLayout, grid: Grid):
        self.act, self.h, self.z = act, h, z
        self.grid, self.seeds = grid, seeds
        self.c = h.shape[1]
        self.dp = np.zeros((grid.n, seeds.R * self.c))
        self.dg = np.zeros((grid.n, seeds.R * self.c))
        self._dh = self._b = None
        self._pts = np.arange(grid.n_pts)
        self._train = np.arange(grid.n_train)

    def _view(self, X, rows, cols):
        v = X[rows, :cols].reshape(self.grid.n_pts, cols // self.c, self.c)
        assert np.may_share_memory(v, X)  # a view: results are written in place
        return v

    def step_h(self, k, acc, cols):
        P, c = self.grid.n_pts, self.c
        rows = self.grid.rows(k)
        dh = acc.reshape(P, cols // c, c)
        if self.seeds.nu and self.seeds.seeds_at(k):
            dh[self._pts, self.seeds.u_index(k), :] += 1.0
        self._b = self.act.d1(self.h[rows])[:, None, :]
        np.multiply(dh, self._b, out=self._view(self.dp, rows, cols))
        self._dh = dh

    def step_z(self, k, acc, cols):
        P, c = self.grid.n_pts, self.c
        rows = self.grid.rows(k)
        dz = acc.reshape(P, cols // c, c)
        if self.seeds.nr and self.seeds.seeds_at(k):
            dz[self._train, self.seeds.r_index(k), :] += 1.0
        if self.seeds.one_seed:
            dz[:, 0, :] += 1.0
        out = self._view(self.dg, rows, cols)
        np.multiply(dz, self._b, out=out)
        a = (self.act.d2(self.h[rows]) * self.z[rows])[:, None, :]
        if np.any(a):
            out += self._dh * a

    def run(self, H, Z, block=8):
        causal_march(H, Z, self.grid, self.dp, self.dg, self.step_h, self.step_z, block,
                     active_cols=lambda k: self.seeds.active(k) * self.c)
        return self

    def sums(self):
        """Per-seed sums over the chunk's samples: ``(Σ_s dφ, Σ_s dg)``, each (n, R)."""
        n, R, c = self.grid.n, self.seeds.R, self.c
        return self.dp.reshape(n, R, c).sum(axis=2), self.dg.reshape(n, R, c).sum(axis=2)

    def row_means(self, X, k):
        """Per-seed means over the chunk's samples of rows of time ``k`` of ``X`` (dp or dg): (n_pts, R)."""
        cols = self.seeds.active(k) * self.c
        out = np.zeros((self.grid.n_pts, self.seeds.R))
        out[:, : cols // self.c] = self._view(X, self.grid.rows(k), cols).mean(axis=2)
        return out


def tangent_averages(act, h, z, H, Z, grid: Grid, seeds: SeedLayout, chunk: int, block: int = 8,
                     workers: int = 1):
    r"""Average tangents over the samples (columns) of ``h, z`` processed in chunks.

    Within a chunk the unit seeds of each time t are marched on their own, on the times ≥ t only
    (their tangents vanish before t): the lower triangle of the seed-time × time plane, about half
    the products of one march of all seeds over all times, and histories of one time's seeds at a
    time (measured on the issue-19 setting at 100 tangent samples: 10–11.7 s → 5.1–7.1 s per Jacobi
    application, the tangent part 10 s → 3.5–4.7 s, loaded 2-core machine).

    Chunks are independent marches; ``workers`` > 1 runs that many at once in threads (numpy's
    matrix products and ufuncs release the GIL, and BLAS runs on one thread in each, so the
    chunks use that many cores). The per-chunk sums are added in chunk order whatever the number
    of workers, so the result depends on ``chunk`` but not on ``workers``.

    Returns
    -------
    dict with, where the seeds exist,
      ``'RA'`` (n, n): :math:`\langle\partial\phi[k,\mu]/\partial r[j,\nu]\rangle` (zero for test ν),
      ``'RB'`` (n, n): :math:`\langle\partial g[k,\mu]/\partial u[j,\nu]\rangle`,
      ``'one'`` (n,):  :math:`\langle\partial\phi[k,\mu]/\partial r\rangle` for the all-ones seed.
    """
    S = h.shape[1]
    sum_p = np.zeros((grid.n, seeds.R))
    sum_g = np.zeros((grid.n, seeds.R))
    P, n_t = grid.n_pts, grid.n_t

    def one_chunk(s0):
        s1 = min(s0 + chunk, S)
        if seeds.one_seed or not seeds.R:
            return TangentMarch(act, h[:, s0:s1], z[:, s0:s1], seeds, grid).run(H, Z, block).sums()
        # the seeds of time t vanish before t: march each seed time from t on only (the lower
        # triangle, about half the products of one march over all times; meanfield_solvers.dmft.triangular)
        sp, sg = np.zeros((grid.n, seeds.R)), np.zeros((grid.n, seeds.R))
        for t in range(n_t):
            g_t = Grid(n_t - t, P, grid.n_train, grid.dt)
            one_t = SeedLayout(n_t - t, P, grid.n_train, seeds.r_seeds, seeds.u_seeds, False, seed_times=1)
            r0 = t * P
            p_t, g_t_sums = TangentMarch(act, h[r0:, s0:s1], z[r0:, s0:s1], one_t, g_t).run(
                H[r0:, r0:], Z[r0:, r0:], block).sums()
            cols = slice(t * seeds.per_t, (t + 1) * seeds.per_t)
            sp[r0:, cols] = p_t
            sg[r0:, cols] = g_t_sums
        return sp, sg

    starts = range(0, S, chunk)
    if workers > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        from ..threads import blas_threads

        # one BLAS thread per worker (a no-op when the solve already runs BLAS on one thread)
        with blas_threads(1), ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
            parts = pool.map(one_chunk, starts)  # in order; at most `workers` chunks alive
            for sp, sg in parts:
                sum_p += sp
                sum_g += sg
    else:
        for s0 in starts:
            sp, sg = one_chunk(s0)
            sum_p += sp
            sum_g += sg
    sum_p /= S
    sum_g /= S
    out = {}
    if seeds.nr:
        RA = np.zeros((grid.n, grid.n_t, grid.n_pts))
        RA[:, :, : grid.n_train] = sum_p[:, seeds.r_columns()].reshape(grid.n, grid.n_t, grid.n_train)
        out["RA"] = RA.reshape(grid.n, grid.n)
    if seeds.nu:
        out["RB"] = np.ascontiguousarray(sum_g[:, seeds.u_columns()])
    if seeds.one_seed:
        out["one"] = sum_p[:, 0].copy()
    return out


def gram(A):
    r""":math:`A A^\top / S` for ``A`` of shape (n, S) (the kernel estimate from the sample histories)."""
    return (A @ A.T) / A.shape[1]
