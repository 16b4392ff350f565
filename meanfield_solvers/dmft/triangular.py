r"""Tangents of the causal sweep stored by seed time: the lower triangle only.

The tangent of a unit seed placed at time :math:`s` (``du = e_{(s,\nu)}`` or ``dr = e_{(s,\nu)}``,
docs/dmft.md §3.3) vanishes at every time before :math:`s` (the march is causal). A dense history
``(n, R * c)`` (:class:`~meanfield_solvers.dmft.march.TangentMarch`) stores those zeros and multiplies
them: half its memory and half its flops are spent on them. Here the seeds of time :math:`s` form
one *group* with its own history of the times :math:`k \ge s`,

.. math::
    D_s \in \mathbb{R}^{(T+1-s)\,n_{pts} \times (n_r + n_u)\,c},\qquad
    \text{row } (k-s)\,n_{pts}+\mu,\ \text{column } \text{seed}\cdot c + \text{sample},

and step :math:`k` of group :math:`s` is one GEMM over the group's own past,
``H[k, s:k] @ dg_s[:k-s]`` (then the same for ``Z``, which includes the instantaneous block
``j = k``). Storage :math:`\sum_s (T+1-s) = (T+1)(T+2)/2` time rows per group instead of
:math:`(T+1)^2`; flops :math:`\sum_k\sum_{s\le k}(k-s)\approx T^3/6` block products instead of
:math:`\approx T^3/3`. The arithmetic per entry is that of the dense march (the same products of the same
non-zero numbers), only the GEMMs' summation order over the vanishing entries differs, so results
agree with it to rounding (~1e-16 relative).

Within a group the column order is that of :class:`~meanfield_solvers.dmft.march.SeedLayout`: first the
``n_r`` r-seeds (training points), then the ``n_u`` u-seeds (all points), sample-minor.
"""
from __future__ import annotations

import numpy as np

from .grid import Grid

__all__ = ["TriangularTangents", "triangular_rows"]


def triangular_rows(n_t: int) -> int:
    """Time rows stored per seed group summed over the groups: ``n_t (n_t + 1) / 2``."""
    return n_t * (n_t + 1) // 2


