r"""Numba CPU backend: fused, tiled pairwise kernels and fused Monte Carlo middles.

Implements the protocol of :mod:`solvers.particles.backends.numpy_backend` (same arguments,
shapes, batch axis and self-interaction convention) and is tested against it to ≤ 1e-10
relative in float64.

Pairwise (analytic expectations), :meth:`NumbaBackend.pairwise`
---------------------------------------------------------------
For each target row :math:`w_i` and sources :math:`w_j` with weights :math:`c_j`
(:math:`q = s^2|w|^2`, :math:`c_{ij} = s^2 w_i\cdot w_j`, :math:`p = 1 + q`):

* erf: :math:`K = \tfrac2\pi\arcsin\big(c_{ij}\,p_i^{-1/2}p_j^{-1/2}\big)`,
  :math:`\partial_cK = \tfrac2\pi (p_ip_j - c_{ij}^2)^{-1/2}`,
  :math:`\sum_j c_j\partial_{q_1}K_{ij} = -\tfrac{1}{2p_i}\sum_j c_j c_{ij}\partial_cK_{ij}`;
* relu: :math:`\rho = c/\sqrt{q_iq_j}`, :math:`\pi-\theta = \pi/2 + \arcsin\rho`,
  :math:`K = (\sqrt{q_iq_j-c^2} + (\pi-\theta)c)/2\pi`, :math:`\partial_cK = (\pi-\theta)/2\pi`,
  :math:`\sum_j c_j\partial_{q_1}K = (4\pi q_i)^{-1}\sum_j c_j\sqrt{q_iq_j-c^2}`;
* linear: :math:`F_i = s^2 w_i\cdot v`, :math:`G_i = s^2 v` with :math:`v = \sum_j c_jw_j`
  (O((n+m)d), no pair loop).

Then :math:`F_i = \sum_j c_jK_{ij}` and
:math:`G_i = s^2\big(2 w_i\sum_j c_j\partial_{q_1}K_{ij} + \sum_j c_j\partial_cK_{ij}\,w_j\big)`.

The kernel is one fused pass, O(N) memory: ``prange`` over tasks of ``R`` = 4 target rows
(and seeds), the sources strip-mined in blocks of ``B`` = 256 with ``W`` stored transposed
(d × m) so that the three inner loops (dot products for the R rows, the elementwise kernel, the
gradient reductions Σ_j u_j w_jk) run at unit stride and vectorise. ``asin`` is the
branch-free polynomial of :mod:`._approx` (libm ``asin`` would not vectorise). Reductions are
written as stores into a per-thread scratch block followed by a small summation helper compiled
with ``reassoc`` (so it vectorises) while the elementwise code is compiled without
reassociation (the argument reduction of ``exp`` depends on evaluation order).

Self-interaction (``wi is wj``): :math:`c_{ii} = q_i` exactly, and for relu
:math:`q_iq_i - c_{ii}^2 = 0` exactly (FMA contraction would otherwise leave an
:math:`O(\sqrt{\epsilon})` term under the square root), as in the reference.

Monte Carlo, :meth:`NumbaBackend.mc_forward` / :meth:`NumbaBackend.mc_backward`
-----------------------------------------------------------------------------------
Matrix products stay in BLAS (numpy ``matmul``, called outside any ``prange`` region so the two
thread pools never run at once); the elementwise middle (activation, derivative, residual
weighting, row sums) is one fused ``prange`` kernel per particle chunk:

* forward: :math:`Z = X W_c^T` (M × N_c), then :math:`f_m \mathrel{+}= \sum_i a_i\sigma(Z_{mi}+b_i)`;
* backward: :math:`Z^T = W_c X^T` (N_c × M), the kernel overwrites it with
  :math:`D_{im} = \tfrac{r_m}{M}\sigma'(Z_{im}+b_i)` while forming
  :math:`g^a_i = \sum_m \tfrac{r_m}{M}\sigma(\cdot)` and :math:`g^b_i = \sum_m D_{im}`, then
  :math:`g^w_c = D X` (BLAS).

Particles (and seeds) are chunked so that the Z block stays within ``block_bytes`` (default
32 MiB), which bounds memory at N = 10⁶ and beyond. Measured on the loaded 2-core machine
(N = M = 10⁴, d = 20, erf): 2.3 s per step with 32 MiB blocks, 2.9 s with 8 MiB, 6.1 s with
2 MiB: the cost of waking the worker threads for each chunk dominates small blocks. BLAS is
limited to one thread around the chunk loop (:func:`solvers.threads.blas_threads`): with two
BLAS threads spinning between calls the same step took 6.9 s instead of 1.9 s. Workspaces are kept on the
backend object and reused across calls (no page faults per step); a backend instance is
therefore not safe to share between Python threads. Linear units use the O((N+M)d) identities
(:math:`f = \alpha X\sum_i a_iw_i + \ldots`), other activations without a fused kernel fall back
to the numpy reference.

dtypes: float64 (default) and float32 are compiled once each (one signature per dtype); all
constants are cast to the array dtype (no float64 leaks into float32 code). Other inputs are
converted to float64. Float32 accuracy, relative (norm-wise) to the float64 reference
evaluated on the same float32-rounded inputs, measured: pairwise erf/relu F and G ≤ 1.5e-7
(N = 256 and 4096, d = 10; the float32 numpy reference itself is at 2e-7–7e-7), MC forward and
backward ≤ 4.3e-7 (N = M = 2000, d = 20). Tests use 2e-6 against the float32 reference.
Pairwise sums are carried in float64 across source blocks; the MC sums are float32
(vectorised partial sums within a chunk, then across chunks).

Threads: set ``NUMBA_NUM_THREADS`` (and the BLAS threads) to the cores you own.
"""
from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads, njit, prange

