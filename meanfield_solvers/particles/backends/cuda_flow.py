r"""A two-layer particle flow that stays in GPU memory from step to step.

:class:`CudaFlow` runs :func:`meanfield_solvers.particles.field.mc_risk_velocity` /
:func:`~meanfield_solvers.particles.field.population_risk_velocity` and the integrators of
:mod:`meanfield_solvers.particles.integrators` as a fixed sequence of kernel launches on device arrays:

* the particles ``theta`` (S, N, p) are uploaded once (:meth:`CudaFlow.put`); a step reads one
  device state and writes the next one;
* the Monte Carlo velocity is the forward kernel, one kernel that sums its split partials and
  forms the residual :math:`r = -\partial_f\ell` (square or logistic), the backward kernel, and
  one kernel that sums the backward partials and writes the velocity rows
  :math:`[k_a g^a_i,\; k_w a_i g^w_i,\; k_b a_i g^b_i]` (:meth:`TwoLayer.velocity_scales`)
  straight into the stage buffer;
* the population velocity is the tiled pairwise kernels per mixture component (self-interaction
  and teacher), one accumulation kernel per component and one assembly kernel;
* the integrator's last combination (Euler :math:`y + h k_1`, Heun, RK4) is one elementwise
  kernel that also stamps a device flag (one per state buffer) with the step's number when a
  value is not finite, so the host reads back 16 bytes per step (the two flags), not the particles;
* all workspaces (stage buffers, the residual, the split partials, two state buffers used in
  turn) are allocated once per shape and reused: no allocation per step.

Only what a caller asks for comes back (:meth:`CudaFlow.get`, e.g. at recording steps). New
samples (fresh Monte Carlo draws, minibatches) go up with :meth:`CudaFlow.set_samples`, into the
same device buffers when their shape repeats.

Every operation follows the host code (same formulas, same association), so the float64 results
agree with the numpy reference to rounding: the special functions (libdevice
``erf``/``asin``/``exp``/``tanh`` against numpy's), the order of the tiled sums, and on a real
GPU the compiler's contraction of ``a*b + c`` into fused multiply-adds (about one ulp each).
``tests/test_backends_cuda.py`` checks 1e-10 relative after several steps of each integrator in
numba's CUDA simulator (measured ≤ 1e-15).

State ownership: :meth:`CudaFlow.step` writes into one of two state buffers in turn, so the
state it returns stays valid until the step after next; :meth:`get` copies to the host.
"""
from __future__ import annotations

import math

import numpy as np

from ...activations import MissingImplementation, implementation, register_implementation, register_operation
from . import cuda_backend as _cb

# a module global (not a closure variable): the CUDA simulator swaps it inside kernels
cuda = _cb.cuda

__all__ = ["CudaFlow", "unsupported"]

_LOSS = {"square": 0, "logistic": 1}

#: closed-form Gaussian means m(q) = E sigma(u) of the population kernel (the cuda target's ``mean``
#: codes): the branches of ``pop_accumulate``
MEAN_CODES = {0: "zero (odd activation)", 1: "relu sqrt(q/(2 pi))"}
register_operation("cuda", "mean", "closed-form Gaussian mean E sigma(u) of the resident population flow",
                   codes=MEAN_CODES, needs=("mean_and_grad",))
register_implementation("erf", "cuda", "mean", 0)
register_implementation("relu", "cuda", "mean", 1)

_INTEGRATORS = ("euler", "heun", "rk4")


