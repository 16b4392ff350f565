r"""Numba kernel of the deep ensemble's training velocity: one parallel region per step.

Why
---
The numpy path of :meth:`~meanfield.deep.network.DeepNet.velocity` issues ~40 array operations
per step (matrix products batched over seeds, activations, derivatives, scalings). At small width
each of them is dominated by its fixed cost, and ``np.tanh`` runs at ~2 ns per element on one
core, so batching S seeds bought only 2–5× over a Python loop over seeds (N = 8…32, S = 16,
measured). Here one ``prange`` over seeds does, for each network, exactly the maths of
:meth:`DeepNet._velocity_into` — the products with BLAS (``np.dot`` inside the kernel, BLAS pinned to
one thread, so the seeds run on all cores), the activation and its derivative in one fused pass
with the polynomial approximations of :mod:`meanfield_solvers.particles.backends.approx` (≤ 1e-14
relative), the scalings folded into those passes.

Each seed is computed start to finish by one thread with single-threaded BLAS, so the result does
not depend on the thread count (bitwise). It agrees with the numpy path to rounding (the BLAS
library and the activation approximations differ; tested ≤ 1e-12 relative in float64).

Layout: ``theta`` (S, n_params) with the group offsets of :class:`DeepNet`; ``X`` (Sx, P, D) and
``y`` (Sy, P) with Sx, Sy ∈ {1, S} independently.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from meanfield_solvers.activations import implementation
from meanfield_solvers.particles.backends.approx import act_d1, like

__all__ = ["activation_code", "fused_velocity"]

KFLAGS = {"nsz", "contract"}


def activation_code(activation: str) -> int:
    """The activation's code of ``act_d1`` (the registry's numba ``act_d1`` implementation).

    Raises :class:`meanfield_solvers.activations.MissingImplementation` for an activation without one.
    """
    return implementation(activation, "numba", "act_d1")


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _activate(code, scale, H, Hprev, residual, A, Dp):
    """H <- scale*H (+ Hprev); A = phi(H), Dp = phi'(H), one pass over (P, N)."""
    P, N = H.shape
    for p in range(P):
        for n in range(N):
            z = scale * H[p, n]
            if residual:
                z += Hprev[p, n]
            H[p, n] = z
            a, d = act_d1(code, z)
            A[p, n] = a
            Dp[p, n] = d


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _add_block(v, th, lo, hi):
    """v[lo:hi] += th[lo:hi]: the GD update of one weight group, while its block is still in cache."""
    for i in range(lo, hi):
        v[i] += th[i]


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _one_network(code, L, N, D, residual, th, offs, Xs, ys, sf, vc, v, H, A, Dp, E, Left, Tmp, update):
    """Loss and velocity (written into ``v``, scaled by ``vc``) of one network; see module docstring.

    sf : (L+1,) forward scales s_l;  vc : (L+1,) scale * c_l * s_l / P (velocity prefactors).
    Work arrays: H (2, P, N) (pre-activations: only the previous layer's is read again, by the skip addition, so
    two alternating rows suffice and the forward writes a third less memory), A, Dp (L, P, N); E, Left, Tmp (P, N).
    update : write ``th + v`` instead of ``v`` (one GD step, ``vc`` carrying the step size), group by group right
        after each group's product, instead of a separate pass over the whole state afterwards.
    """
    P = Xs.shape[0]
    zero = like(0.0, sf[0])
    # ---- forward: H[l % 2] = h^{l+1}, A[l] = phi(h^{l+1}), Dp[l] = phi'(h^{l+1})
    W0 = th[offs[0]:offs[1]].reshape((N, D))
    np.dot(Xs, W0.T, H[0])
    _activate(code, sf[0], H[0], H[0], False, A[0], Dp[0])
    for l in range(1, L):
        W = th[offs[l]:offs[l + 1]].reshape((N, N))
        np.dot(A[l - 1], W.T, H[l % 2])
        _activate(code, sf[l], H[l % 2], H[(l - 1) % 2], residual, A[l], Dp[l])
    w = th[offs[L]:offs[L + 1]]
    aL = A[L - 1]
    sL = sf[L]
    # ---- outputs, residuals Delta = y - f, loss
    loss = zero
    delta = np.empty(P, dtype=th.dtype)
    for p in range(P):
        acc = zero
        for n in range(N):
            acc += aL[p, n] * w[n]
        dl = ys[p] - sL * acc
        delta[p] = dl
        loss += dl * dl
    # ---- readout velocity v^L_n = vc_L sum_p Delta_p a^L_pn, and e^L = s_L w phi'(h^L)
    vL = v[offs[L]:offs[L + 1]]
    for n in range(N):
        vL[n] = zero
    for p in range(P):
        cp = vc[L] * delta[p]
        for n in range(N):
            vL[n] += cp * aL[p, n]
            E[p, n] = sL * w[n] * Dp[L - 1, p, n]
    if update:
        _add_block(v, th, offs[L], offs[L + 1])
    # ---- hidden groups l = L-1 .. 0: dW^l = (vc_l Delta e^{l+1})^T a^l, then e^l
    for l in range(L - 1, -1, -1):
        for p in range(P):
            cp = vc[l] * delta[p]
            for n in range(N):
                Left[p, n] = cp * E[p, n]
        if l == 0:
            np.dot(Left.T, Xs, v[offs[0]:offs[1]].reshape((N, D)))
            if update:
                _add_block(v, th, offs[0], offs[1])
            break
        np.dot(Left.T, A[l - 1], v[offs[l]:offs[l + 1]].reshape((N, N)))
        W = th[offs[l]:offs[l + 1]].reshape((N, N))
        np.dot(E, W, Tmp)
        if update:  # after E W: W^l was just read, so it is in cache for the update
            _add_block(v, th, offs[l], offs[l + 1])
        s = sf[l]
        for p in range(P):
            for n in range(N):
                g = s * Tmp[p, n] * Dp[l - 1, p, n]
                if residual:
                    g += E[p, n]
                E[p, n] = g
    return like(0.5, loss) * loss / like(P, loss)


