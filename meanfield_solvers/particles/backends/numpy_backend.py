r"""The numpy reference backend: the definition every fast backend is tested against.

A backend supplies the two expensive operations of a two-layer particle flow; everything else
(assembling velocities, risks, integrators) is shared code in :mod:`meanfield_solvers.particles.field`.

**Pairwise (analytic expectations).** For particles :math:`w_i` (rows of ``wi``), sources
:math:`w_j` with weights :math:`c_j` and a Gaussian input scale :math:`s` (``scale2`` = s²)

.. math::
    F_i = \sum_j c_j\, K(s^2|w_i|^2, s^2|w_j|^2, s^2 w_i\cdot w_j),\qquad
    G_i = \nabla_{w_i} F_i = \sum_j c_j \big(2 s^2 \partial_{q_1}K\, w_i + s^2 \partial_c K\, w_j\big),

with :math:`K` the closed-form kernel of :mod:`meanfield_solvers.gaussian`. Cost O(n m d), memory O((n+m) d):
when ``wi is wj`` (self-interaction) the diagonal covariance is set to :math:`|w_i|^2` exactly.
rows are processed in blocks so no n×m matrix larger than ``block_bytes`` is held.

**Monte Carlo.** For samples :math:`x_m` (rows of ``x``), pre-activations
:math:`z_{mi} = w_i\cdot x_m + b_i`:

* ``mc_forward``: :math:`f_m = \text{coef}\sum_i a_i\,\sigma(z_{mi})`;
* ``mc_backward``: given residual weights :math:`r_m`,
  :math:`g^a_i = \frac1M\sum_m r_m\sigma(z_{mi})`,
  :math:`g^w_i = \frac1M\sum_m r_m\sigma'(z_{mi})\,x_m`,
  :math:`g^b_i = \frac1M\sum_m r_m\sigma'(z_{mi})`.

The matrix products stay in BLAS; the work is chunked over particles so memory is bounded.

All operations accept a leading batch (seed) axis: ``wi`` of shape (..., n, d) with sources and
samples either shared (no batch axis) or batched the same way.
"""
from __future__ import annotations

import numpy as np

from ... import gaussian

__all__ = ["NumpyBackend"]


class NumpyBackend:
    """Reference implementation of the particle-backend protocol (see module docstring).

    Parameters
    ----------
    block_bytes : int
        Upper bound on the size of any temporary (n-block × m) or (M × N-chunk) matrix.
    """

    name = "numpy"

    #: the protocol's operations -> this backend's operations in the activation registry
    REGISTRY_OPERATIONS = {}

    def supports(self, op: str, activation: str) -> str:
        """Why operation ``op`` (pairwise, mc_forward, mc_backward) cannot run ``activation`` here
        ('' when it can); answered by the activation registry."""
        from .support import supports

        return supports(None, self.REGISTRY_OPERATIONS, op, activation)

    def __init__(self, block_bytes: int = 64 * 2**20):
        self.block_bytes = int(block_bytes)

    # ---------------------------------------------------------------- analytic pairwise
    def pairwise(self, act: str, wi, wj, cj, scale2: float = 1.0):
        """Return ``(F, G)`` of shapes (..., n) and (..., n, d); see the module docstring."""
        wi = np.asarray(wi)
        wj = np.asarray(wj)
        cj = np.asarray(cj)
        n = wi.shape[-2]
        m = wj.shape[-2]
        batch = np.broadcast_shapes(wi.shape[:-2], wj.shape[:-2], cj.shape[:-1])
        F = np.empty(batch + (n,), dtype=wi.dtype)
        G = np.empty(batch + (n, wi.shape[-1]), dtype=wi.dtype)
        qj = scale2 * np.einsum("...jd,...jd->...j", wj, wj)
        per_row = max(1, int(np.prod(batch, dtype=np.int64)) * m * wi.itemsize * 6)
        step = max(1, min(n, self.block_bytes // per_row))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            w = wi[..., lo:hi, :]
            qi = scale2 * np.einsum("...id,...id->...i", w, w)
            c = scale2 * (w @ np.swapaxes(wj, -1, -2))
            if wi is wj:
                # c_ii = q_i exactly: otherwise round-off in q_i q_i - c_ii^2 enters the relu
                # kernel through a square root, as an O(sqrt(eps)) error.
                r = np.arange(hi - lo)
                c[..., r, lo + r] = qi
            k, dq1, dc = gaussian.kernel_and_grad(act, qi[..., :, None], qj[..., None, :], c)
            F[..., lo:hi] = np.einsum("...ij,...j->...i", k, cj)
            # G_i = 2 s² (Σ_j c_j ∂q1K_ij) w_i + s² Σ_j c_j ∂cK_ij w_j
            coef_self = np.einsum("...ij,...j->...i", dq1, cj)
            G[..., lo:hi, :] = scale2 * (
                2.0 * coef_self[..., None] * w + (dc * cj[..., None, :]) @ wj
            )
        return F, G

    # ---------------------------------------------------------------- Monte Carlo
    def _chunk(self, M, N, itemsize, batch):
        per_col = max(1, M * itemsize * 3 * int(np.prod(batch, dtype=np.int64)))
        return max(1, min(N, self.block_bytes // per_col))

    def mc_forward(self, act: str, x, w, b, a, coef: float):
        """Network output on samples: (..., M). ``b`` may be None (no bias)."""
        sig = gaussian.get_activation(act)
        N = w.shape[-2]
        batch = np.broadcast_shapes(x.shape[:-2], w.shape[:-2])
        f = np.zeros(batch + (x.shape[-2],), dtype=np.result_type(x, w))
        step = self._chunk(x.shape[-2], N, w.itemsize, batch)
        for lo in range(0, N, step):
            hi = min(N, lo + step)
            z = x @ np.swapaxes(w[..., lo:hi, :], -1, -2)
            if b is not None:
                z += b[..., None, lo:hi]
            f += np.einsum("...mi,...i->...m", sig.fn(z), a[..., lo:hi])
        f *= coef
        return f

    def mc_backward(self, act: str, x, w, b, r):
        """Sample averages ``(ga, gw, gb)`` weighted by the residual ``r`` (..., M).

        ``gb`` is None when ``b`` is None. Shapes: (..., N), (..., N, d), (..., N).
        """
        sig = gaussian.get_activation(act)
        M = x.shape[-2]
        N = w.shape[-2]
        batch = np.broadcast_shapes(x.shape[:-2], w.shape[:-2], r.shape[:-1])
        dt = np.result_type(x, w)
        ga = np.empty(batch + (N,), dtype=dt)
        gw = np.empty(batch + (N, w.shape[-1]), dtype=dt)
        gb = None if b is None else np.empty(batch + (N,), dtype=dt)
        step = self._chunk(M, N, w.itemsize, batch)
        rr = r[..., :, None] / M
        xt = np.swapaxes(x, -1, -2)
        for lo in range(0, N, step):
            hi = min(N, lo + step)
            z = x @ np.swapaxes(w[..., lo:hi, :], -1, -2)
            if b is not None:
                z += b[..., None, lo:hi]
            ga[..., lo:hi] = np.sum(rr * sig.fn(z), axis=-2)
            rd = rr * sig.d1(z)
            gw[..., lo:hi, :] = np.swapaxes(xt @ rd, -1, -2)
            if gb is not None:
                gb[..., lo:hi] = np.sum(rd, axis=-2)
        return ga, gw, gb