def unsupported(model, mode: str, loss: str = "square", population=None) -> str:
    """Why :class:`CudaFlow` cannot run this case ('' when it can).

    ``mode`` is ``"mc"`` or ``"analytic"`` (then ``population`` may be given to check it). The
    callers fall back to the host-driven loop (same results, particles copied per velocity
    evaluation) and say so.
    """
    if model.d > _cb.MAX_D:
        return (f"input dimension d = {model.d} > {_cb.MAX_D}: the CUDA kernels keep a row per "
                "thread, so the cuda backend computes these on the CPU (numba)")
    if mode == "analytic":
        try:
            if implementation(model.activation, "cuda", "pairwise") == _cb.HOST:
                return f"analytic expectations with {model.activation!r} run on the CPU (closed form O(N d))"
            implementation(model.activation, "cuda", "mean")
        except MissingImplementation as exc:
            return str(exc)
        if model.bias:
            return "analytic expectations need bias = false"
        if loss != "square":
            return f"analytic expectations are for the square loss, not {loss!r}"
        if population is not None and population.activation != model.activation:
            return (f"the teacher's activation ({population.activation}) differs from the "
                    f"student's ({model.activation})")
        return ""
    try:
        implementation(model.activation, "cuda", "act")
    except MissingImplementation as exc:
        return str(exc)
    if loss not in _LOSS:
        return f"loss {loss!r} has no CUDA residual kernel"
    return ""


_KERNELS: dict = {}


