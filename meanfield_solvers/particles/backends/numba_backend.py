r"""Numba CPU backend: fused, tiled pairwise kernels and fused Monte Carlo middles.

Implements the protocol of :mod:`meanfield_solvers.particles.backends.numpy_backend` (same arguments,
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
branch-free polynomial of :mod:`.approx` (libm ``asin`` would not vectorise). Reductions are
written as stores into a per-thread scratch block followed by a small summation helper compiled
with ``reassoc`` (so it vectorises) while the elementwise code is compiled without
reassociation (the argument reduction of ``exp`` depends on evaluation order).

Self-interaction (``wi is wj``, the population flow's N² term) uses the symmetry
:math:`K_{ij} = K_{ji}`, :math:`\partial_cK_{ij} = \partial_cK_{ji}`: a task (R rows) visits
only the sources j ≥ i0, each unordered pair is evaluated once and its terms are added to the
row sums of i (weights c_j) and, in per-thread column accumulators (float64, O(threads·N·d)),
to those of j (weights c_i); the R×R diagonal block is evaluated both ways as rows. Row blocks
are dealt round-robin so the triangular work stays balanced. Measured at N = 16384, d = 10:
0.38 s against 0.55 s for the full square in float64 (0.21 vs 0.29 s in float32). The column
updates fold the R rows in one pass per output row; done row by row they ate most of the gain.

:math:`c_{ii} = q_i` exactly, and for relu
:math:`q_iq_i - c_{ii}^2 = 0` exactly (FMA contraction would otherwise leave an
:math:`O(\sqrt{\epsilon})` term under the square root), as in the reference. Distinct but
exactly parallel particles (duplicates, i ≠ j) keep that :math:`O(\sqrt{\epsilon})` round-off
in the relu kernel in every implementation, the reference included, so two backends agree
there only to ~1e-8: compare relu runs without duplicated particles.

Measured (2 cores, d = 10, float64, full square): erf 5.6e8 pairs/s at N = 16384 (8.6× the
numpy reference, float32 1.0e9), relu 4.5e8 pairs/s at N = 4096 (9×); one core runs the erf
kernel at 4.4 ns per pair. The symmetric self-interaction adds ~1.4×. See BENCHMARKS.md.

Monte Carlo, :meth:`NumbaBackend.mc_forward` / :meth:`NumbaBackend.mc_backward`
-----------------------------------------------------------------------------------
One parallel region per call. The particles (and seeds) are cut into chunks of ``nc`` rows such
that each worker thread's :math:`Z^T_c = W_c X^T` block (``nc`` × M) is ``tile_bytes``
(4 MiB); a task is one (seed, chunk), and within it the worker thread

* forward: computes :math:`Z^T_c` with BLAS (``np.dot`` inside the ``prange`` body, BLAS itself
  pinned to one thread) and adds :math:`a_i\sigma(Z_{im}+b_i)` over its rows into the thread's
  partial output (a loop over samples: vectorised, no reduction), the partials summed at the end;
* backward: computes :math:`Z^T_c`, overwrites it with
  :math:`D_{im} = \tfrac{r_m}{M}\sigma'(Z_{im}+b_i)` while forming
  :math:`g^a_i = \sum_m \tfrac{r_m}{M}\sigma(\cdot)` and :math:`g^b_i = \sum_m D_{im}`, then
  :math:`g^w_c = D X` with BLAS.

So GEMMs and the fused elementwise middle (activation, derivative, residual weighting, sums)
run on all cores with no per-chunk thread wake-ups and no BLAS thread pool spinning against the
numba threads, and memory stays O(threads × tile_bytes + (N + M) d) at any N (10⁶ and beyond).
Measured (unloaded 2 cores, N = M = 10⁴, d = 20, erf, forward + backward): 0.39 s, against
0.70 s for the previous design (BLAS outside ``prange`` on one thread alternating with
parallel elementwise kernels per chunk) and 3.5 s for the numpy reference; chunks of 32–64
rows (2.5–5 MiB) were best, 8 and 512 rows 10–25 % slower. Linear units use the
O((N+M)d) identities (:math:`f = \alpha X\sum_i a_iw_i + \ldots`).

Activations: the kernels take the integer code the activation registry
(:mod:`meanfield_solvers.activations`) holds for the numba target, ``act_d1`` (Monte Carlo: a branch of
:func:`.approx.act_d1`) and ``pairwise`` (:data:`PAIRWISE_CODES`), looked up once per call. An
activation without one is refused with an error naming it, the target and the operation (no
fallback: the numpy backend runs any registered activation).

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

from ...activations import implementation, register_implementation, register_operation
from . import approx
from .approx import IDENTITY, fasin, like, tiny_like

__all__ = ["NumbaBackend", "probe"]

# Elementwise kernels: FMA contraction yes, reassociation no (see module docstring).
KFLAGS = {"nsz", "contract"}
# Reductions only: reassociation lets LLVM vectorise the running sum.
RFLAGS = {"nsz", "contract", "reassoc"}

R = 4  # target rows per task (register blocking of the w_j loads); the symmetric kernel unrolls 4
B = 256  # source block (strip mining): R*B*8 B per scratch row-block, L1 resident

#: codes of the pairwise kernels (the numba target's ``pairwise`` operation). Code 0 is the
#: identity (K = c), computed by O((n+m)d) sums without a kernel; the kernels branch on
#: ``code == 1`` (erf), the other branch being relu: a new code needs its branch in
#: :func:`_pairwise_rows`, :func:`_pairwise_rows_sym` and :meth:`NumbaBackend._pairwise_sym`.
PAIR_ERF, PAIR_RELU = 1, 2
PAIRWISE_CODES = {IDENTITY: "identity, K = c (O((n+m)d) sums)", PAIR_ERF: "erf arcsin kernel",
                  PAIR_RELU: "relu arc-cosine kernel"}
register_operation("numba", "pairwise", "closed-form pairwise kernel sums F, G of analytic expectations",
                   codes=PAIRWISE_CODES, needs=("kernel_and_grad",))
for _name, _code in (("linear", IDENTITY), ("erf", PAIR_ERF), ("relu", PAIR_RELU)):
    register_implementation(_name, "numba", "pairwise", _code)
del _name, _code
# Monte Carlo: the codes of approx.act_d1 (the numba target's ``act_d1`` operation); the fused
# kernels have specialised loops for erf, relu and tanh and call act_d1 for any other code.
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
@njit(fastmath=KFLAGS, error_model="numpy", cache=True, inline="always")
def _block_dots(dot, wi, s, i0, nr, wjT, sj, j0, bl, d):
    """dot[r, jj] = w_{i0+r} . w_{j0+jj} for a block of R rows against ``bl`` sources.

    Unit stride in j (W stored transposed); 1-D views indexed by the bare range variable, since
    numba's negative-index wraparound on a computed index (j0 + jj) kept the loop from
    vectorising (measured ~2x fewer pairs/s). Shared by the full and the symmetric kernels.
    """
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
        _block_dots(dot, wi, s, i0, nr, wjT, sj, j0, bl, d)
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


@njit(fastmath=RFLAGS, error_model="numpy", cache=True)
def _dot3(x, y, z, n):
    s = x[0] * like(0.0, x[0])
    for j in range(n):
        s += x[j] * y[j] * z[j]
    return s


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _pairwise_rows_sym(code, s, i0, wi, wjT, qi, aux_i, cj, s2, Fr, Tr, Gr, Fc, Tc, GcT,
                       dot, kk, ee, uu, gacc, facc, tacc):
    """Self-interaction, upper triangle: rows i0..i0+R-1 of seed s against sources j ≥ i0.

    Each unordered pair is evaluated once. Its kernel value K, the term e (erf: c ∂cK;
    relu: sqrt(q_i q_j - c²)) and ∂cK are added to the row sums of i (weighted by c_j) and,
    for j outside the row block, to the column sums of j (weighted by c_i) in this thread's
    accumulators Fc, Tc (S, n) and GcT (S, d, n). The R×R diagonal block is evaluated in both
    orders as rows only. Row results go to Fr, Tr (S, n) and Gr (S, n, d) (raw sums).
    """
    n, d = wi.shape[1:]
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
    for j0 in range(i0, n, B):
        bl = min(B, n - j0)
        _block_dots(dot, wi, s, i0, nr, wjT, s, j0, bl, d)
        qb = qi[s, j0 : j0 + bl]
        ab = aux_i[s, j0 : j0 + bl]
        cb = cj[sc, j0 : j0 + bl]
        for r in range(nr):
            i = i0 + r
            q1 = qi[s, i]
            a1 = aux_i[s, i]
            diag = i - j0
            dr = dot[r]
            kr = kk[r]
            er = ee[r]
            ur = uu[r]
            if code == 1:
                p1 = one + q1
                for jj in range(bl):
                    c = q1 if jj == diag else s2 * dr[jj]
                    det = max(p1 * (one + qb[jj]) - c * c, tiny)
                    dc = two_pi_inv / math.sqrt(det)
                    sa = min(max(c * a1 * ab[jj], -one), one)
                    kr[jj] = two_pi_inv * fasin(sa)
                    er[jj] = c * dc
                    ur[jj] = dc
            else:
                for jj in range(bl):
                    c = q1 if jj == diag else s2 * dr[jj]
                    qq = q1 * qb[jj]
                    dd = z0 if jj == diag else qq - c * c
                    det = math.sqrt(max(dd, z0))
                    rho = c / math.sqrt(qq) if qq > z0 else z0
                    th = like(_PIO2, s2) + fasin(min(max(rho, -one), one))
                    kr[jj] = (det + th * c) * like(_INV_2PI, s2)
                    er[jj] = det
                    ur[jj] = th * like(_INV_2PI, s2)
            facc[r] += _dot(kr, cb, bl)
            tacc[r] += _dot(er, cb, bl)
            for k in range(d):
                gacc[r, k] += _dot3(ur, cb, wjT[s, k, j0 : j0 + bl], bl)
        # column contributions of the pairs with j outside the row block: the R rows are
        # folded in one pass per output row (R = 4 unrolled; rows past nr have zero weight)
        js = nr if j0 == i0 else 0
        if js < bl:
            c0 = cj[sc, i0]
            c1 = cj[sc, i0 + 1] if nr > 1 else z0
            c2 = cj[sc, i0 + 2] if nr > 2 else z0
            c3 = cj[sc, i0 + 3] if nr > 3 else z0
            for r in range(nr, R):
                for jj in range(bl):
                    kk[r, jj] = z0
                    ee[r, jj] = z0
                    uu[r, jj] = z0
            k0, k1, k2, k3 = kk[0, js:bl], kk[1, js:bl], kk[2, js:bl], kk[3, js:bl]
            e0, e1, e2, e3 = ee[0, js:bl], ee[1, js:bl], ee[2, js:bl], ee[3, js:bl]
            u0, u1, u2, u3 = uu[0, js:bl], uu[1, js:bl], uu[2, js:bl], uu[3, js:bl]
            fcv = Fc[s, j0 + js : j0 + bl]
            tcv = Tc[s, j0 + js : j0 + bl]
            for jj in range(bl - js):
                fcv[jj] += c0 * k0[jj] + c1 * k1[jj] + c2 * k2[jj] + c3 * k3[jj]
                tcv[jj] += c0 * e0[jj] + c1 * e1[jj] + c2 * e2[jj] + c3 * e3[jj]
            for k in range(d):
                x0 = c0 * wi[s, i0, k]
                x1 = c1 * wi[s, i0 + 1, k] if nr > 1 else z0
                x2 = c2 * wi[s, i0 + 2, k] if nr > 2 else z0
                x3 = c3 * wi[s, i0 + 3, k] if nr > 3 else z0
                gcv = GcT[s, k, j0 + js : j0 + bl]
                for jj in range(bl - js):
                    gcv[jj] += x0 * u0[jj] + x1 * u1[jj] + x2 * u2[jj] + x3 * u3[jj]
    for r in range(nr):
        i = i0 + r
        Fr[s, i] = facc[r]
        Tr[s, i] = tacc[r]
        for k in range(d):
            Gr[s, i, k] = gacc[r, k]


@njit(error_model="numpy", cache=True)
def _pairwise_sym_worker(code, t, nth, wi, wjT, qi, aux_i, cj, s2, Fr, Tr, Gr, Fc, Tc, GcT):
    """Worker t of nth of :func:`_pairwise_kernel_sym` (callable alone: the serial path)."""
    S, n, d = wi.shape
    nrb = (n + R - 1) // R
    ntask = S * nrb
    dot = np.empty((R, B), dtype=wi.dtype)
    kk = np.empty((R, B), dtype=wi.dtype)
    ee = np.empty((R, B), dtype=wi.dtype)
    uu = np.empty((R, B), dtype=wi.dtype)
    gacc = np.empty((R, d), dtype=np.float64)
    facc = np.empty(R, dtype=np.float64)
    tacc = np.empty(R, dtype=np.float64)
    for task in range(t, ntask, nth):
        _pairwise_rows_sym(code, task // nrb, (task % nrb) * R, wi, wjT, qi, aux_i, cj, s2,
                           Fr, Tr, Gr, Fc, Tc, GcT, dot, kk, ee, uu, gacc, facc, tacc)


@njit(parallel=True, error_model="numpy", cache=True)
def _pairwise_kernel_sym(code, nth, wi, wjT, qi, aux_i, cj, s2, Fr, Tr, Gr, Fc, Tc, GcT):
    """Self-interaction pairwise sums over the upper triangle (see :func:`_pairwise_rows_sym`).

    Fc, Tc : (nth, S, n), GcT : (nth, S, d, n) zeroed float64 per-thread column accumulators.
    Row blocks are dealt round-robin so the triangular work stays balanced.
    """
    for t in prange(nth):
        _pairwise_sym_worker(code, t, nth, wi, wjT, qi, aux_i, cj, s2, Fr, Tr, Gr, Fc[t], Tc[t],
                             GcT[t])


@njit(error_model="numpy", cache=True)
def _pairwise_worker(code, t, nth, wi, wjT, qi, qj, aux_i, aux_j, cj, s2, selfint, F, G):
    """Worker t of nth of :func:`_pairwise_kernel`: scratch once, then tasks t, t+nth, ..."""
    S, n, d = wi.shape
    nrb = (n + R - 1) // R
    ntask = S * nrb
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
    for t in prange(nth):
        _pairwise_worker(code, t, nth, wi, wjT, qi, qj, aux_i, aux_j, cj, s2, selfint, F, G)


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _forward_block(code, Zt, b, a, facc):
    """facc[m] += sum_i a[i] sigma(Zt[i, m] + b[i]) for one particle chunk (vectorised over m)."""
    k, M = Zt.shape
    for i in range(k):
        row = Zt[i]
        ai = a[i]
        bi = b[i]
        if code == 1:
            for mm in range(M):
                facc[mm] += ai * approx.erf_act(row[mm] + bi)
        elif code == 2:
            zero = like(0.0, ai)
            for mm in range(M):
                facc[mm] += ai * max(row[mm] + bi, zero)
        elif code == 3:
            for mm in range(M):
                facc[mm] += ai * approx.ftanh(row[mm] + bi)
        else:
            for mm in range(M):
                facc[mm] += ai * approx.act_d1(code, row[mm] + bi)[0]


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _backward_block(code, Zt, b, rr, ga, gb, tmp):
    """One particle chunk: Zt[i, m] <- rr[m] sigma'(Zt[i, m] + b[i]); ga[i], gb[i] row sums."""
    k, M = Zt.shape
    for i in range(k):
        row = Zt[i]
        bi = b[i]
        if code == 1:
            for mm in range(M):
                v, dv = approx.erf_act_d1(row[mm] + bi)
                tmp[mm] = rr[mm] * v
                row[mm] = rr[mm] * dv
        elif code == 2:
            zero = like(0.0, bi)
            for mm in range(M):
                z = row[mm] + bi
                tmp[mm] = rr[mm] * max(z, zero)
                row[mm] = rr[mm] if z > zero else zero
        elif code == 3:
            for mm in range(M):
                v, dv = approx.tanh_act_d1(row[mm] + bi)
                tmp[mm] = rr[mm] * v
                row[mm] = rr[mm] * dv
        else:
            for mm in range(M):
                v, dv = approx.act_d1(code, row[mm] + bi)
                tmp[mm] = rr[mm] * v
                row[mm] = rr[mm] * dv
        ga[i] = _sum(tmp, M)
        gb[i] = _sum(row, M)


