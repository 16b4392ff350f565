r"""Randomised-probe responses: one tangent per sample instead of one per (point, time) seed.

The exact estimator (:mod:`~meanfield_solvers.dmft.march`, docs/dmft.md §3.3(a)) marches one
forward-mode tangent per unit seed: :math:`R\cdot(T+1)` tangents per tangent sample, a cost
:math:`\propto (PT)^3` per sample. Here each sample :math:`s` carries ``K`` fixed Rademacher
directions :math:`v_s` over all its seeds (r-seeds on training points, u-seeds on all points, all
times) and marches **one** tangent per direction, :math:`J_s v_s` (docs/dmft.md §3.3(c)):

.. math::
    dh[k] = v_u[k] + \sum_{j<k}H[k,j]\,dg[j],\qquad d\phi[k] = \phi'(h[k])\,dh[k],

    dz[k] = v_r[k] + \sum_{j\le k}Z[k,j]\,d\phi[j],\qquad
    dg[k] = \phi''(h[k])z[k]\,dh[k] + \phi'(h[k])\,dz[k].

Because :math:`\mathbb E[v_iv_j] = \delta_{ij}`, :math:`\mathbb E[(J_sv_s)_a\,v_{s,b}] = (J_s)_{ab}`:
the average of :math:`(J_sv_s)[k]\,v_s[j]` over samples and directions is an unbiased estimate of the
response :math:`R[k,j] = \langle J[k,j]\rangle`, with no inverse of any kernel (unlike the Stein form
:math:`\langle F r^\top\rangle G^{-1}`, docs/dmft.md §3.3(b)).

**Past-only correlation (variance reduction, exact).** The tangent at time ``k`` is the sum of the
responses to the directions of every time :math:`j\le k`. The part due to the same-time directions
:math:`v[k]` is *local* and known per sample: :math:`\phi'(h[k])\,v_u[k]` in :math:`d\phi[k]`, and
:math:`\phi''(h[k])z[k]\,v_u[k] + \phi'(h[k])\,(v_r[k] + Z[k,k]\,\phi'(h[k])v_u[k])` in :math:`dg[k]`.
These terms are O(1) while the responses to earlier times are O(:math:`\gamma_0\,dt`), so leaving them
in would swamp every off-diagonal estimate with noise of variance ~P per sample. The estimator
therefore correlates only the *past part* (the tangent minus its same-time part, computed exactly
from the march's own accumulators) with :math:`v[j]`, :math:`j<k` (still unbiased: the past part is
:math:`\sum_{i<k}J[k,i]v_i`), and takes the same-time blocks from their closed form:

* :math:`R_A[k,j] = \langle\partial\phi(h[k])/\partial r[j]\rangle`: the past part of :math:`d\phi[k]`
  against :math:`v_r[j]`, :math:`j<k`; :math:`R_A[k,k] = 0` exactly (:math:`h[k]` does not see
  :math:`r[k]`), as in the exact estimator.
* :math:`R_B[k,j] = \langle\partial g[k]/\partial u[j]\rangle`: the past part of :math:`dg[k]` against
  :math:`v_u[j]`, :math:`j<k`; the same-time block exactly,
  :math:`R_B[k,k]_{\mu\nu} = \delta_{\mu\nu}\langle\phi''(h_\mu)z_\mu\rangle
  + Z[k,k]_{\mu\nu}\langle\phi'(h_\mu)\phi'(h_\nu)\rangle` (what the exact tangents give for a seed
  at time ``k``, averaged over the same samples).

Support: exactly that of the exact estimator (causal mask :math:`j<k`, same-time block of
:math:`R_B` only; test-point columns of :math:`R_A` are zero). Variance per sample of an entry
:math:`R[k,j]`, :math:`j<k`: :math:`\mathrm{Var}_s J[k,j] + K^{-1}\sum_{i<k,\,i\ne j}\langle J[k,i]^2\rangle`
(the second term from the other directions; about ``k P`` entries of size :math:`\gamma_0 dt`), against
:math:`\mathrm{Var}_s J[k,j]` for the exact tangents, at a cost per sample of ``K`` tangents instead of
:math:`\sim P(T+1)`: per unit cost the two are comparable at small :math:`PT`, and the probe's
cost grows as :math:`(PT)^2` per sample instead of :math:`(PT)^3` (measured: BENCHMARKS.md).

The directions are fixed for the whole solve (common random numbers, as the white noise of
:mod:`~meanfield_solvers.dmft.sources`): the sampled map stays deterministic, so the causal sweep still
lands on its fixed point in one pass. They come from their own stream,
``SeedSequence(seed, spawn_key=(PROBE_STREAM,))``, independent of the white noise (drawn from
``SeedSequence(seed)``), and belong to their samples: an error batch (a block of samples) uses the
directions of its own samples, so the batch spread includes the probe noise.
"""
from __future__ import annotations