def _kernels(dtype, d):
    key = (np.dtype(dtype).str, int(d))
    if key in _KERNELS:
        return _KERNELS[key]
    F = np.dtype(dtype).type
    D = int(d)
    Z0, ONE, HALF, TWO = F(0.0), F(1.0), F(0.5), F(2.0)
    TWO_PI = F(2.0 * math.pi)
    FOUR_PI = F(4.0 * math.pi)
    TINY = F(np.finfo(np.dtype(dtype)).tiny)

    @cuda.jit(device=True)
    def cell(t, S, n):
        """(s, i, inside) of flat thread index t over an (S, n) grid of (seed, row) cells."""
        s = t // n
        return s, t - s * n, t < S * n

    @cuda.jit(device=True)
    def store_checked(out, t, v, flag, slot, stamp):
        """out[t] = v, stamping flag[slot] with the step's number when v is not finite."""
        out[t] = v
        if not math.isfinite(v):
            flag[slot] = stamp

    @cuda.jit
    def residual(fp, coef, y, loss, r):
        """r[s, m] = -dl/df at f = coef * sum_sp fp[sp, s, m] (sum order of sum_splits)."""
        s, m, inside = cell(cuda.grid(1), r.shape[0], r.shape[1])
        if not inside:
            return
        acc = Z0
        for sp in range(fp.shape[0]):
            acc += fp[sp, s, m]
        f = coef * acc
        yv = y[s if y.shape[0] > 1 else 0, m]
        if loss == 0:
            r[s, m] = yv - f
        else:
            r[s, m] = yv * (HALF * (ONE + math.tanh(HALF * (-(yv * f)))))

    @cuda.jit
    def assemble_mc(gap, gwp, gbp, a, ka, kw, kb, hasb, v):
        """v[s, i] = [ka g^a, (kw a) g^w, (kb a) g^b] from the split partial sums."""
        s, i, inside = cell(cuda.grid(1), v.shape[0], v.shape[1])
        if not inside:
            return
        nsp = gap.shape[0]
        acc = Z0
        for sp in range(nsp):
            acc += gap[sp, s, i]
        v[s, i, 0] = acc * ka
        ai = a[s, i]
        cw = kw * ai
        for k in range(D):
            acc = Z0
            for sp in range(nsp):
                acc += gwp[sp, s, i, k]
            v[s, i, 1 + k] = acc * cw
        if hasb:
            acc = Z0
            for sp in range(nsp):
                acc += gbp[sp, s, i]
            v[s, i, 1 + D] = acc * (kb * ai)

    @cuda.jit
    def pop_accumulate(w, Fs, Gs, T, Tg, hasT, mean_code, pi, kk, y0, s2, first, ga, gw):
        """One mixture component of population_risk_velocity: ga += pi (T - k F), gw likewise.

        ``mean_code`` (:data:`MEAN_CODES`): 1 relu's mean sqrt(q/2 pi), 0 a zero mean.
        """
        s, i, inside = cell(cuda.grid(1), ga.shape[0], ga.shape[1])
        if not inside:
            return
        tv = T[s, i] if hasT else Z0
        dm = Z0
        if y0 != Z0:
            m = Z0
            if mean_code == 1:
                q = Z0
                for k in range(D):
                    q += w[s, i, k] * w[s, i, k]
                q = s2 * q
                sq = math.sqrt(max(q, Z0) / TWO_PI)
                m = sq
                dm = ONE / (FOUR_PI * max(sq, TINY)) if q > Z0 else Z0
            tv = tv + y0 * m
        g = pi * (tv - kk * Fs[s, i])
        if first:
            ga[s, i] = g
        else:
            ga[s, i] += g
        cdm = TWO * s2 * y0 * dm
        for k in range(D):
            tg = Tg[s, i, k] if hasT else Z0
            if y0 != Z0:
                tg = tg + cdm * w[s, i, k]
            g = pi * (tg - kk * Gs[s, i, k])
            if first:
                gw[s, i, k] = g
            else:
                gw[s, i, k] += g

    @cuda.jit
    def assemble_pop(ga, gw, a, ka, kw, v):
        s, i, inside = cell(cuda.grid(1), v.shape[0], v.shape[1])
        if not inside:
            return
        v[s, i, 0] = ga[s, i] * ka
        cw = kw * a[s, i]
        for k in range(D):
            v[s, i, 1 + k] = gw[s, i, k] * cw

    @cuda.jit
    def axpy(y, h, k, out):
        """out = k h + y (a stage point; flat arrays)."""
        t = cuda.grid(1)
        if t < out.shape[0]:
            out[t] = k[t] * h + y[t]

    # The final combinations stamp flag[slot] with the step's number on a non-finite value
    # (every writer writes the same value: a benign race). A stamp names the step that wrote the
    # state buffer, so flags need no reset and a read is idempotent.
    @cuda.jit
    def euler_end(y, h, k1, out, flag, slot, stamp):
        t = cuda.grid(1)
        if t < out.shape[0]:
            store_checked(out, t, k1[t] * h + y[t], flag, slot, stamp)

    @cuda.jit
    def heun_end(y, h2, k1, k2, out, flag, slot, stamp):
        t = cuda.grid(1)
        if t < out.shape[0]:
            store_checked(out, t, (k1[t] + k2[t]) * h2 + y[t], flag, slot, stamp)

    @cuda.jit
    def rk4_end(y, h6, k1, k2, k3, k4, out, flag, slot, stamp):
        t = cuda.grid(1)
        if t < out.shape[0]:
            store_checked(out, t, ((((k2[t] + k3[t]) * TWO) + k1[t]) + k4[t]) * h6 + y[t], flag, slot, stamp)

    @cuda.jit
    def gather(xt, yt, idx, x, y):
        """x[s, b] = xt[idx[s, b]], y[s, b] = yt[idx[s, b]] (minibatches of a resident set)."""
        s, b, inside = cell(cuda.grid(1), idx.shape[0], idx.shape[1])
        if not inside:
            return
        j = idx[s, b]
        for k in range(D):
            x[s, b, k] = xt[j, k]
        y[s, b] = yt[j]

    ks = dict(residual=residual, assemble_mc=assemble_mc, pop_accumulate=pop_accumulate,
              assemble_pop=assemble_pop, axpy=axpy, euler_end=euler_end, heun_end=heun_end,
              rk4_end=rk4_end, gather=gather)
    _KERNELS[key] = ks
    return ks