@njit(error_model="numpy", cache=True)
def _mc_forward_worker(code, t, nth, xT, w, b, a, nc, facc):
    """Worker t of nth of :func:`_mc_forward_fused`; facc : (S, M) its partial output."""
    S, N, d = w.shape
    Sx, _, M = xT.shape
    nchunk = (N + nc - 1) // nc
    ntask = S * nchunk
    Zt = np.empty((nc, M), dtype=w.dtype)
    for task in range(t, ntask, nth):
        s = task // nchunk
        c0 = (task % nchunk) * nc
        c1 = min(N, c0 + nc)
        Zs = Zt[: c1 - c0]
        np.dot(w[s, c0:c1], xT[s if Sx > 1 else 0], Zs)
        _forward_block(code, Zs, b[s, c0:c1], a[s, c0:c1], facc[s])


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_forward_fused(code, nth, xT, w, b, a, nc, fpart):
    """Per-thread partial outputs fpart[t, s, m] = sum over the thread's particle chunks.

    xT : (Sx, d, M) samples transposed (Sx ∈ {1, S}); w : (S, N, d); b, a : (S, N);
    nc : particle chunk; fpart : (nth, S, M) zeroed. Each task computes its chunk's
    Zᵀ = W_c Xᵀ with BLAS (called from the worker thread; BLAS itself single-threaded) and
    folds it into the thread's partial output, so GEMM and elementwise work both run on all
    cores within one parallel region.
    """
    for t in prange(nth):
        _mc_forward_worker(code, t, nth, xT, w, b, a, nc, fpart[t])