import numpy as np

from .grid import Grid

__all__ = ["PROBE_STREAM", "PART", "CHUNK", "ProbeBank", "ProbeTangents", "probe_averages"]

#: spawn key of the probes' stream under the solve's seed (the white noise uses SeedSequence(seed) itself)
PROBE_STREAM = 19
#: tangent columns per part in the causal sweep's threads: fixed, so the result does not depend on ``workers``
PART = 1024
#: samples per chunk of the Jacobi map's probe march (fixed, for the same reason)
CHUNK = 512


def _rademacher(rng, shape):
    return rng.integers(0, 2, size=shape, dtype=np.int8).astype(float) * 2.0 - 1.0


class ProbeBank:
    r"""Fixed Rademacher directions of every sample, per layer (see module doc).

    Parameters
    ----------
    n_max : int, rows ``(T_max+1) * n_pts`` of the longest horizon (shorter horizons use leading rows)
    n_pts, n_train, L, S : points, training points, hidden layers, samples
    K : int, directions per sample
    seed : int, the solve's seed (the stream is ``SeedSequence(seed, spawn_key=(PROBE_STREAM,))``)

    Attributes
    ----------
    v_r[l] : (n_max, K, S) for l = 1..L-1 (zero on test-point rows: test points carry no loss);
    v_u[l] : (n_max, K, S) for l = 2..L; ``None`` elsewhere.
    """

    def __init__(self, n_max, n_pts, n_train, L, S, K, seed):
        if int(K) != K or K < 1:
            raise ValueError(f"probes per sample must be a positive integer, got {K!r}")
        self.K, self.S, self.L = int(K), int(S), int(L)
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PROBE_STREAM,)))
        n_t = n_max // n_pts
        self.v_r = [None] * (L + 1)
        self.v_u = [None] * (L + 1)
        for l in range(1, L + 1):  # fixed draw order: layer by layer, r before u
            if l <= L - 1:
                v = np.zeros((n_t, n_pts, self.K, self.S))
                v[:, :n_train] = _rademacher(rng, (n_t, n_train, self.K, self.S))
                self.v_r[l] = v.reshape(n_max, self.K, self.S)
            if l >= 2:
                self.v_u[l] = _rademacher(rng, (n_max, self.K, self.S))

    def subset(self, cols: slice) -> "ProbeBank":
        """The directions of a contiguous block of samples (an error batch keeps its own probes)."""
        out = object.__new__(ProbeBank)
        out.K, out.L = self.K, self.L
        out.v_r = [None if v is None else v[:, :, cols] for v in self.v_r]
        out.v_u = [None if v is None else v[:, :, cols] for v in self.v_u]
        out.S = next(v.shape[2] for v in out.v_r + out.v_u if v is not None) if self.L >= 2 else 0
        return out

    def directions(self, kind: str, l: int, n: int):
        """``(n, K*S)`` directions of layer ``l`` (column ``q*S + s``: direction q of sample s), or None."""
        v = (self.v_r if kind == "r" else self.v_u)[l]
        if v is None:
            return None
        return np.ascontiguousarray(v[:n]).reshape(n, self.K * v.shape[2])