class CudaFlow:
    r"""Integrate the two-layer mean-field flow with the particles resident on the GPU.

    Parameters
    ----------
    backend : CudaBackend
        Supplies the tiled pairwise / Monte Carlo kernels and their scratch.
    model : meanfield_solvers.particles.TwoLayer
    integrator : {"euler", "heun", "rk4"}
    h : float
        Step size (mean-field time; for finite-width gradient descent the learning rate).
    dtype : float64 or float32
    loss : {"square", "logistic"}
        Monte Carlo mode only (the population mode is the square loss).
    population : GaussianPopulation or None
        Given: exact population expectations (:func:`population_risk_velocity`); otherwise the
        velocity averages over the samples of :meth:`set_samples`.

    Notes
    -----
    One step costs the kernels of 1, 2 or 4 velocity evaluations plus one elementwise pass per
    stage, and one 16-byte device-to-host copy (the finiteness flags).
    """

    def __init__(self, backend, model, integrator="euler", h=1e-2, dtype=np.float64, loss="square",
                 population=None):
        if integrator not in _INTEGRATORS:
            raise ValueError(f"unknown integrator {integrator!r}; choose one of {list(_INTEGRATORS)}")
        why = unsupported(model, "analytic" if population is not None else "mc", loss, population)
        if why:
            raise ValueError(f"CudaFlow cannot run this case: {why}")
        self.be, self.model, self.integrator = backend, model, integrator
        self.dt = np.dtype(dtype)
        if self.dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {self.dt}")
        self.h = float(h)
        self.loss = loss
        self.pop = population
        self.cuda = _cb.cuda
        self._ks = _kernels(self.dt, model.d)
        self._x = self._y = None
        self._ws: dict = {}
        self._teacher = None
        # state buffer -> (its flag slot, the number of the step that last wrote it)
        self._turn = 0
        self._count = 0
        self._stamps: dict = {}
        self._flag = self.cuda.to_device(np.zeros(2, np.int64))
        self._hflag = np.zeros(2, np.int64)
        if population is not None:
            if population.teacher_w.shape[0]:
                self._teacher = self.cuda.to_device(
                    np.ascontiguousarray(population.teacher_w, dtype=self.dt)[None])
                self._tc = [self.cuda.to_device(np.ascontiguousarray(c, dtype=self.dt)[None])
                            for c in population.teacher_c]

    # ---------------------------------------------------------------- residency
    def put(self, theta):
        """Upload particles (..., N, p) (at most one leading axis); returns the device state."""
        theta = np.asarray(theta, dtype=self.dt)
        if theta.ndim not in (2, 3) or tuple(theta.shape)[-1] != self.model.p:
            raise ValueError(f"theta must have shape (N, {self.model.p}) or (S, N, {self.model.p}), "
                             f"got {theta.shape}")
        return self.cuda.to_device(np.ascontiguousarray(theta))

    def get(self, state):
        """Copy a device state to a host numpy array."""
        return state.copy_to_host()

    def all_finite(self, state) -> bool:
        """Whether every entry of ``state`` is finite.

        For a state returned by :meth:`step` (and not yet overwritten) this reads the flags its
        final kernel stamps (16 bytes); any other state is checked on the host.
        """
        key = self._stamps.get(id(state))
        if key is None or key[0] is not state:
            return bool(np.all(np.isfinite(self.get(state))))
        _, slot, stamp = key
        self._flag.copy_to_host(self._hflag)
        return int(self._hflag[slot]) != stamp

    def set_samples(self, x, y):
        """Samples of the Monte Carlo velocity: x (M, d) or (S, M, d), y (M,) or (S, M).

        Host arrays are copied into device buffers reused while the shape repeats; device arrays
        are used in place.
        """
        self._x = self._upload("x", x, 2)
        self._y = self._upload("y", y, 1)

    def set_train(self, x, y):
        """Keep a training set x (P, d), y (P,) on the device for :meth:`set_batch_indices`."""
        x = np.asarray(x, dtype=self.dt)
        y = np.asarray(y, dtype=self.dt)
        if x.ndim != 2 or x.shape[1] != self.model.d or y.shape != (x.shape[0],):
            raise ValueError(f"training set must be x (P, {self.model.d}) and y (P,), got "
                             f"{x.shape} and {y.shape}")
        self._train = (self.cuda.to_device(np.ascontiguousarray(x)),
                       self.cuda.to_device(np.ascontiguousarray(y)))

    def set_batch_indices(self, idx):
        """Samples = rows ``idx`` (S, B) of the resident training set, gathered on the device.

        Only the indices travel (S·B integers instead of S·B·(d + 1) values).
        """
        if getattr(self, "_train", None) is None:
            raise RuntimeError("CudaFlow.set_train(x, y) must come before set_batch_indices")
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        xt, yt = self._train
        P = xt.shape[0]
        if idx.ndim != 2:
            raise ValueError(f"batch indices must have shape (S, B), got {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= P):
            raise ValueError(f"batch indices must lie in [0, {P}), got [{idx.min()}, {idx.max()}]")
        S, B = idx.shape
        di = self._ws.get(("idx", idx.shape))
        if di is None:
            di = self._ws[("idx", idx.shape)] = self.cuda.to_device(idx)
        else:
            di.copy_to_device(idx)
        x = self._buf("xb", (S, B, self.model.d))
        y = self._buf("yb", (S, B))
        self._ks["gather"][self._grid(S * B)](xt, yt, di, x, y)
        self._x, self._y = x, y

    def _upload(self, name, a, core):
        if _cb.CudaBackend._is_dev(a):
            a = self._check_dev(self.be._as_dev(a), name)
            return a if a.ndim == core + 1 else a.reshape((1,) + tuple(a.shape))
        a = np.ascontiguousarray(a, dtype=self.dt)
        if a.ndim == core:
            a = a[None]
        buf = self._ws.get(name)
        if buf is None or tuple(buf.shape) != a.shape:
            buf = self.cuda.to_device(a)
            self._ws[name] = buf
        else:
            buf.copy_to_device(a)
        return buf

    def _check_dev(self, a, name):
        # numba-cuda reshapes only contiguous device arrays, and the kernels are specialised on
        # the flow's dtype
        if not a.is_c_contiguous():
            raise ValueError(f"device array {name} must be C-contiguous (copy it with "
                             "numba.cuda.device_array_like + copy_to_device, or upload a host array)")
        if np.dtype(a.dtype) != self.dt:
            raise ValueError(f"device array {name} has dtype {a.dtype}, the flow runs in {self.dt}")
        return a

    # ---------------------------------------------------------------- workspaces
    def _buf(self, name, shape):
        key = (name, tuple(shape))
        b = self._ws.get(key)
        if b is None:
            b = self.cuda.device_array(shape, dtype=self.dt)
            self._ws[key] = b
        return b

    def _grid(self, n):
        # the backend's block size (128 on a GPU; tiny in the simulator, which runs a thread each)
        tpb = self.be.tpb
        return max(1, -(-n // tpb)), tpb

    # ---------------------------------------------------------------- velocity
    def velocity(self, theta, out=None):
        """Velocity of device particles (S, N, p) (or (N, p)) into ``out`` (a workspace if None)."""
        self._check_dev(theta, "theta")
        if theta.ndim not in (2, 3) or tuple(theta.shape)[-1] != self.model.p:
            raise ValueError(f"theta must have shape (N, {self.model.p}) or (S, N, {self.model.p}), "
                             f"got {tuple(theta.shape)}")
        th = theta if theta.ndim == 3 else theta.reshape((1,) + tuple(theta.shape))
        S, N, p = th.shape
        if out is None:
            out = self._buf("v", tuple(theta.shape))
        v = out if out.ndim == 3 else out.reshape((1,) + tuple(out.shape))
        m = self.model
        d = m.d
        a = th[:, :, 0]
        w = th[:, :, 1:1 + d]
        b = th[:, :, 1 + d] if m.bias else None
        ka, kw, kb = (self.dt.type(k) for k in m.velocity_scales())
        grid = self._grid(S * N)
        if self.pop is None:
            if self._x is None:
                raise RuntimeError("CudaFlow.set_samples(x, y) must come before the first step")
            x3, y2 = self._x, self._y
            M = x3.shape[1]
            # the kernels index a seed axis of 1 (shared) or S: anything else would read past it
            if (x3.shape[0] not in (1, S) or y2.shape[0] not in (1, S) or x3.shape[2] != d
                    or y2.shape[1] != M or (theta.ndim == 2 and x3.shape[0] != 1)):
                raise ValueError(
                    f"samples x {tuple(x3.shape)} and y {tuple(y2.shape)} do not fit particles "
                    f"{tuple(theta.shape)}: x must be (M, {d}) or (S, M, {d}) and y (M,) or (S, M), "
                    f"with S = {S} the particles' seed axis")
            fp, _ = self.be._forward_partials(m.activation, x3, w, b, a, m.bias, S)
            r = self._buf("r", (S, M))
            self._ks["residual"][self._grid(S * M)](fp, self.dt.type(m.alpha / N), y2,
                                                    _LOSS[self.loss], r)
            gap, gwp, gbp, _ = self.be._backward_partials(m.activation, x3, w, b, r, m.bias, S)
            self._ks["assemble_mc"][grid](gap, gwp, gbp, a, ka, kw, kb, m.bias, v)
            return out
        pop = self.pop
        kk = self.dt.type(m.alpha / N)
        ga = self._buf("ga", (S, N))
        gw = self._buf("gw", (S, N, d))
        Fs = self._buf("Fs", (S, N))
        Gs = self._buf("Gs", (S, N, d))
        T = self._buf("T", (S, N))
        Tg = self._buf("Tg", (S, N, d))
        hasT = self._teacher is not None
        mean_code = implementation(m.activation, "cuda", "mean")
        for c, (pi, s, y0) in enumerate(zip(pop.weights, pop.scales, pop.offsets)):
            s2 = float(s) * float(s)
            self.be._pairwise_into(m.activation, w, w, a, s2, True, Fs, Gs)
            if hasT:
                self.be._pairwise_into(m.activation, w, self._teacher, self._tc[c], s2, False, T, Tg)
            self._ks["pop_accumulate"][grid](
                w, Fs, Gs, T, Tg, hasT, mean_code, self.dt.type(pi), kk,
                self.dt.type(y0), self.dt.type(s2), c == 0, ga, gw)
        self._ks["assemble_pop"][grid](ga, gw, a, ka, kw, v)
        return out

    # ---------------------------------------------------------------- integrators
    def step(self, theta):
        """One integrator step of size ``h`` from device state ``theta``; returns the new state."""
        shape = tuple(theta.shape)
        n = int(np.prod(shape))
        slot = self._turn
        out = self._buf(f"state{slot}", shape)
        if out is theta:  # a caller stepping from a state two steps old: use the other buffer
            slot ^= 1
            out = self._buf(f"state{slot}", shape)
        self._turn = slot ^ 1
        self._count += 1
        stamp = self._count
        self._stamps = {k: v for k, v in self._stamps.items() if v[1] != slot}
        self._stamps[id(out)] = (out, slot, stamp)
        fl = (self._flag, slot, stamp)
        ks, F = self._ks, self.dt.type
        grid = self._grid(n)
        flat = lambda z: z.reshape(n)  # noqa: E731
        y = flat(theta)
        k1 = self.velocity(theta, self._buf("k1", shape))
        if self.integrator == "euler":
            ks["euler_end"][grid](y, F(self.h), flat(k1), flat(out), *fl)
        elif self.integrator == "heun":
            yy = self._buf("yy", shape)
            ks["axpy"][grid](y, F(self.h), flat(k1), flat(yy))
            k2 = self.velocity(yy, self._buf("k2", shape))
            ks["heun_end"][grid](y, F(0.5 * self.h), flat(k1), flat(k2), flat(out), *fl)
        else:
            yy = self._buf("yy", shape)
            ks["axpy"][grid](y, F(0.5 * self.h), flat(k1), flat(yy))
            k2 = self.velocity(yy, self._buf("k2", shape))
            ks["axpy"][grid](y, F(0.5 * self.h), flat(k2), flat(yy))
            k3 = self.velocity(yy, self._buf("k3", shape))
            ks["axpy"][grid](y, F(self.h), flat(k3), flat(yy))
            k4 = self.velocity(yy, self._buf("k4", shape))
            ks["rk4_end"][grid](y, F(self.h / 6.0), flat(k1), flat(k2), flat(k3), flat(k4),
                                flat(out), *fl)
        return out