@njit(error_model="numpy", cache=True)
def _mc_backward_worker(code, t, nth, x, xT, w, b, rr, nc, ga, gw, gb):
    """Worker t of nth of :func:`_mc_backward_fused` (callable alone: the serial path)."""
    S, N, d = w.shape
    Sx, M, _ = x.shape
    Sr = rr.shape[0]
    nchunk = (N + nc - 1) // nc
    ntask = S * nchunk
    Zt = np.empty((nc, M), dtype=w.dtype)
    tmp = np.empty(M, dtype=w.dtype)
    for task in range(t, ntask, nth):
        s = task // nchunk
        c0 = (task % nchunk) * nc
        c1 = min(N, c0 + nc)
        sx = s if Sx > 1 else 0
        Zs = Zt[: c1 - c0]
        np.dot(w[s, c0:c1], xT[sx], Zs)
        _backward_block(code, Zs, b[s, c0:c1], rr[s if Sr > 1 else 0], ga[s, c0:c1],
                        gb[s, c0:c1], tmp)
        np.dot(Zs, x[sx], gw[s, c0:c1])


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_backward_fused(code, nth, x, xT, w, b, rr, nc, ga, gw, gb):
    """ga, gw, gb of :meth:`NumbaBackend.mc_backward` in one parallel region.

    x : (Sx, M, d), xT : (Sx, d, M); w : (S, N, d); b : (S, N); rr : (Sr, M) = r/M;
    outputs ga, gb : (S, N), gw : (S, N, d). Per task (seed, particle chunk): Zᵀ = W_c Xᵀ
    (BLAS), the fused elementwise pass, then g^w_c = D X (BLAS), all in the worker thread.
    """
    for t in prange(nth):
        _mc_backward_worker(code, t, nth, x, xT, w, b, rr, nc, ga, gw, gb)


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _forward_cache_block(code, Zt, Dt, b, a, facc):
    """Zt[i, m] <- sigma(Zt + b_i), Dt[i, m] <- sigma'(Zt + b_i); facc[m] += a_i sigma(.)."""
    k, M = Zt.shape
    for i in range(k):
        row = Zt[i]
        drow = Dt[i]
        ai = a[i]
        bi = b[i]
        for mm in range(M):
            v, dv = approx.act_d1(code, row[mm] + bi)
            row[mm] = v
            drow[mm] = dv
            facc[mm] += ai * v