from . import _approx
from ._approx import fasin, like, tiny_like
from .numpy_backend import NumpyBackend

__all__ = ["NumbaBackend", "probe"]

# Elementwise kernels: FMA contraction yes, reassociation no (see module docstring).
KFLAGS = {"nsz", "contract"}
# Reductions only: reassociation lets LLVM vectorise the running sum.
RFLAGS = {"nsz", "contract", "reassoc"}

R = 4  # target rows per task (register blocking of the w_j loads)
B = 256  # source block (strip mining): R*B*8 B per scratch row-block, L1 resident

_ACT_CODE = {"erf": 1, "relu": 2, "tanh": 3}
_TWO_OVER_PI = 2.0 / math.pi
_INV_2PI = 1.0 / (2.0 * math.pi)
_INV_4PI = 1.0 / (4.0 * math.pi)
_PIO2 = math.pi / 2.0


def probe():
    """(ok, reason): numba imports (it is a hard dependency, so this is normally True)."""
    return True, ""


# ------------------------------------------------------------------ reduction helpers
@njit(fastmath=RFLAGS, error_model="numpy", cache=True)
def _sum(x, n):
    s = x[0] * like(0.0, x[0])
    for j in range(n):
        s += x[j]
    return s


@njit(fastmath=RFLAGS, error_model="numpy", cache=True)
def _dot(x, y, n):
    s = x[0] * like(0.0, x[0])
    for j in range(n):
        s += x[j] * y[j]
    return s


