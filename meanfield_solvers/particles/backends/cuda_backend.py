r"""numba-cuda backend (optional extra ``[cuda]``): shared-memory tiled N-body kernels.

Implements the protocol of :mod:`meanfield_solvers.particles.backends.numpy_backend` with the same maths
as :mod:`meanfield_solvers.particles.backends.numba_backend` (see there for the formulas).

Kernels (all O((n+m)d) memory: no n×m or M×N matrix is ever formed)
------------------------------------------------------------------
* **pairwise**: one thread per target particle i (per seed), ``w_i`` and the accumulators
  :math:`F_i`, :math:`T_i = \sum_j c_j(\cdot)`, :math:`g_i = \sum_j c_j\partial_cK_{ij}w_j` in
  registers (``d`` is a compile-time constant: one specialisation per (dtype, d, activation)).
  The sources are streamed in tiles of ``tpb`` rows through ``cuda.shared.array`` (cooperative
  load, ``syncthreads``, all threads then read the same row: a broadcast, no bank conflicts).
  The source range is **split across blocks** (grid axis y) when the targets alone would not
  fill the GPU (KeOps' 2D scheme): each block writes partial sums and a second kernel reduces
  them over the splits and applies :math:`G_i = s^2(\text{coef}_i w_i + g_i)`. Deterministic (no
  atomics). Squared norms are computed in the kernels (no host pre-pass), so device inputs need
  no transfer.
* **MC forward**: one thread per sample m, particle tiles (w, a, b) in shared memory, the
  particle range split across blocks; **MC backward**: one thread per particle i, sample tiles
  (x, r/M) in shared memory, the sample range split across blocks. Both use libdevice
  ``erf``/``exp``/``tanh`` (accurate).
* float32 and float64 variants: every constant is cast to the kernel dtype (``F(...)``), the
  index maths is integer; float32 accumulates in float32 within a split and the splits are
  summed in float32 too (use float64 for theory-grade runs; on H100 it is ~2–3× slower).

Scratch (the per-split partial sums) is allocated once per shape and reused across calls; a
backend instance is therefore not safe to share between host threads.

Residency: arrays exposing ``__cuda_array_interface__`` (numba device arrays, CuPy, torch) are
used in place and the results are returned as numba device arrays; host numpy inputs are copied
in (O((n+m)d) per call) and results copied back. The shared :mod:`meanfield_solvers.particles.field` code
(numpy maths on the results) therefore pays O(Nd) transfers per velocity evaluation; the time
loops of a run instead use :class:`meanfield_solvers.particles.backends.cuda_flow.CudaFlow`, which keeps the
particles and every workspace on the GPU across steps and composes the velocity and the
integrator from these kernels plus a few elementwise ones.

Each thread keeps its own row (w_i or x_m, and the gradient accumulator) in ``d`` registers, and
the shared tile holds ``tpb`` rows of ``d + 3`` values, so the thread count per block shrinks
with d (:meth:`CudaBackend._tpb_for`: 128 up to d ≈ 77 in float32, 32 at d = 128 in float64).
Above d ≈ 64 in float64 (~128 in float32) the per-thread rows spill from registers to local
memory (cached, but slower; not yet measured on a GPU). d > ``MAX_D`` (128) falls back to the
numba CPU backend (such inputs want cuBLAS products and an elementwise kernel, not written here).

Activations: the kernels are compiled per integer code, which the activation registry
(:mod:`meanfield_solvers.activations`) holds for the cuda target: ``act`` (σ, σ' device functions,
:data:`ACT_CODES`) and ``pairwise`` (:data:`PAIRWISE_CODES`; ``"host"`` for linear units, whose
O((n+m)d) sums run on the CPU). An activation without one is refused with an error naming it,
the target and the operation.

Testing without a GPU: with ``NUMBA_ENABLE_CUDASIM=1`` the kernels run in numba's simulator at
tiny sizes (``tests/test_backends_cuda.py``); :func:`probe` reports that mode.
"""
from __future__ import annotations

import math

import numpy as np

from ...activations import implementation, register_implementation, register_operation

try:  # optional extra [cuda]; a module global so that the simulator can swap it in kernels
    from numba import cuda
except Exception as _exc:  # pragma: no cover - depends on the install
    cuda = None
    _IMPORT_ERROR = _exc
else:
    _IMPORT_ERROR = None