@njit(error_model="numpy", cache=True)
def _mc_forward_cache_worker(code, t, nth, xT, w, b, a, nc, facc, sig, dsig):
    """Worker t of nth: like :func:`_mc_forward_worker`, keeping sigma and sigma' in (S, N, M) caches."""
    S, N, d = w.shape
    Sx = xT.shape[0]
    nchunk = (N + nc - 1) // nc
    for task in range(t, S * nchunk, nth):
        s = task // nchunk
        c0 = (task % nchunk) * nc
        c1 = min(N, c0 + nc)
        Zs = sig[s, c0:c1]
        np.dot(w[s, c0:c1], xT[s if Sx > 1 else 0], Zs)
        _forward_cache_block(code, Zs, dsig[s, c0:c1], b[s, c0:c1], a[s, c0:c1], facc[s])


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_forward_cache_fused(code, nth, xT, w, b, a, nc, fpart, sig, dsig):
    for t in prange(nth):
        _mc_forward_cache_worker(code, t, nth, xT, w, b, a, nc, fpart[t], sig, dsig)


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _backward_cache_block(St, Dt, rr, ga, gb, tmp):
    """Dt[i, m] <- rr[m] Dt[i, m]; ga[i] = sum_m rr[m] St[i, m], gb[i] = sum_m Dt[i, m]."""
    k, M = St.shape
    for i in range(k):
        srow = St[i]
        drow = Dt[i]
        for mm in range(M):
            tmp[mm] = rr[mm] * srow[mm]
            drow[mm] = rr[mm] * drow[mm]
        ga[i] = _sum(tmp, M)
        gb[i] = _sum(drow, M)