# ------------------------------------------------------------------ pairwise kernel
@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _pairwise_rows(code, s, i0, wi, wjT, qi, qj, aux_i, aux_j, cj, s2, selfint, F, G, dot, uu, kk,
                   tt, gacc, facc, tacc):
    """F, G for the target rows i0 .. i0+R-1 of seed s (one task of :func:`_pairwise_kernel`).

    The last arguments are per-thread scratch: dot, uu (R, B); kk, tt (B,);
    gacc (R, d), facc, tacc (R,) float64 accumulators.
    """
    n, d = wi.shape[1:]
    m = wjT.shape[2]
    sj = s if wjT.shape[0] > 1 else 0
    sc = s if cj.shape[0] > 1 else 0
    nr = min(R, n - i0)
    z0 = like(0.0, s2)
    one = like(1.0, s2)
    tiny = tiny_like(s2)
    two_pi_inv = like(_TWO_OVER_PI, s2)
    for r in range(nr):
        facc[r] = 0.0
        tacc[r] = 0.0
        for k in range(d):
            gacc[r, k] = 0.0
    for j0 in range(0, m, B):
        bl = min(B, m - j0)
        # --- dot products of the R rows with the block (unit stride in j). 1-D views indexed
        # by the bare range variable: numba's negative-index wraparound on a computed index
        # (j0 + jj) kept this loop from vectorising well (measured ~2x slower pairs)
        for r in range(nr):
            dr = dot[r]
            w0 = wi[s, i0 + r, 0]
            row = wjT[sj, 0, j0 : j0 + bl]
            for jj in range(bl):
                dr[jj] = w0 * row[jj]
            for k in range(1, d):
                wk = wi[s, i0 + r, k]
                row = wjT[sj, k, j0 : j0 + bl]
                for jj in range(bl):
                    dr[jj] += wk * row[jj]
        # --- elementwise kernel, stored for the reductions
        qb = qj[sj, j0 : j0 + bl]
        ab = aux_j[sj, j0 : j0 + bl]
        cb = cj[sc, j0 : j0 + bl]
        for r in range(nr):
            i = i0 + r
            q1 = qi[s, i]
            a1 = aux_i[s, i]
            diag = i - j0 if selfint else -1
            dr = dot[r]
            ur = uu[r]
            if code == 1:
                p1 = one + q1
                for jj in range(bl):
                    c = q1 if jj == diag else s2 * dr[jj]
                    cw = cb[jj]
                    det = max(p1 * (one + qb[jj]) - c * c, tiny)
                    dc = two_pi_inv / math.sqrt(det)
                    sa = min(max(c * a1 * ab[jj], -one), one)
                    kk[jj] = cw * (two_pi_inv * fasin(sa))
                    tt[jj] = cw * c * dc
                    ur[jj] = cw * dc
            else:
                for jj in range(bl):
                    c = q1 if jj == diag else s2 * dr[jj]
                    cw = cb[jj]
                    qq = q1 * qb[jj]
                    dd = z0 if jj == diag else qq - c * c
                    det = math.sqrt(max(dd, z0))
                    rho = c / math.sqrt(qq) if qq > z0 else z0
                    th = like(_PIO2, s2) + fasin(min(max(rho, -one), one))
                    kk[jj] = cw * ((det + th * c) * like(_INV_2PI, s2))
                    tt[jj] = cw * det
                    ur[jj] = cw * (th * like(_INV_2PI, s2))
            facc[r] += _sum(kk, bl)
            tacc[r] += _sum(tt, bl)
        # --- gradient reductions sum_j u_j w_jk
        for r in range(nr):
            ur = uu[r]
            for k in range(d):
                gacc[r, k] += _dot(ur, wjT[sj, k, j0 : j0 + bl], bl)
    for r in range(nr):
        i = i0 + r
        q1 = qi[s, i]
        if code == 1:
            coef = -tacc[r] / (1.0 + q1)  # 2 * sum_j c_j dK/dq1
        else:
            coef = 2.0 * tacc[r] * _INV_4PI / q1 if q1 > 0.0 else 0.0
        F[s, i] = facc[r]
        for k in range(d):
            G[s, i, k] = s2 * (coef * wi[s, i, k] + gacc[r, k])


@njit(parallel=True, error_model="numpy", cache=True)
def _pairwise_kernel(code, nth, wi, wjT, qi, qj, aux_i, aux_j, cj, s2, selfint, F, G):
    """Fused pairwise sums (see the module docstring): prange over tasks of R target rows.

    Parameters
    ----------
    code : 1 erf, 2 relu 
    nth : number of worker tasks (threads)
    wi : (S, n, d) targets; wjT : (Sj, d, m) sources, transposed; Sj ∈ {1, S}
    qi : (S, n), qj : (Sj, m) scaled squared norms s²|w|²
    aux_i, aux_j : erf: (1+q)^(-1/2); relu: unused (same shapes as qi, qj)
    cj : (Sc, m) source weights, Sc ∈ {1, S}
    s2 : scale², selfint : bool (wi is wj: exact diagonal)
    F : (S, n) float64 out, G : (S, n, d) float64 out
    """
    S, n, d = wi.shape
    nrb = (n + R - 1) // R
    ntask = S * nrb
    nth = max(1, min(nth, ntask))
    for t in prange(nth):
        # per-thread scratch, allocated once per call (not per task)
        dot = np.empty((R, B), dtype=wi.dtype)
        uu = np.empty((R, B), dtype=wi.dtype)
        kk = np.empty(B, dtype=wi.dtype)
        tt = np.empty(B, dtype=wi.dtype)
        gacc = np.empty((R, d), dtype=np.float64)
        facc = np.empty(R, dtype=np.float64)
        tacc = np.empty(R, dtype=np.float64)
        for task in range(t, ntask, nth):
            _pairwise_rows(code, task // nrb, (task % nrb) * R, wi, wjT, qi, qj, aux_i, aux_j,
                           cj, s2, selfint, F, G, dot, uu, kk, tt, gacc, facc, tacc)