__all__ = ["CudaBackend", "probe", "MAX_D"]

MAX_D = 128

#: branches of the σ, σ' device functions of :func:`_kernels` (the cuda target's ``act`` codes)
ACT_CODES = {0: "identity z", 1: "erf(z/sqrt 2)", 2: "relu max(z, 0)", 3: "tanh z"}
#: pairwise kernel branches (the cuda target's ``pairwise`` codes): 1 erf, 2 relu; ``HOST``: the
#: CPU backend computes it (linear units: O((n+m)d) sums, no pair loop)
HOST = "host"
PAIRWISE_CODES = {HOST: "computed on the CPU (numba backend)", 1: "erf arcsin kernel",
                  2: "relu arc-cosine kernel"}
register_operation("cuda", "act", "sigma, sigma' device functions of the Monte Carlo kernels",
                   codes=ACT_CODES)
register_operation("cuda", "pairwise", "closed-form pairwise kernel sums F, G of analytic expectations",
                   codes=PAIRWISE_CODES, needs=("kernel_and_grad",))
for _name, _code in (("linear", 0), ("erf", 1), ("relu", 2), ("tanh", 3)):
    register_implementation(_name, "cuda", "act", _code)
for _name, _code in (("linear", HOST), ("erf", 1), ("relu", 2)):
    register_implementation(_name, "cuda", "pairwise", _code)
del _name, _code


def probe():
    """(ok, reason): whether numba-cuda is importable and a GPU (or the simulator) is usable."""
    if cuda is None:
        exc = _IMPORT_ERROR
        return False, f"no CUDA GPU / numba-cuda not installed: {type(exc).__name__}: {exc}"
    from numba import config

    try:
        sim = bool(getattr(config, "ENABLE_CUDASIM", False))
        if sim:
            return True, "CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correctness only, very slow"
        if not cuda.is_available():
            return False, "no CUDA GPU / numba-cuda not installed: cuda.is_available() is False"
        cuda.get_current_device()
    except Exception as exc:  # pragma: no cover
        return False, f"no CUDA GPU / numba-cuda not installed: {type(exc).__name__}: {exc}"
    return True, ""


_KERNELS: dict = {}