@njit(error_model="numpy", cache=True)
def _mc_backward_cache_worker(t, nth, x, rr, nc, sig, dsig, ga, gw, gb):
    """Worker t of nth: the backward pass from the forward caches (one GEMM, no activation)."""
    S, N, M = sig.shape
    Sx = x.shape[0]
    Sr = rr.shape[0]
    nchunk = (N + nc - 1) // nc
    tmp = np.empty(M, dtype=sig.dtype)
    for task in range(t, S * nchunk, nth):
        s = task // nchunk
        c0 = (task % nchunk) * nc
        c1 = min(N, c0 + nc)
        Ds = dsig[s, c0:c1]
        _backward_cache_block(sig[s, c0:c1], Ds, rr[s if Sr > 1 else 0], ga[s, c0:c1], gb[s, c0:c1], tmp)
        np.dot(Ds, x[s if Sx > 1 else 0], gw[s, c0:c1])


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_backward_cache_fused(nth, x, rr, nc, sig, dsig, ga, gw, gb):
    for t in prange(nth):
        _mc_backward_cache_worker(t, nth, x, rr, nc, sig, dsig, ga, gw, gb)


@njit(error_model="numpy", cache=True)
def _mc_square_seed(code, s, x, xT, w, b, a, y, coef, f, ga, gw, gb, v, kv, bias):
    """One seed, square loss, activations held in L2-sized buffers between the two passes.

    Zᵀ = W Xᵀ (BLAS); σ and σ' in one pass with f; r = y - coef·f; the sums g^a, g^b and
    D = r σ'/M in a second pass over the same buffers; g^w = D X (BLAS). With ``v`` of size > 0
    the velocity rows ``[kv0 g^a_i, kv1 a_i g^w_i, kv2 a_i g^b_i]`` are written into ``v[s]``
    (the layout of :class:`meanfield_solvers.particles.field.TwoLayer`) and ga, gw, gb are not.
    """
    N, d = w.shape[1], w.shape[2]
    Sx, M, _ = x.shape
    Sy = y.shape[0]
    sx = s if Sx > 1 else 0
    dt = w.dtype
    Zt = np.empty((N, M), dtype=dt)
    Dt = np.empty((N, M), dtype=dt)
    rr = np.empty(M, dtype=dt)
    tmp = np.empty(M, dtype=dt)
    inv_m = like(1.0, coef) / like(M, coef)
    np.dot(w[s], xT[sx], Zt)
    fs = f[s]
    for mm in range(M):
        fs[mm] = like(0.0, coef)
    _forward_cache_block(code, Zt, Dt, b[s], a[s], fs)
    ys = y[s if Sy > 1 else 0]
    for mm in range(M):
        fs[mm] *= coef
        rr[mm] = (ys[mm] - fs[mm]) * inv_m
    if v.shape[0] == 0:
        _backward_cache_block(Zt, Dt, rr, ga[s], gb[s], tmp)
        np.dot(Dt, x[sx], gw[s])
        return
    ga1 = np.empty(N, dtype=dt)
    gb1 = np.empty(N, dtype=dt)
    gw1 = np.empty((N, d), dtype=dt)
    _backward_cache_block(Zt, Dt, rr, ga1, gb1, tmp)
    np.dot(Dt, x[sx], gw1)
    vs = v[s]
    for i in range(N):
        ai = a[s, i]
        vs[i, 0] = kv[0] * ga1[i]
        kw = kv[1] * ai
        for k in range(d):
            vs[i, 1 + k] = kw * gw1[i, k]
        if bias:
            vs[i, 1 + d] = kv[2] * ai * gb1[i]