# The prange bodies only call these row functions: compiled through the ordinary pipeline (not
# parfor lowering) they vectorise; the same loops written inline in the prange body ran ~14x
# slower (measured).
@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _forward_rows(code, Z, b, a, f, t0, t1):
    """Rows t0..t1-1 of the flattened (seed, sample) axis of :func:`_mc_forward_kernel`."""
    M, Nc = Z.shape[1:]
    for t in range(t0, t1):
        s = t // M
        mm = t % M
        row = Z[s, mm]
        ar = a[s]
        br = b[s]
        if code == 1:
            for i in range(Nc):
                row[i] = ar[i] * _approx.erf_act(row[i] + br[i])
        elif code == 2:
            zero = like(0.0, row[0])
            for i in range(Nc):
                row[i] = ar[i] * max(row[i] + br[i], zero)
        else:
            for i in range(Nc):
                row[i] = ar[i] * _approx.ftanh(row[i] + br[i])
        f[s, mm] += _sum(row, Nc)


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_forward_kernel(code, nth, Z, b, a, f):
    """f[s, m] += sum_i a[s, i] sigma(Z[s, m, i] + b[s, i]); Z is overwritten (scratch).

    Z : (S, M, Nc); b : (S, Nc) (zeros for no bias); a : (S, Nc); f : (S, M).
    ``code`` (1 erf, 2 relu, 3 tanh); ``nth`` the number of tasks.
    """
    S, M, Nc = Z.shape
    rows = S * M
    nth = max(1, min(nth, rows))
    for t in prange(nth):
        _forward_rows(code, Z, b, a, f, (rows * t) // nth, (rows * (t + 1)) // nth)


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _backward_rows(code, Zt, b, rr, ga, gb, t0, t1, tmp):
    """Particles t0..t1-1 of the flattened (seed, particle) axis of :func:`_mc_backward_kernel`."""
    Nc, M = Zt.shape[1:]
    Sr = rr.shape[0]
    for task in range(t0, t1):
        s = task // Nc
        i = task % Nc
        row = Zt[s, i]
        rs = rr[s if Sr > 1 else 0]
        bi = b[s, i]
        if code == 1:
            for mm in range(M):
                v, dv = _approx.erf_act_d1(row[mm] + bi)
                tmp[mm] = rs[mm] * v
                row[mm] = rs[mm] * dv
        elif code == 2:
            zero = like(0.0, row[0])
            for mm in range(M):
                z = row[mm] + bi
                tmp[mm] = rs[mm] * max(z, zero)
                row[mm] = rs[mm] if z > zero else zero
        else:
            for mm in range(M):
                v, dv = _approx.tanh_act_d1(row[mm] + bi)
                tmp[mm] = rs[mm] * v
                row[mm] = rs[mm] * dv
        ga[s, i] = _sum(tmp, M)
        gb[s, i] = _sum(row, M)


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_backward_kernel(code, nth, Zt, b, rr, ga, gb):
    """Overwrite Zt[s, i, m] by rr[s, m] sigma'(Zt + b[s, i]) and set
    ga[s, i] = sum_m rr sigma(.), gb[s, i] = sum_m Zt[s, i, m] (after overwrite).

    Zt : (S, Nc, M); b : (S, Nc) (zeros for no bias); rr : (Sr, M) = r / M, Sr ∈ {1, S};
    ga, gb : (S, Nc). ``code``: 1 erf, 2 relu, 3 tanh.
    """
    S, Nc, M = Zt.shape
    rows = S * Nc
    nth = max(1, min(nth, rows))
    for t in prange(nth):
        tmp = np.empty(M, dtype=Zt.dtype)
        _backward_rows(code, Zt, b, rr, ga, gb, (rows * t) // nth, (rows * (t + 1)) // nth, tmp)


# ------------------------------------------------------------------ the backend
def _single_blas():
    """BLAS limited to one thread around the chunk loops (the project's shared limiter).

    Why: the numba kernels and OpenBLAS run alternately on the same cores; OpenBLAS workers
    spin after each call and starve the numba threads. Measured on the loaded 2-core machine
    (N = M = 10⁴, d = 20, erf): 6.9 s per step with 2 BLAS threads, 1.9 s with 1.
    """
    from ...threads import blas_threads

    return blas_threads(1)


def _float_dtype(*arrays):
    dt = np.result_type(*arrays)
    if dt == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _flat(arr, batch, dtype, core_ndim):
    """Reshape (…batch, core) to (S, core) contiguous; an unbatched array becomes (1, core)."""
    arr = np.asarray(arr, dtype=dtype)
    core = arr.shape[arr.ndim - core_ndim:]
    if arr.shape[: arr.ndim - core_ndim] == ():
        return np.ascontiguousarray(arr.reshape((1,) + core))
    full = np.broadcast_to(arr, batch + core)
    return np.ascontiguousarray(full.reshape((-1,) + core))


class NumbaBackend:
    """Numba CPU implementation of the particle-backend protocol (see the module docstring).

    Parameters
    ----------
    block_bytes : int
        Upper bound on the size of the Monte Carlo Z block (samples × particle chunk × seeds).
    """

    name = "numba"

    def __init__(self, block_bytes: int = 32 * 2**20):
        self.block_bytes = int(block_bytes)
        self._ref = NumpyBackend()
        self._ws: dict = {}

    def _work(self, key, shape, dtype):
        """A reusable scratch array (kept across calls: no fresh pages every step)."""
        need = int(np.prod(shape))
        buf = self._ws.get((key, dtype))
        if buf is None or buf.size < need:
            buf = np.empty(need, dtype=dtype)
            self._ws[(key, dtype)] = buf
        return buf[:need].reshape(shape)

    # ---------------------------------------------------------------- analytic pairwise
    def pairwise(self, act: str, wi, wj, cj, scale2: float = 1.0):
        """Return ``(F, G)`` of shapes (..., n) and (..., n, d); see the module docstring."""
        if act not in ("erf", "relu", "linear"):
            return self._ref.pairwise(act, wi, wj, cj, scale2)
        selfint = wi is wj
        wi = np.asarray(wi)
        wj = np.asarray(wj)
        cj = np.asarray(cj)
        dt = np.dtype(np.float32) if wi.dtype == np.float32 else np.dtype(np.float64)
        n, d = wi.shape[-2:]
        m = wj.shape[-2]
        batch = np.broadcast_shapes(wi.shape[:-2], wj.shape[:-2], cj.shape[:-1])
        s2 = dt.type(scale2)
        if act == "linear":
            # K = c: F_i = s² w_i·v, G_i = s² v, v = sum_j c_j w_j (O((n+m)d))
            wi_ = wi.astype(dt, copy=False)
            v = np.einsum("...j,...jd->...d", cj.astype(dt, copy=False), wj.astype(dt, copy=False))
            F = s2 * np.einsum("...id,...d->...i", wi_, v)
            G = np.broadcast_to(s2 * v[..., None, :], batch + (n, d)).astype(dt)
            return np.broadcast_to(F, batch + (n,)).astype(dt), G
        wi3 = _flat(wi, batch, dt, 2)
        S = wi3.shape[0]
        if wi3.shape[0] != max(1, int(np.prod(batch, dtype=np.int64))):
            wi3 = np.ascontiguousarray(np.broadcast_to(wi3, (int(np.prod(batch)), n, d)))
            S = wi3.shape[0]
        wj3 = wi3 if selfint else _flat(wj, batch, dt, 2)
        wjT = np.ascontiguousarray(np.swapaxes(wj3, 1, 2))
        cj2 = _flat(cj, batch, dt, 1)
        # squared norms exactly as the reference computes them
        qi = s2 * np.einsum("sid,sid->si", wi3, wi3)
        qj = qi if selfint else s2 * np.einsum("sjd,sjd->sj", wj3, wj3)
        if act == "erf":
            code = 1
            aux_i = 1.0 / np.sqrt(1.0 + qi)
            aux_j = aux_i if selfint else 1.0 / np.sqrt(1.0 + qj)
        else:
            code = 2
            aux_i, aux_j = qi, qj
        F = np.empty((S, n), dtype=np.float64)
        G = np.empty((S, n, d), dtype=np.float64)
        _pairwise_kernel(code, get_num_threads(), wi3, wjT, qi, qj, aux_i, aux_j, cj2, s2, selfint, F, G)
        return F.astype(dt, copy=False).reshape(batch + (n,)), G.astype(dt, copy=False).reshape(
            batch + (n, d)
        )

    # ---------------------------------------------------------------- Monte Carlo
    def _groups(self, S, M, N, itemsize):
        """Seed-group size and particle-chunk size so a Z block stays under block_bytes."""
        per_seed_col = M * itemsize
        sg = max(1, min(S, self.block_bytes // max(1, per_seed_col * min(N, 64))))
        nc = max(1, min(N, self.block_bytes // max(1, sg * per_seed_col)))
        return sg, nc

    def _prep(self, x, w, b, extra, dt):
        if b is not None:
            extra = list(extra) + [np.asarray(b)]
        batch = np.broadcast_shapes(x.shape[:-2], w.shape[:-2], *[e.shape[:-1] for e in extra])
        S = max(1, int(np.prod(batch, dtype=np.int64)))
        x3 = _flat(x, batch, dt, 2)
        w3 = _flat(w, batch, dt, 2)
        if w3.shape[0] != S:
            w3 = np.ascontiguousarray(np.broadcast_to(w3, (S,) + w3.shape[1:]))
        b2 = None if b is None else _flat(b, batch, dt, 1)
        if b2 is not None and b2.shape[0] != S:
            b2 = np.ascontiguousarray(np.broadcast_to(b2, (S, b2.shape[1])))
        return batch, S, x3, w3, b2

    def mc_forward(self, act: str, x, w, b, a, coef: float):
        """Network output on samples: (..., M). ``b`` may be None (no bias)."""
        if act not in _ACT_CODE and act != "linear":
            return self._ref.mc_forward(act, x, w, b, a, coef)
        dt = _float_dtype(x, w)
        a = np.asarray(a)
        batch, S, x3, w3, b2 = self._prep(np.asarray(x), np.asarray(w), b, [a], dt)
        a2 = _flat(a, batch, dt, 1)
        if a2.shape[0] != S:
            a2 = np.ascontiguousarray(np.broadcast_to(a2, (S, a2.shape[1])))
        M = x3.shape[1]
        N = w3.shape[1]
        if act == "linear":
            # sum_i a_i (w_i·x + b_i) = x·(sum_i a_i w_i) + sum_i a_i b_i
            v = np.einsum("si,sid->sd", a2, w3)
            f = np.einsum("smd,sd->sm", x3, v)
            if b2 is not None:
                f = f + np.einsum("si,si->s", a2, b2)[:, None]
            f = np.broadcast_to(f, (S, M))
            return (coef * f).astype(dt).reshape(batch + (M,))
        code = _ACT_CODE[act]
        f = np.zeros((S, M), dtype=dt)
        with _single_blas():
            self._forward_chunks(code, x3, w3, b2, a2, f)
        f *= dt.type(coef)
        return f.reshape(batch + (M,))

    def _forward_chunks(self, code, x3, w3, b2, a2, f):
        S, M = f.shape
        N = w3.shape[1]
        dt = f.dtype
        sg, nc = self._groups(S, M, N, dt.itemsize)
        nob = np.zeros((S, N), dtype=dt) if b2 is None else b2
        for s0 in range(0, S, sg):
            s1 = min(S, s0 + sg)
            xs = x3 if x3.shape[0] == 1 else x3[s0:s1]
            for lo in range(0, N, nc):
                hi = min(N, lo + nc)
                Z = self._work("Zf", (s1 - s0, M, hi - lo), dt)
                np.matmul(xs, np.swapaxes(w3[s0:s1, lo:hi], 1, 2), out=Z)
                bb = np.ascontiguousarray(nob[s0:s1, lo:hi])
                _mc_forward_kernel(code, get_num_threads(), Z, bb, np.ascontiguousarray(a2[s0:s1, lo:hi]), f[s0:s1])

    def mc_backward(self, act: str, x, w, b, r):
        """Sample averages ``(ga, gw, gb)`` weighted by the residual ``r`` (..., M)."""
        if act not in _ACT_CODE and act != "linear":
            return self._ref.mc_backward(act, x, w, b, r)
        dt = _float_dtype(x, w)
        r = np.asarray(r)
        batch, S, x3, w3, b2 = self._prep(np.asarray(x), np.asarray(w), b, [r], dt)
        M = x3.shape[1]
        N, d = w3.shape[1:]
        rr = _flat(r, batch, dt, 1) / dt.type(M)
        if act == "linear":
            # sigma' = 1: gw_i = X^T rr (same for all i), ga_i = w_i·gw + b_i sum(rr)
            xr = np.einsum("smd,sm->sd", x3, rr) if x3.shape[0] == rr.shape[0] else np.einsum(
                "smd,sm->sd", np.broadcast_to(x3, (S, M, d)), np.broadcast_to(rr, (S, M))
            )
            xr = np.broadcast_to(xr, (S, d))
            ga = np.einsum("sid,sd->si", w3, xr)
            sr = np.broadcast_to(rr.sum(axis=-1), (S,))
            gb = None
            if b2 is not None:
                ga = ga + b2 * sr[:, None]
                gb = np.broadcast_to(sr[:, None], (S, N)).astype(dt).reshape(batch + (N,))
            gw = np.broadcast_to(xr[:, None, :], (S, N, d)).astype(dt)
            return ga.astype(dt).reshape(batch + (N,)), gw.reshape(batch + (N, d)), gb
        code = _ACT_CODE[act]
        ga = np.empty((S, N), dtype=dt)
        gb = np.empty((S, N), dtype=dt)
        gw = np.empty((S, N, d), dtype=dt)
        with _single_blas():
            self._backward_chunks(code, x3, w3, b2, rr, ga, gb, gw)
        return (
            ga.reshape(batch + (N,)),
            gw.reshape(batch + (N, d)),
            None if b2 is None else gb.reshape(batch + (N,)),
        )

    def _backward_chunks(self, code, x3, w3, b2, rr, ga, gb, gw):
        S, N, d = gw.shape
        M = x3.shape[1]
        dt = gw.dtype
        sg, nc = self._groups(S, M, N, dt.itemsize)
        nob = np.zeros((S, N), dtype=dt) if b2 is None else b2
        xT = np.swapaxes(x3, 1, 2)
        for s0 in range(0, S, sg):
            s1 = min(S, s0 + sg)
            xs = x3 if x3.shape[0] == 1 else x3[s0:s1]
            xTs = xT if x3.shape[0] == 1 else xT[s0:s1]
            rs = rr if rr.shape[0] == 1 else rr[s0:s1]
            for lo in range(0, N, nc):
                hi = min(N, lo + nc)
                Zt = self._work("Zb", (s1 - s0, hi - lo, M), dt)
                np.matmul(w3[s0:s1, lo:hi], xTs, out=Zt)
                bb = np.ascontiguousarray(nob[s0:s1, lo:hi])
                gac = self._work("ga", (s1 - s0, hi - lo), dt)
                gbc = self._work("gb", (s1 - s0, hi - lo), dt)
                _mc_backward_kernel(code, get_num_threads(), Zt, bb, rs, gac, gbc)
                ga[s0:s1, lo:hi] = gac
                gb[s0:s1, lo:hi] = gbc
                gw[s0:s1, lo:hi] = np.matmul(Zt, xs)