class ProbeTangents:
    r"""The probe tangents of ``c`` samples of one layer, ``K`` directions each (``K*c`` columns).

    Usable by the blocked march (:func:`~meanfield_solvers.dmft.march.causal_march` calls
    :meth:`step_h`, :meth:`step_z` with the accumulated memory sums) and step by step by the causal
    sweep (:meth:`sweep_h`, :meth:`sweep_z` with the memory rows). Column ``q*c + s`` is direction
    ``q`` of sample ``s``.

    Parameters
    ----------
    act : Activation (``d1``, ``d2``)
    h, z : (n, c) primal histories (row block ``k`` final before step ``k``)
    Vr, Vu : (≥ n, K*c) directions (r on training points, u on all points) or None
    grid : Grid
    K : int
    keep_past : bool, store the past parts' histories (the Jacobi map estimates all rows at the end)
    Z : (n, n) memory operator, for :meth:`step_z` (its same-time blocks ``Z[k,k]``)
    pool, workers : thread pool of the sweep (columns split into parts of :data:`PART`)
    """

    def __init__(self, act, h, z, Vr, Vu, grid: Grid, K: int, keep_past=False, Z=None, pool=None, workers=1):
        self.act, self.h, self.z, self.grid = act, h, z, grid
        self.Vr, self.Vu, self.K, self.Z = Vr, Vu, int(K), Z
        self.c = h.shape[1]
        C = self.C = self.K * self.c
        n, P = grid.n, grid.n_pts
        self.dp = np.zeros((n, C))
        self.dg = np.zeros((n, C))
        self.keep_past = keep_past
        self.pp = np.zeros((n, C)) if keep_past and Vr is not None else None  # past part of dφ
        self.gp = np.zeros((n, C)) if keep_past and Vu is not None else None  # past part of dg
        self.same = np.zeros((grid.n_t, P, P)) if Vu is not None else None   # exact R_B[k,k] blocks
        self._pp_k = self._gp_k = None
        self.pool, self.workers = pool, max(1, int(workers))
        self.parts = [slice(a, min(a + PART, C)) for a in range(0, C, PART)]

    def _run(self, fn):
        """``fn(part)`` for every column part, on the pool when there is one (disjoint columns)."""
        if self.pool is None or self.workers < 2 or len(self.parts) < 2:
            for p in self.parts:
                fn(p)
            return
        for f in [self.pool.submit(fn, p) for p in self.parts]:
            f.result()

    # ---- one step, given the accumulated memory sums -------------------------------------------
    def _h(self, k, acc, cols):
        """``acc[:, cols]`` = Σ_{j<k} H[k,j] dg[j] (the past part of dh[k])."""
        rows = self.grid.rows(k)
        b = self._b[:, cols]
        dh = acc + self.Vu[rows, cols] if self.Vu is not None else acc
        np.multiply(dh, b, out=self.dp[rows, cols])
        self._dh[:, cols] = dh
        self._hpast[:, cols] = acc
        if self.Vr is not None:
            np.multiply(acc, b, out=self._pp_k[:, cols])

    def _z(self, k, acc, cols, Zkk):
        """``acc[:, cols]`` = Σ_{j≤k} Z[k,j] dφ[j] (includes the same-time dφ[k])."""
        rows = self.grid.rows(k)
        b, a = self._b[:, cols], self._a[:, cols]
        dz = acc + self.Vr[rows, cols] if self.Vr is not None else acc
        out = self.dg[rows, cols]
        np.multiply(dz, b, out=out)
        out += a * self._dh[:, cols]
        if self.Vu is not None:
            # the same-time directions' share of acc: Z[k,k] φ'(h[k]) v_u[k]; the rest is the past part
            past = acc - Zkk @ (b * self.Vu[rows, cols])
            g_past = self._gp_k[:, cols]
            np.multiply(past, b, out=g_past)
            g_past += a * self._hpast[:, cols]

    def _begin_h(self, k):
        rows, P = self.grid.rows(k), self.grid.n_pts
        self._b1 = self.act.d1(self.h[rows])  # (n_pts, c), reused by the z half of the step
        self._b = np.tile(self._b1, (1, self.K)) if self.K > 1 else self._b1
        self._dh = np.empty((P, self.C))
        self._hpast = np.empty((P, self.C))
        if self.Vr is not None:
            self._pp_k = self.pp[rows] if self.pp is not None else np.empty((P, self.C))

    def _begin_z(self, k, Zkk):
        rows, P = self.grid.rows(k), self.grid.n_pts
        a = self.act.d2(self.h[rows]) * self.z[rows]
        self._a = np.tile(a, (1, self.K)) if self.K > 1 else a
        if self.Vu is not None:
            self._gp_k = self.gp[rows] if self.gp is not None else np.empty((P, self.C))
            b = self._b1
            self.same[k] = Zkk * (b @ b.T / self.c)
            self.same[k][np.diag_indices(P)] += a.mean(axis=1)

    def step_h(self, k, acc, cols):
        """Blocked-march step (``acc`` over all columns; ``cols`` is all of them)."""
        self._begin_h(k)
        self._h(k, acc, slice(None))

    def step_z(self, k, acc, cols):
        rows = self.grid.rows(k)
        Zkk = self.Z[rows, rows]
        self._begin_z(k, Zkk)
        self._z(k, acc, slice(None), Zkk)
        self._dh = self._hpast = None

    # ---- causal sweep: one step from the memory rows ------------------------------------------
    def sweep_h(self, k, Hk):
        """Advance to dh[k], dφ[k]; ``Hk`` is the (n_pts, ≥ k n_pts) memory row."""
        P = self.grid.n_pts
        self._begin_h(k)
        past = slice(0, k * P)

        def part(cols):
            acc = Hk[:, past] @ self.dg[past, cols] if k else np.zeros((P, cols.stop - cols.start))
            self._h(k, acc, cols)

        self._run(part)

    def sweep_z(self, k, Zk):
        """Advance to dz[k], dg[k]; ``Zk`` is the (n_pts, ≥ (k+1) n_pts) memory row."""
        P = self.grid.n_pts
        upto = slice(0, (k + 1) * P)
        Zkk = np.ascontiguousarray(Zk[:, k * P:(k + 1) * P])
        self._begin_z(k, Zkk)
        self._run(lambda cols: self._z(k, Zk[:, upto] @ self.dp[upto, cols], cols, Zkk))
        self._dh = self._hpast = None

    def _correlate(self, X, V, k):
        """(n_pts, k n_pts): Σ over columns of X[k] V[<k]ᵀ / C, summed part by part (fixed order)."""
        P = self.grid.n_pts
        past = slice(0, k * P)
        out = np.zeros((P, k * P))
        if not k:
            return out
        prods = [None] * len(self.parts)

        def part(i):
            cols = self.parts[i]
            prods[i] = X[:, cols] @ V[past, cols].T

        if self.pool is None or self.workers < 2 or len(self.parts) < 2:
            for i in range(len(self.parts)):
                part(i)
        else:
            for f in [self.pool.submit(part, i) for i in range(len(self.parts))]:
                f.result()
        for p in prods:
            out += p
        return out / self.C

    def ra_rows(self, k):
        r"""Block row ``k`` of :math:`R_A`: (n_pts, k+1, n_train); the same-time block is 0 exactly."""
        P, n_tr = self.grid.n_pts, self.grid.n_train
        out = np.zeros((P, k + 1, n_tr))
        out[:, :k] = self._correlate(self._pp_k, self.Vr, k).reshape(P, k, P)[:, :, :n_tr]
        return out

    def rb_rows(self, k):
        r"""Block row ``k`` of :math:`R_B`: (n_pts, k+1, n_pts); the same-time block in closed form."""
        P = self.grid.n_pts
        out = np.empty((P, k + 1, P))
        out[:, :k] = self._correlate(self._gp_k, self.Vu, k).reshape(P, k, P)
        out[:, k] = self.same[k]
        return out