@njit(fastmath=KFLAGS, error_model="numpy", cache=True)
def _seed(code, L, N, D, residual, theta, offs, X, y, sf, vc, v, loss, s, update):
    sx = s if X.shape[0] > 1 else 0
    sy = s if y.shape[0] > 1 else 0  # X and y are shared or per seed independently
    P = X.shape[1]
    dt = theta.dtype
    H = np.empty((2, P, N), dtype=dt)
    A = np.empty((L, P, N), dtype=dt)
    Dp = np.empty((L, P, N), dtype=dt)
    E = np.empty((P, N), dtype=dt)
    Left = np.empty((P, N), dtype=dt)
    Tmp = np.empty((P, N), dtype=dt)
    loss[s] = _one_network(code, L, N, D, residual, theta[s], offs, X[sx], y[sy], sf, vc, v[s],
                           H, A, Dp, E, Left, Tmp, update)


@njit(parallel=True, error_model="numpy", cache=True)
def _ensemble_parallel(code, L, N, D, residual, theta, offs, X, y, sf, vc, v, loss, update):
    for s in prange(theta.shape[0]):
        # an int64 index: prange's may be unsigned, and numba unifies uint64 with int64 to float
        _seed(code, L, N, D, residual, theta, offs, X, y, sf, vc, v, loss, np.int64(s), update)


@njit(error_model="numpy", cache=True)
def _ensemble_serial(code, L, N, D, residual, theta, offs, X, y, sf, vc, v, loss, update):
    for s in range(theta.shape[0]):
        _seed(code, L, N, D, residual, theta, offs, X, y, sf, vc, v, loss, s, update)


def fused_velocity(code, L, N, D, residual, theta, offsets, X, y, forward, vcoef, parallel=True, update=False,
                   out=None):
    """Loss (S,) and velocity (S, n_params) of S deep networks (see the module docstring).

    Parameters
    ----------
    code : activation code of ``act_d1`` (:func:`activation_code`)
    theta : (S, n_params) C-contiguous, float64 or float32
    offsets : (L+2,) int64 group offsets
    X : (Sx, P, D), y : (Sy, P), Sx, Sy ∈ {1, S}; cast to the dtype of theta
    forward : (L+1,) forward scales s_l
    vcoef : (L+1,) velocity prefactors ``scale * c_l * s_l / P``
    parallel : run the seeds in a numba ``prange`` (False: on the calling thread)
    update : return ``theta + v`` (a GD step when ``vcoef`` carries the step) instead of ``v``: each group is
        updated right after its product, while its block is in cache, saving a pass over the whole state
        (bitwise the same as ``v + theta`` computed afterwards: the same additions in the same order)
    out : None, or a C-contiguous array like ``theta`` (not ``theta``) to write the result into; every entry is
        written, so a recycled buffer gives the same bits as a new one and spares the page faults of a new
        S·n_params array every step (README "Benchmark" paragraph of the residual section)
    """
    from meanfield_solvers.threads import blas_threads

    dt = theta.dtype
    S = theta.shape[0]
    v = np.empty_like(theta) if out is None else out
    loss = np.empty(S, dtype=dt)
    args = (int(code), int(L), int(N), int(D), bool(residual), theta, np.asarray(offsets, np.int64),
            np.ascontiguousarray(X, dtype=dt), np.ascontiguousarray(y, dtype=dt),
            np.asarray(forward, dtype=dt), np.asarray(vcoef, dtype=dt), v, loss, bool(update))
    with blas_threads(1):
        if parallel and S > 1:
            _ensemble_parallel(*args)
        else:
            _ensemble_serial(*args)
    return loss, v