@njit(parallel=True, error_model="numpy", cache=True)
def _mc_square_seeds(code, x, xT, w, b, a, y, coef, f, ga, gw, gb, v, kv, bias):
    """All seeds in one parallel region; run under ``parallel_chunksize(1)``: seeds are handed
    out one at a time, so a thread delayed by another process does not hold up a fixed half."""
    for s in prange(w.shape[0]):
        _mc_square_seed(code, np.int64(s), x, xT, w, b, a, y, coef, f, ga, gw, gb, v, kv, bias)


@njit(error_model="numpy", cache=True)
def _mc_square_seeds_serial(code, x, xT, w, b, a, y, coef, f, ga, gw, gb, v, kv, bias):
    for s in range(w.shape[0]):
        _mc_square_seed(code, s, x, xT, w, b, a, y, coef, f, ga, gw, gb, v, kv, bias)


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
    tile_bytes : int
        Size of each worker thread's Zᵀ block (particle chunk × samples) in the Monte Carlo
        kernels.
    block_bytes : int
        Bound on the per-thread partial outputs of the forward pass (threads × seeds ×
        samples); seeds are processed in groups beyond it. Eight times it bounds the
        per-thread column accumulators of the symmetric self-interaction.
    symmetric : bool
        Evaluate self-interactions (``wi is wj``) over the upper triangle only (each pair
        once, its contributions added to both particles).
    cache_bytes : int
        :meth:`mc_forward_backward` keeps σ and σ' of every
        (particle, sample) between its two passes when they fit in this many bytes
        (2·S·N·M·itemsize), so the backward pass needs one GEMM instead of two and no activation;
        larger problems use the two streaming passes.
    serial_work : int
        Calls with at most this many pairs (S·n·m) or particle-samples (S·N·M) run on the
        calling thread, without a parallel region: on a 2-core machine shared with other
        processes every parallel region can wait a scheduler time slice (several ms) for its
        second thread, which dominated small calls (measured: 8 ms instead of 0.5 ms for a
        4096 × 3 cross term at load average 2.5).
    """

    name = "numba"

    #: the protocol's operations -> this backend's operations in the activation registry
    REGISTRY_OPERATIONS = {"pairwise": "pairwise", "mc_forward": "act_d1", "mc_backward": "act_d1"}

    def supports(self, op: str, activation: str) -> str:
        """Why operation ``op`` (pairwise, mc_forward, mc_backward) cannot run ``activation`` here
        ('' when it can); answered by the activation registry."""
        from .support import supports

        return supports("numba", self.REGISTRY_OPERATIONS, op, activation)

    def __init__(self, tile_bytes: int = 4 * 2**20, block_bytes: int = 32 * 2**20,
                 symmetric: bool = True, serial_work: int = 2**15, cache_bytes: int = 256 * 2**20):
        self.serial_work = int(serial_work)
        self.cache_bytes = int(cache_bytes)
        self.tile_bytes = int(tile_bytes)
        self.block_bytes = int(block_bytes)
        self.symmetric = bool(symmetric)

    # ---------------------------------------------------------------- analytic pairwise
    def pairwise(self, act: str, wi, wj, cj, scale2: float = 1.0):
        """Return ``(F, G)`` of shapes (..., n) and (..., n, d); see the module docstring."""
        code = implementation(act, "numba", "pairwise")
        selfint = wi is wj
        wi = np.asarray(wi)
        wj = np.asarray(wj)
        cj = np.asarray(cj)
        dt = np.dtype(np.float32) if wi.dtype == np.float32 else np.dtype(np.float64)
        n, d = wi.shape[-2:]
        m = wj.shape[-2]
        batch = np.broadcast_shapes(wi.shape[:-2], wj.shape[:-2], cj.shape[:-1])
        s2 = dt.type(scale2)
        if code == IDENTITY:
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
        if code == PAIR_ERF:
            aux_i = 1.0 / np.sqrt(1.0 + qi)
            aux_j = aux_i if selfint else 1.0 / np.sqrt(1.0 + qj)
        elif code == PAIR_RELU:
            aux_i, aux_j = qi, qj
        serial = S * n * m <= self.serial_work
        nth = 1 if serial else max(1, min(get_num_threads(), S * ((n + R - 1) // R)))
        if selfint and self.symmetric and nth * S * n * (d + 2) * 8 <= self.block_bytes * 8:
            F, G = self._pairwise_sym(code, nth, wi3, wjT, qi, aux_i, cj2, s2)
        else:
            F = np.empty((S, n), dtype=np.float64)
            G = np.empty((S, n, d), dtype=np.float64)
            args = (wi3, wjT, qi, qj, aux_i, aux_j, cj2, s2, selfint, F, G)
            if serial:
                _pairwise_worker(code, 0, 1, *args)
            else:
                _pairwise_kernel(code, nth, *args)
        return F.astype(dt, copy=False).reshape(batch + (n,)), G.astype(dt, copy=False).reshape(
            batch + (n, d)
        )

    @staticmethod
    def _pairwise_sym(code, nth, wi3, wjT, qi, aux_i, cj2, s2):
        """Self-interaction through the upper triangle, then the row + column sums combined."""
        S, n, d = wi3.shape
        Fr = np.empty((S, n))
        Tr = np.empty((S, n))
        Gr = np.empty((S, n, d))
        Fc = np.zeros((nth, S, n))
        Tc = np.zeros((nth, S, n))
        GcT = np.zeros((nth, S, d, n))
        if nth == 1:
            _pairwise_sym_worker(code, 0, 1, wi3, wjT, qi, aux_i, cj2, s2, Fr, Tr, Gr, Fc[0],
                                 Tc[0], GcT[0])
        else:
            _pairwise_kernel_sym(code, nth, wi3, wjT, qi, aux_i, cj2, s2, Fr, Tr, Gr, Fc, Tc, GcT)
        F = Fr + Fc.sum(axis=0)
        T = Tr + Tc.sum(axis=0)
        g = Gr + np.swapaxes(GcT.sum(axis=0), 1, 2)
        q = qi.astype(np.float64)
        if code == PAIR_ERF:
            coef = -T / (1.0 + q)  # 2 sum_j c_j dK/dq1
        elif code == PAIR_RELU:
            with np.errstate(divide="ignore", invalid="ignore"):
                coef = np.where(q > 0, 2.0 * _INV_4PI * T / np.where(q > 0, q, 1.0), 0.0)
        G = float(s2) * (coef[..., None] * wi3 + g)
        return F, G

    # ---------------------------------------------------------------- Monte Carlo
    def _tiles(self, S, M, N, itemsize):
        """Particle chunk (per-thread Zᵀ block of ``tile_bytes``) and seed-group size."""
        nc = max(1, min(N, self.tile_bytes // max(1, M * itemsize)))
        nth = 1 if S * N * M <= self.serial_work else get_num_threads()
        sg = max(1, min(S, self.block_bytes // max(1, nth * M * itemsize)))
        return nc, sg, nth

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
        code = implementation(act, "numba", "act_d1")
        dt = _float_dtype(x, w)
        a = np.asarray(a)
        batch, S, x3, w3, b2 = self._prep(np.asarray(x), np.asarray(w), b, [a], dt)
        a2 = _flat(a, batch, dt, 1)
        if a2.shape[0] != S:
            a2 = np.ascontiguousarray(np.broadcast_to(a2, (S, a2.shape[1])))
        M = x3.shape[1]
        N = w3.shape[1]
        if code == IDENTITY:
            # sum_i a_i (w_i·x + b_i) = x·(sum_i a_i w_i) + sum_i a_i b_i
            v = np.einsum("si,sid->sd", a2, w3)
            f = np.einsum("smd,sd->sm", x3, v)
            if b2 is not None:
                f = f + np.einsum("si,si->s", a2, b2)[:, None]
            f = np.broadcast_to(f, (S, M))
            return (coef * f).astype(dt).reshape(batch + (M,))
        f = np.empty((S, M), dtype=dt)
        nc, sg, nth = self._tiles(S, M, N, dt.itemsize)
        xT = np.ascontiguousarray(np.swapaxes(x3, 1, 2))
        bb = np.zeros((S, N), dtype=dt) if b2 is None else b2
        with _single_blas():
            for s0 in range(0, S, sg):
                s1 = min(S, s0 + sg)
                fp = np.zeros((nth, s1 - s0, M), dtype=dt)
                xs = xT if xT.shape[0] == 1 else xT[s0:s1]
                if nth == 1:
                    _mc_forward_worker(code, 0, 1, xs, w3[s0:s1], bb[s0:s1], a2[s0:s1], nc, fp[0])
                else:
                    _mc_forward_fused(code, nth, xs, w3[s0:s1], bb[s0:s1], a2[s0:s1], nc, fp)
                f[s0:s1] = fp.sum(axis=0)
        f *= dt.type(coef)
        return f.reshape(batch + (M,))

    def mc_backward(self, act: str, x, w, b, r):
        """Sample averages ``(ga, gw, gb)`` weighted by the residual ``r`` (..., M)."""
        code = implementation(act, "numba", "act_d1")
        dt = _float_dtype(x, w)
        r = np.asarray(r)
        batch, S, x3, w3, b2 = self._prep(np.asarray(x), np.asarray(w), b, [r], dt)
        M = x3.shape[1]
        N, d = w3.shape[1:]
        rr = _flat(r, batch, dt, 1) / dt.type(M)
        if code == IDENTITY:
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
        ga = np.empty((S, N), dtype=dt)
        gb = np.empty((S, N), dtype=dt)
        gw = np.empty((S, N, d), dtype=dt)
        nc, _, nth = self._tiles(S, M, N, dt.itemsize)
        xT = np.ascontiguousarray(np.swapaxes(x3, 1, 2))
        bb = np.zeros((S, N), dtype=dt) if b2 is None else b2
        with _single_blas():
            if nth == 1:
                _mc_backward_worker(code, 0, 1, x3, xT, w3, bb, rr, nc, ga, gw, gb)
            else:
                _mc_backward_fused(code, nth, x3, xT, w3, bb, rr, nc, ga, gw, gb)
        return (
            ga.reshape(batch + (N,)),
            gw.reshape(batch + (N, d)),
            None if b2 is None else gb.reshape(batch + (N,)),
        )

    def mc_forward_backward(self, act: str, x, w, b, a, coef: float, residual, y=None, velocity=None):
        """Forward pass, ``r = residual(f)``, backward pass: ``(f, ga, gw, gb, v)``.

        Equal to ``mc_forward`` then ``mc_backward`` (the optional fused entry of the backend
        protocol, see :func:`meanfield_solvers.particles.field.mc_risk_velocity`). ``residual`` is a callable
        ``f -> r``, or ``'square'`` with targets ``y`` (``r = y - f``). ``velocity = (ka, kw, kb)``
        asks for the velocity rows ``[ka g^a_i, kw a_i g^w_i, kb a_i g^b_i]`` of the TwoLayer
        layout; a path that assembles them in its kernel returns them as ``v`` (and ga, gw, gb as
        None), otherwise ``v`` is None and the caller assembles.

        * Square loss and enough seeds to occupy every thread, each seed's activations fitting in
          ``tile_bytes`` (the finite-width ensemble): one parallel region, one task per seed, that
          computes f, r and the gradients from buffers that stay in cache.
        * Otherwise, when σ and σ' of every (particle, sample) fit in ``cache_bytes``, the forward
          pass keeps them and the backward pass is one GEMM ``g^w = (r σ') X``, with no
          recomputation of ``W Xᵀ`` or of the activation.
        * Else the two streaming passes.
        """
        code = implementation(act, "numba", "act_d1")
        dt = _float_dtype(x, w)
        a = np.asarray(a)
        x = np.asarray(x)
        w = np.asarray(w)
        if isinstance(residual, str):
            if residual != "square" or y is None:
                raise ValueError("residual must be a callable f -> r, or 'square' with the targets y")
            y_arr = np.asarray(y)
            residual = lambda f: y_arr - f  # noqa: E731
        else:
            y = None

        def no_v(out):
            return tuple(out) + (None,)

        batch, S, x3, w3, b2 = self._prep(x, w, b, [a], dt)
        M = x3.shape[1]
        N, d = w3.shape[1:]
        per_seed = y is not None and 2 * N * M * dt.itemsize <= self.tile_bytes
        if code == IDENTITY or (2 * S * N * M * dt.itemsize > self.cache_bytes and not per_seed):
            f = self.mc_forward(act, x, w, b, a, coef)
            return no_v((f,) + tuple(self.mc_backward(act, x, w, b, residual(f))))
        a2 = _flat(a, batch, dt, 1)
        if a2.shape[0] != S:
            a2 = np.ascontiguousarray(np.broadcast_to(a2, (S, a2.shape[1])))
        nc, _, nth = self._tiles(S, M, N, dt.itemsize)
        xT = np.ascontiguousarray(np.swapaxes(x3, 1, 2))
        bb = np.zeros((S, N), dtype=dt) if b2 is None else b2
        if per_seed and (S >= nth or 2 * S * N * M * dt.itemsize > self.cache_bytes):
            import numba

            y2 = _flat(y, batch, dt, 1)
            f = np.empty((S, M), dtype=dt)
            bias = b2 is not None
            if velocity is not None:
                v = np.empty((S, N, 1 + d + bias), dtype=dt)
                ga = gb = np.empty((0, 0), dtype=dt)
                gw = np.empty((0, 0, 0), dtype=dt)
            else:
                v = np.empty((0, 0, 0), dtype=dt)
                ga = np.empty((S, N), dtype=dt)
                gb = np.empty((S, N), dtype=dt)
                gw = np.empty((S, N, d), dtype=dt)
            kv = np.asarray(velocity if velocity is not None else (0.0, 0.0, 0.0), dtype=dt)
            args = (code, x3, xT, w3, bb, a2, y2, dt.type(coef), f, ga, gw, gb, v, kv, bias)
            with _single_blas():
                if nth == 1:
                    _mc_square_seeds_serial(*args)
                else:
                    with numba.parallel_chunksize(1):
                        _mc_square_seeds(*args)
            f = f.reshape(batch + (M,))
            if velocity is not None:
                return f, None, None, None, v.reshape(batch + (N, 1 + d + bias))
            return (f, ga.reshape(batch + (N,)), gw.reshape(batch + (N, d)),
                    None if b2 is None else gb.reshape(batch + (N,)), None)
        sig = np.empty((S, N, M), dtype=dt)
        dsig = np.empty((S, N, M), dtype=dt)
        fp = np.zeros((nth, S, M), dtype=dt)
        with _single_blas():
            if nth == 1:
                _mc_forward_cache_worker(code, 0, 1, xT, w3, bb, a2, nc, fp[0], sig, dsig)
            else:
                _mc_forward_cache_fused(code, nth, xT, w3, bb, a2, nc, fp, sig, dsig)
        f = fp.sum(axis=0)
        f *= dt.type(coef)
        f = f.reshape(batch + (M,))
        r = np.asarray(residual(f))
        rr = _flat(r, batch, dt, 1) / dt.type(M)
        ga = np.empty((S, N), dtype=dt)
        gb = np.empty((S, N), dtype=dt)
        gw = np.empty((S, N, d), dtype=dt)
        with _single_blas():
            if nth == 1:
                _mc_backward_cache_worker(0, 1, x3, rr, nc, sig, dsig, ga, gw, gb)
            else:
                _mc_backward_cache_fused(nth, x3, rr, nc, sig, dsig, ga, gw, gb)
        return (f, ga.reshape(batch + (N,)), gw.reshape(batch + (N, d)),
                None if b2 is None else gb.reshape(batch + (N,)), None)