def _strict_rows(X, V, grid: Grid, block: int, C: int):
    r"""``M[k, j] = X[k] V[j]ᵀ / C`` for ``j < k`` (block-strictly lower), 0 elsewhere; (n, n)."""
    P, n_t = grid.n_pts, grid.n_t
    M = np.zeros((grid.n, grid.n))
    for k0 in range(1, n_t, block):
        k1 = min(k0 + block, n_t)
        r0, r1 = k0 * P, k1 * P
        M[r0:r1, :(k1 - 1) * P] = X[r0:r1] @ V[:(k1 - 1) * P].T
        for k in range(k0, k1 - 1):  # the block's own upper triangle: times j >= k of row k
            M[k * P:(k + 1) * P, k * P:(k1 - 1) * P] = 0.0
    M /= C
    return M


def probe_averages(act, h, z, H, Z, grid: Grid, Vr, Vu, K: int, block: int = 8, workers: int = 1,
                   chunk: int = None):
    r"""Responses of one layer from the probe tangents of the samples (columns) of ``h, z``.

    The samples are marched in chunks of ``chunk`` (default :data:`CHUNK`) samples, ``workers`` chunks
    at once in threads with one BLAS thread each (a multi-threaded BLAS stalls on a loaded machine,
    meanfield_solvers/threads.py); the chunks' sums are added in chunk order, so the result depends on
    ``chunk`` but not on ``workers``.

    Parameters
    ----------
    act : Activation;  h, z : (n, c) primal histories;  H, Z : (n, n) memory operators
    grid : Grid;  Vr, Vu : (≥ n, K*c) directions (column ``q*c + s``) or None;  K : directions per sample
    block : time steps per blocked GEMM of the march

    Returns
    -------
    dict with ``'RA'`` (n, n) where ``Vr`` is given (zero test-point columns, strictly block-lower)
    and ``'RB'`` (n, n) where ``Vu`` is given (block-lower, same-time blocks in closed form).
    """
    from .march import causal_march
    from ..threads import blas_threads

    n, c = grid.n, h.shape[1]
    m = CHUNK if chunk is None else int(chunk)

    def dirs(V, s0, s1):
        if V is None:
            return None
        return np.ascontiguousarray(V[:n].reshape(n, K, c)[:, :, s0:s1]).reshape(n, K * (s1 - s0))

    def one(s0):
        s1 = min(s0 + m, c)
        vr, vu = dirs(Vr, s0, s1), dirs(Vu, s0, s1)
        tm = ProbeTangents(act, h[:, s0:s1], z[:, s0:s1], vr, vu, grid, K, keep_past=True, Z=Z)
        causal_march(H, Z, grid, tm.dp, tm.dg, tm.step_h, tm.step_z, block)
        return (None if vr is None else _strict_rows(tm.pp, vr, grid, block, 1),
                None if vu is None else _strict_rows(tm.gp, vu, grid, block, 1),
                None if tm.same is None else tm.same * (s1 - s0))

    starts = range(0, c, m)
    sums = [None, None, None]
    with blas_threads(1):
        if workers > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(workers, len(starts))) as pool:
                parts = list(pool.map(one, starts))
        else:
            parts = [one(s0) for s0 in starts]
    for part in parts:  # in chunk order, whatever the number of workers
        for i, x in enumerate(part):
            if x is not None:
                sums[i] = x if sums[i] is None else sums[i] + x
    out = {}
    if Vr is not None:
        RA = sums[0] / (K * c)
        grid.as4(RA)[:, :, :, grid.n_train:] = 0.0
        out["RA"] = RA
    if Vu is not None:
        RB = sums[1] / (K * c)
        RB4 = grid.as4(RB)
        same = sums[2] / c
        for k in range(grid.n_t):
            RB4[k, :, k, :] = same[k]
        out["RB"] = RB
    return out