def _kernels(dtype, d, act, tpb):
    """Compile (lazily, once) the kernels for one (dtype, d, activation, threads per block)."""
    key = (np.dtype(dtype).str, d, act, tpb)
    if key in _KERNELS:
        return _KERNELS[key]
    if act not in ACT_CODES:  # the registry only holds known codes; HOST never gets here
        raise ValueError(f"no CUDA kernel branch for activation code {act!r} (known: {ACT_CODES})")
    from numba import from_dtype

    F = np.dtype(dtype).type
    NT = from_dtype(np.dtype(dtype))
    D = int(d)
    TPB = int(tpb)
    ACT = int(act)
    Z0, ONE, HALF, TWO = F(0.0), F(1.0), F(0.5), F(2.0)
    TWO_OVER_PI = F(2.0 / math.pi)
    INV_2PI = F(1.0 / (2.0 * math.pi))
    INV_4PI = F(1.0 / (4.0 * math.pi))
    PIO2 = F(math.pi / 2.0)
    SQRT_HALF = F(math.sqrt(0.5))
    SQRT_2_OVER_PI = F(math.sqrt(2.0 / math.pi))
    TINY = F(np.finfo(np.dtype(dtype)).tiny)

    @cuda.jit(device=True)
    def sigma(z):
        if ACT == 1:
            return math.erf(z * SQRT_HALF)
        if ACT == 2:
            return max(z, Z0)
        if ACT == 3:
            return math.tanh(z)
        return z  # ACT == 0 (identity): _kernels accepts only the codes of ACT_CODES

    @cuda.jit(device=True)
    def dsigma(z):
        if ACT == 1:
            return SQRT_2_OVER_PI * math.exp(-HALF * z * z)
        if ACT == 2:
            return ONE if z > Z0 else Z0
        if ACT == 3:
            t = math.tanh(z)
            return ONE - t * t
        return ONE  # ACT == 0 (identity)

    @cuda.jit
    def pair_partial(wi, wj, cj, s2, selfint, jchunk, Fp, Tp, Gp):
        """Partial sums over the source range of split blockIdx.y; grid (., nsplit, S)."""
        sw = cuda.shared.array((TPB, D), NT)
        sq = cuda.shared.array(TPB, NT)
        sa = cuda.shared.array(TPB, NT)
        sc = cuda.shared.array(TPB, NT)
        wl = cuda.local.array(D, NT)
        g = cuda.local.array(D, NT)
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * TPB + tid
        sp = cuda.blockIdx.y
        s = cuda.blockIdx.z
        n = wi.shape[1]
        m = wj.shape[1]
        sj = s if wj.shape[0] > 1 else 0
        scj = s if cj.shape[0] > 1 else 0
        active = i < n
        q1 = Z0
        for k in range(D):
            wl[k] = wi[s, i, k] if active else Z0
            q1 += wl[k] * wl[k]
            g[k] = Z0
        q1 = s2 * q1
        a1 = ONE / math.sqrt(ONE + q1)
        p1 = ONE + q1
        facc = Z0
        tacc = Z0
        j_lo = sp * jchunk
        j_hi = min(m, j_lo + jchunk)
        for t0 in range(j_lo, j_hi, TPB):
            jl = t0 + tid
            if jl < j_hi:
                qv = Z0
                for k in range(D):
                    v = wj[sj, jl, k]
                    sw[tid, k] = v
                    qv += v * v
                qv = s2 * qv
                sq[tid] = qv
                sa[tid] = ONE / math.sqrt(ONE + qv)
                sc[tid] = cj[scj, jl]
            cuda.syncthreads()
            if active:
                for jj in range(min(TPB, j_hi - t0)):
                    j = t0 + jj
                    dot = Z0
                    for k in range(D):
                        dot += wl[k] * sw[jj, k]
                    diag = selfint and j == i
                    c = q1 if diag else s2 * dot
                    cw = sc[jj]
                    q2 = sq[jj]
                    if ACT == 1:
                        det = max(p1 * (ONE + q2) - c * c, TINY)
                        dc = TWO_OVER_PI / math.sqrt(det)
                        x = min(max(c * a1 * sa[jj], -ONE), ONE)
                        facc += cw * (TWO_OVER_PI * math.asin(x))
                        tacc += cw * c * dc
                    else:
                        qq = q1 * q2
                        dd = Z0 if diag else qq - c * c
                        det = math.sqrt(max(dd, Z0))
                        rho = c / math.sqrt(qq) if qq > Z0 else Z0
                        th = PIO2 + math.asin(min(max(rho, -ONE), ONE))
                        facc += cw * ((det + th * c) * INV_2PI)
                        tacc += cw * det
                        dc = th * INV_2PI
                    u = cw * dc
                    for k in range(D):
                        g[k] += u * sw[jj, k]
            cuda.syncthreads()
        if active:
            Fp[sp, s, i] = facc
            Tp[sp, s, i] = tacc
            for k in range(D):
                Gp[sp, s, i, k] = g[k]

    @cuda.jit
    def pair_reduce(wi, s2, Fp, Tp, Gp, F_out, G_out):
        """Sum the splits and assemble G_i = s² (coef_i w_i + g_i); grid over (S·n)."""
        t = cuda.grid(1)
        S = F_out.shape[0]
        n = F_out.shape[1]
        if t >= S * n:
            return
        s = t // n
        i = t - s * n
        f = Z0
        tt = Z0
        for sp in range(Fp.shape[0]):
            f += Fp[sp, s, i]
            tt += Tp[sp, s, i]
        q1 = Z0
        for k in range(D):
            q1 += wi[s, i, k] * wi[s, i, k]
        q1 = s2 * q1
        if ACT == 1:
            coef = -tt / (ONE + q1)
        else:
            coef = TWO * tt * INV_4PI / q1 if q1 > Z0 else Z0
        F_out[s, i] = f
        for k in range(D):
            gk = Z0
            for sp in range(Fp.shape[0]):
                gk += Gp[sp, s, i, k]
            G_out[s, i, k] = s2 * (coef * wi[s, i, k] + gk)

    @cuda.jit
    def fwd_partial(x, w, b, a, hasb, ichunk, fp):
        """fp[sp, s, m] = sum_{i in split sp} a_i sigma(w_i·x_m + b_i); grid (., nsplit, S)."""
        sw = cuda.shared.array((TPB, D), NT)
        sb = cuda.shared.array(TPB, NT)
        sa = cuda.shared.array(TPB, NT)
        xl = cuda.local.array(D, NT)
        tid = cuda.threadIdx.x
        mm = cuda.blockIdx.x * TPB + tid
        sp = cuda.blockIdx.y
        s = cuda.blockIdx.z
        M = x.shape[1]
        N = w.shape[1]
        sx = s if x.shape[0] > 1 else 0
        active = mm < M
        for k in range(D):
            xl[k] = x[sx, mm, k] if active else Z0
        acc = Z0
        i_lo = sp * ichunk
        i_hi = min(N, i_lo + ichunk)
        for t0 in range(i_lo, i_hi, TPB):
            il = t0 + tid
            if il < i_hi:
                for k in range(D):
                    sw[tid, k] = w[s, il, k]
                sb[tid] = b[s, il] if hasb else Z0
                sa[tid] = a[s, il]
            cuda.syncthreads()
            if active:
                for ii in range(min(TPB, i_hi - t0)):
                    z = sb[ii]
                    for k in range(D):
                        z += xl[k] * sw[ii, k]
                    acc += sa[ii] * sigma(z)
            cuda.syncthreads()
        if active:
            fp[sp, s, mm] = acc

    @cuda.jit
    def bwd_partial(x, w, b, rr, rscale, hasb, mchunk, gap, gwp, gbp):
        """Partial sums over split blockIdx.y of (r_m·rscale) σ, σ' x_m, σ' for particle i.

        Grid (., nsplit, S); rscale = 1/M.
        """
        sx = cuda.shared.array((TPB, D), NT)
        sr = cuda.shared.array(TPB, NT)
        wl = cuda.local.array(D, NT)
        gw = cuda.local.array(D, NT)
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * TPB + tid
        sp = cuda.blockIdx.y
        s = cuda.blockIdx.z
        M = x.shape[1]
        N = w.shape[1]
        sxi = s if x.shape[0] > 1 else 0
        sri = s if rr.shape[0] > 1 else 0
        active = i < N
        for k in range(D):
            wl[k] = w[s, i, k] if active else Z0
            gw[k] = Z0
        bi = b[s, i] if (hasb and active) else Z0
        ga = Z0
        gb = Z0
        m_lo = sp * mchunk
        m_hi = min(M, m_lo + mchunk)
        for t0 in range(m_lo, m_hi, TPB):
            ml = t0 + tid
            if ml < m_hi:
                for k in range(D):
                    sx[tid, k] = x[sxi, ml, k]
                sr[tid] = rr[sri, ml] * rscale
            cuda.syncthreads()
            if active:
                for mm in range(min(TPB, m_hi - t0)):
                    z = bi
                    for k in range(D):
                        z += wl[k] * sx[mm, k]
                    r = sr[mm]
                    ga += r * sigma(z)
                    rd = r * dsigma(z)
                    gb += rd
                    for k in range(D):
                        gw[k] += rd * sx[mm, k]
            cuda.syncthreads()
        if active:
            gap[sp, s, i] = ga
            gbp[sp, s, i] = gb
            for k in range(D):
                gwp[sp, s, i, k] = gw[k]

    @cuda.jit
    def sum_splits(p, out, scale):
        """out[t] = scale * sum_sp p[sp, t] over a flattened trailing axis."""
        t = cuda.grid(1)
        if t >= out.shape[0]:
            return
        acc = Z0
        for sp in range(p.shape[0]):
            acc += p[sp, t]
        out[t] = scale * acc

    ks = dict(pair_partial=pair_partial, pair_reduce=pair_reduce, fwd_partial=fwd_partial,
              bwd_partial=bwd_partial, sum_splits=sum_splits)
    _KERNELS[key] = ks
    return ks