class TriangularTangents:
    r"""Forward-mode tangents of ``c`` samples of one layer, advanced step by step (causal sweep).

    Parameters
    ----------
    act : Activation (``d1``, ``d2``)
    h, z : (n, c) primal histories of the tangent samples (row block ``k`` final before step ``k``)
    nr, nu : r-seeds (training points) and u-seeds (all points) per seed time
    grid : Grid
    """

    def __init__(self, act, h, z, nr: int, nu: int, grid: Grid, pool=None, workers: int = 1):
        self.act, self.h, self.z, self.grid = act, h, z, grid
        self.pool, self.workers = pool, max(1, int(workers))
        self.c = h.shape[1]
        self.nr, self.nu = int(nr), int(nu)
        self.per_t = self.nr + self.nu
        P, n_t, w = grid.n_pts, grid.n_t, self.per_t * self.c
        self.dp = [np.zeros(((n_t - s) * P, w)) for s in range(n_t)]
        self.dg = [np.zeros(((n_t - s) * P, w)) for s in range(n_t)]
        self._dh = [None] * n_t
        self._b = None
        self._pts = np.arange(P)
        self._train = np.arange(grid.n_train)

    def _row(self, X, s, k):
        """Time-``k`` rows of group ``s`` as a (n_pts, per_t, c) view."""
        P = self.grid.n_pts
        return X[s][(k - s) * P:(k - s + 1) * P].reshape(P, self.per_t, self.c)

    def _parts(self, k):
        """The groups s ≤ k split into ``workers`` contiguous runs of about equal work (∝ k − s + 1)."""
        if self.pool is None or self.workers < 2 or k < 2 * self.workers:
            return [range(k + 1)]
        work = np.cumsum(np.arange(k + 1, 0, -1, dtype=float))
        cuts = np.searchsorted(work, work[-1] * np.arange(1, self.workers) / self.workers)
        edges = [0, *sorted(set(int(c) + 1 for c in cuts)), k + 1]
        return [range(a, b) for a, b in zip(edges, edges[1:]) if b > a]

    def _run(self, fn, k):
        """``fn(s)`` for every group s ≤ k, on the pool's threads when there is one (groups are disjoint
        arrays; numpy's products and ufuncs release the GIL; every group's arithmetic is the same
        whatever the split, so the result does not depend on ``workers``)."""
        parts = self._parts(k)
        if len(parts) == 1:
            for s in parts[0]:
                fn(s)
            return
        for f in [self.pool.submit(lambda part=part: [fn(s) for s in part]) for part in parts]:
            f.result()

    def step_h(self, k: int, Hk) -> None:
        r"""Advance every group to :math:`dh[k]`, :math:`d\phi[k]`; ``Hk`` is the (n_pts, ≥ k n_pts) memory row."""
        P, c = self.grid.n_pts, self.c
        rows = self.grid.rows(k)
        b = self.act.d1(self.h[rows])[:, None, :]
        self._b = b

        def group(s):
            if s < k:
                dh = (Hk[:, s * P:k * P] @ self.dg[s][:(k - s) * P]).reshape(P, self.per_t, c)
            else:  # the group's seeds enter now: dh[k] = du[k]
                dh = np.zeros((P, self.per_t, c))
                if self.nu:
                    dh[self._pts, self.nr + self._pts, :] = 1.0
            np.multiply(dh, b, out=self._row(self.dp, s, k))
            self._dh[s] = dh

        self._run(group, k)

    def step_z(self, k: int, Zk) -> None:
        r"""Advance every group to :math:`dz[k]`, :math:`dg[k]`; ``Zk`` is the (n_pts, ≥ (k+1) n_pts) row."""
        P, c = self.grid.n_pts, self.c
        rows = self.grid.rows(k)
        a = (self.act.d2(self.h[rows]) * self.z[rows])[:, None, :]
        curv = bool(np.any(a))

        def group(s):
            dz = (Zk[:, s * P:(k + 1) * P] @ self.dp[s][:(k - s + 1) * P]).reshape(P, self.per_t, c)
            if s == k and self.nr:  # the group's r-seeds: dr[k] = e
                dz[self._train, self._train, :] += 1.0
            out = self._row(self.dg, s, k)
            np.multiply(dz, self._b, out=out)
            if curv:
                out += self._dh[s] * a
            self._dh[s] = None

        self._run(group, k)

    # the causal sweep's tracker interface (meanfield_solvers/dmft/responses.py)
    def sweep_h(self, k: int, Hk) -> None:
        self.step_h(k, Hk)

    def sweep_z(self, k: int, Zk) -> None:
        self.step_z(k, Zk)

    def ra_rows(self, k: int):
        r"""Block row ``k`` of :math:`R_A` (r-seeds): (n_pts, k+1, n_r)."""
        return self.response_rows(self.dp, k, "r")

    def rb_rows(self, k: int):
        r"""Block row ``k`` of :math:`R_B` (u-seeds): (n_pts, k+1, n_u)."""
        return self.response_rows(self.dg, k, "u")

    def response_rows(self, X, k: int, seeds: str):
        r"""Sample means at time ``k`` of ``X`` (``self.dp`` or ``self.dg``) for the r- or u-seeds of
        every group :math:`s \le k`: (n_pts, k+1, n_r or n_u), i.e. block row ``k`` of the response,
        columns ``(s, ν)`` for ``s ≤ k`` (later columns are zero by causality)."""
        sl = slice(0, self.nr) if seeds == "r" else slice(self.nr, self.per_t)
        return np.stack([self._row(X, s, k)[:, sl, :].mean(axis=2) for s in range(k + 1)], axis=1)