class CudaBackend:
    """numba-cuda implementation of the particle-backend protocol (module docstring).

    Parameters
    ----------
    tpb : int or None
        Threads per block = tile length. Default 128 on a GPU and 8 in the simulator, which runs
        one Python thread per CUDA thread.
    min_blocks : int or None
        Target number of blocks for the split heuristic (default: 4 × the SM count, or 2 in the
        simulator, which still exercises the split path).
    """

    name = "cuda"

    #: the protocol's operations -> this backend's operations in the activation registry
    REGISTRY_OPERATIONS = {"pairwise": "pairwise", "mc_forward": "act", "mc_backward": "act"}

    def supports(self, op: str, activation: str) -> str:
        """Why operation ``op`` (pairwise, mc_forward, mc_backward) cannot run ``activation`` here
        ('' when it can); answered by the activation registry."""
        from .support import supports

        return supports("cuda", self.REGISTRY_OPERATIONS, op, activation)

    def __init__(self, tpb=None, min_blocks=None):
        ok, why = probe()
        if not ok:
            raise RuntimeError(why)
        from numba import config

        self._cuda = cuda
        self.simulator = bool(getattr(config, "ENABLE_CUDASIM", False))
        self.tpb = int(tpb) if tpb is not None else (8 if self.simulator else 128)
        if min_blocks is None:
            if self.simulator:
                min_blocks = 2
            else:
                min_blocks = 4 * cuda.get_current_device().MULTIPROCESSOR_COUNT
        self.min_blocks = int(min_blocks)
        self._cpu = None
        self._scratch: dict = {}

    def _buf(self, key, shape, dt):
        """Device scratch (the split partial sums) kept across calls: no allocation per step.

        Results handed to the caller are always fresh arrays.
        """
        k = (key, tuple(shape), np.dtype(dt).str)
        buf = self._scratch.get(k)
        if buf is None:
            buf = self._cuda.device_array(shape, dtype=dt)
            self._scratch[k] = buf
        return buf

    # ---------------------------------------------------------------- helpers
    def _fallback(self):
        if self._cpu is None:
            from .numba_backend import NumbaBackend

            self._cpu = NumbaBackend()
        return self._cpu

    @staticmethod
    def _is_dev(a):
        # numba device arrays (also the simulator's, which lacks cuda.is_cuda_array), CuPy, torch
        return a is not None and (
            hasattr(a, "__cuda_array_interface__") or hasattr(a, "copy_to_host")
        )

    def _as_dev(self, a):
        if hasattr(a, "copy_to_host"):
            return a
        return self._cuda.as_cuda_array(a)

    def _dev(self, a, dtype, core_ndim, batch):
        """Device array of shape (S or 1, core...) in dtype (no copy for device inputs)."""
        cuda = self._cuda
        if self._is_dev(a):
            a = self._as_dev(a)
            if a.ndim == core_ndim:
                return a.reshape((1,) + a.shape)
            if a.ndim != core_ndim + 1:
                raise ValueError("device inputs must have at most one leading (seed) axis")
            return a
        a = np.asarray(a, dtype=dtype)
        core = a.shape[a.ndim - core_ndim:]
        if a.ndim == core_ndim:
            a = a.reshape((1,) + core)
        else:
            a = np.broadcast_to(a, batch + core).reshape((-1,) + core)
        return cuda.to_device(np.ascontiguousarray(a))

    def _tpb_for(self, d, dt):
        """Threads per block (= tile rows) so the shared tile stays under ~40 KB (static limit 48 KB).

        float64 at d = 64 and 128 threads would need 64 KB; such cases run 64-thread blocks.
        """
        rows = 40 * 1024 // ((d + 3) * np.dtype(dt).itemsize)
        if rows >= self.tpb:
            return self.tpb
        return max(1, (rows // 32) * 32 or rows)

    def _splits(self, nblk_targets, S, length, tpb=None):
        """Number of splits of the streamed range so that ≥ min_blocks blocks run."""
        tpb = self.tpb if tpb is None else tpb
        ntiles = max(1, -(-length // tpb))
        want = -(-self.min_blocks // max(1, nblk_targets * S))
        nsplit = max(1, min(ntiles, want))
        chunk = -(-ntiles // nsplit) * tpb
        nsplit = max(1, -(-length // chunk))
        return nsplit, chunk

    @staticmethod
    def _shape_of(a):
        return tuple(a.shape)

    # ---------------------------------------------------------------- protocol
    def pairwise(self, act: str, wi, wj, cj, scale2: float = 1.0):
        """Return ``(F, G)`` of shapes (..., n) and (..., n, d); see the module docstring."""
        d = self._shape_of(wi)[-1]
        if implementation(act, "cuda", "pairwise") == HOST or d > MAX_D:
            # linear is O((n+m)d) on the CPU
            return self._fallback().pairwise(act, *self._host(wi, wj, cj), scale2)
        selfint = wi is wj
        dev_out = self._is_dev(wi)
        dt = np.dtype(np.float32) if np.dtype(wi.dtype) == np.float32 else np.dtype(np.float64)
        shp_i, shp_j, shp_c = self._shape_of(wi), self._shape_of(wj), self._shape_of(cj)
        batch = np.broadcast_shapes(shp_i[:-2], shp_j[:-2], shp_c[:-1])
        S = max(1, int(np.prod(batch, dtype=np.int64)))
        n, m = shp_i[-2], shp_j[-2]
        wi3 = self._dev(wi, dt, 2, batch)
        if wi3.shape[0] != S:
            wi3 = self._dev(np.broadcast_to(self._to_host(wi), batch + (n, d)), dt, 2, batch)
        wj3 = wi3 if selfint else self._dev(wj, dt, 2, batch)
        cj2 = self._dev(cj, dt, 1, batch)
        cuda = self._cuda
        F = cuda.device_array((S, n), dtype=dt)
        G = cuda.device_array((S, n, d), dtype=dt)
        self._pairwise_into(act, wi3, wj3, cj2, scale2, selfint, F, G)
        return self._out(dev_out, (F, batch + (n,)), (G, batch + (n, d)))

    def _pairwise_into(self, act, wi3, wj3, cj2, scale2, selfint, F, G):
        """Launch the pairwise kernels on device arrays (S or 1 leading axis) into ``F``, ``G``.

        ``F`` (S, n) and ``G`` (S, n, d) may be views (e.g. reused workspaces of a resident flow).
        """
        S, n, d = G.shape
        dt = np.dtype(G.dtype)
        tpb = self._tpb_for(d, dt)
        ks = _kernels(dt, d, implementation(act, "cuda", "pairwise"), tpb)
        nblk = -(-n // tpb)
        nsplit, chunk = self._splits(nblk, S, wj3.shape[1], tpb)
        Fp = self._buf("Fp", (nsplit, S, n), dt)
        Tp = self._buf("Tp", (nsplit, S, n), dt)
        Gp = self._buf("Gp", (nsplit, S, n, d), dt)
        s2 = dt.type(scale2)
        ks["pair_partial"][(nblk, nsplit, S), tpb](wi3, wj3, cj2, s2, selfint, chunk, Fp, Tp, Gp)
        ks["pair_reduce"][-(-(S * n) // tpb), tpb](wi3, s2, Fp, Tp, Gp, F, G)

    def _forward_partials(self, act, x3, w3, b2, a2, hasb, S):
        """Launch the MC forward kernel; return ``(fp, tpb)``: split partial sums (nsplit, S, M)."""
        M, d = x3.shape[1], w3.shape[2]
        dt = np.dtype(w3.dtype)
        tpb = self._tpb_for(d, dt)
        ks = _kernels(dt, d, implementation(act, "cuda", "act"), tpb)
        nblk = -(-M // tpb)
        nsplit, chunk = self._splits(nblk, S, w3.shape[1], tpb)
        fp = self._buf("fp", (nsplit, S, M), dt)
        ks["fwd_partial"][(nblk, nsplit, S), tpb](x3, w3, b2 if hasb else a2, a2, hasb, chunk, fp)
        return fp, tpb

    def _backward_partials(self, act, x3, w3, b2, rr, hasb, S):
        r"""Launch the MC backward kernel; return ``(gap, gwp, gbp, tpb)``, split partial sums of
        :math:`E[r\sigma]`, :math:`E[r\sigma' x]`, :math:`E[r\sigma']` (leading axis: splits)."""
        M, N, d = x3.shape[1], w3.shape[1], w3.shape[2]
        dt = np.dtype(w3.dtype)
        tpb = self._tpb_for(d, dt)
        ks = _kernels(dt, d, implementation(act, "cuda", "act"), tpb)
        nblk = -(-N // tpb)
        nsplit, chunk = self._splits(nblk, S, M, tpb)
        gap = self._buf("gap", (nsplit, S, N), dt)
        gbp = self._buf("gbp", (nsplit, S, N), dt)
        gwp = self._buf("gwp", (nsplit, S, N, d), dt)
        ks["bwd_partial"][(nblk, nsplit, S), tpb](
            x3, w3, b2 if hasb else rr, rr, dt.type(1.0 / M), hasb, chunk, gap, gwp, gbp
        )
        return gap, gwp, gbp, tpb

    def mc_forward(self, act: str, x, w, b, a, coef: float):
        """Network output on samples: (..., M). ``b`` may be None (no bias)."""
        d = self._shape_of(w)[-1]
        code = implementation(act, "cuda", "act")
        if d > MAX_D:
            return self._fallback().mc_forward(act, *self._host(x, w, b, a), coef)
        dev_out = self._is_dev(w)
        dt = _dtype(x, w)
        shp_x, shp_w, shp_a = self._shape_of(x), self._shape_of(w), self._shape_of(a)
        batch = np.broadcast_shapes(shp_x[:-2], shp_w[:-2], shp_a[:-1])
        S = max(1, int(np.prod(batch, dtype=np.int64)))
        M, N = shp_x[-2], shp_w[-2]
        x3 = self._dev(x, dt, 2, batch)
        w3 = self._dev_full(w, dt, 2, batch, S)
        a2 = self._dev_full(a, dt, 1, batch, S)
        hasb = b is not None
        b2 = self._dev_full(b, dt, 1, batch, S) if hasb else None
        fp, tpb = self._forward_partials(act, x3, w3, b2, a2, hasb, S)
        nsplit = fp.shape[0]
        f = self._cuda.device_array(S * M, dtype=dt)
        _kernels(dt, d, code, tpb)["sum_splits"][-(-(S * M) // tpb), tpb](
            fp.reshape(nsplit, S * M), f, dt.type(coef))
        return self._out(dev_out, (f, batch + (M,)))[0]

    def mc_backward(self, act: str, x, w, b, r):
        """Sample averages ``(ga, gw, gb)`` weighted by the residual ``r`` (..., M)."""
        d = self._shape_of(w)[-1]
        code = implementation(act, "cuda", "act")
        if d > MAX_D:
            return self._fallback().mc_backward(act, *self._host(x, w, b, r))
        dev_out = self._is_dev(w)
        dt = _dtype(x, w)
        shp_x, shp_w, shp_r = self._shape_of(x), self._shape_of(w), self._shape_of(r)
        batch = np.broadcast_shapes(shp_x[:-2], shp_w[:-2], shp_r[:-1])
        S = max(1, int(np.prod(batch, dtype=np.int64)))
        M, N = shp_x[-2], shp_w[-2]
        x3 = self._dev(x, dt, 2, batch)
        w3 = self._dev_full(w, dt, 2, batch, S)
        hasb = b is not None
        rr = self._dev(r, dt, 1, batch)
        b2 = self._dev_full(b, dt, 1, batch, S) if hasb else None
        gap, gwp, gbp, tpb = self._backward_partials(act, x3, w3, b2, rr, hasb, S)
        nsplit = gap.shape[0]
        ks = _kernels(dt, d, code, tpb)
        cuda = self._cuda
        one = dt.type(1.0)
        outs = []
        for p, tail in ((gap, (N,)), (gwp, (N, d)), (gbp, (N,))):
            size = S * int(np.prod(tail))
            o = cuda.device_array(size, dtype=dt)
            ks["sum_splits"][-(-size // tpb), tpb](p.reshape(nsplit, size), o, one)
            outs.append((o, batch + tail))
        ga, gw, gb = self._out(dev_out, *outs)
        return ga, gw, (gb if hasb else None)

    # ---------------------------------------------------------------- plumbing
    def _dev_full(self, a, dt, core_ndim, batch, S):
        out = self._dev(a, dt, core_ndim, batch)
        if out.shape[0] != S:
            host = self._to_host(a)
            core = host.shape[host.ndim - core_ndim:]
            out = self._dev(np.broadcast_to(host, batch + core), dt, core_ndim, batch)
        return out

    def _to_host(self, a):
        if self._is_dev(a):
            return self._as_dev(a).copy_to_host()
        return np.asarray(a)

    def _host(self, *arrays):
        return tuple(None if a is None else self._to_host(a) for a in arrays)

    def _out(self, dev_out, *pairs):
        res = []
        for arr, shape in pairs:
            if dev_out:
                res.append(arr.reshape(shape) if shape else arr)
            else:
                res.append(arr.copy_to_host().reshape(shape))
        return tuple(res)


def _dtype(x, w):
    dts = {np.dtype(x.dtype), np.dtype(w.dtype)}
    if dts == {np.dtype(np.float32)}:
        return np.dtype(np.float32)
    return np.dtype(np.float64)
