r"""Gaussian sources of the single-site processes, by common random numbers.

Layer :math:`\ell` is driven by :math:`u^\ell\sim GP(0,\Phi^{\ell-1})` and
:math:`r^\ell\sim GP(0,G^{\ell+1})`, independent of each other and across layers. Each is sampled as
:math:`C\varepsilon` with a white noise :math:`\varepsilon` that is drawn once and kept fixed across
fixed-point iterations (so the fixed-point map is deterministic and its residual can be driven to
zero) and :math:`C` the lower Cholesky factor of :math:`K + \text{jitter}\cdot I` (docs/dmft.md §3.2):

* Cholesky is causal (rows up to time ``k`` depend only on the kernel up to time ``k``) and smooth in
  the kernel; an eigen-factor is neither (sign flips stall the iteration at the MC noise level).
* The jitter is absolute (default :data:`JITTER` = 1e-10); a jitter proportional to the largest
  diagonal over all times would re-introduce a dependence on later times.
* A kernel that is not positive definite up to the stated jitter is never patched: the failure is
  raised as :class:`KernelNotPositiveDefinite` with the jitter that would be needed.

The static sources are special: :math:`u^1\sim N(0,\Phi^0)` is constant in time and
:math:`r^L\sim N(0,1)` is one scalar per sample (``G^{L+1}`` ≡ 1). They are the network's own
initial weights (:math:`u^1_\mu = W^0_i\cdot x_\mu/\sqrt D`, :math:`r^L = w^L_i`) and may be given
explicitly.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

__all__ = ["JITTER", "KernelNotPositiveDefinite", "cholesky_factor", "IncrementalCholesky", "NoiseBank"]

JITTER = 1e-10


class KernelNotPositiveDefinite(np.linalg.LinAlgError):
    """A source covariance is not positive definite up to the stated jitter.

    Attributes: ``name`` (which kernel), ``min_eigenvalue``, ``jitter`` (used), ``jitter_needed``.
    """

    def __init__(self, name, min_eigenvalue, jitter, jitter_needed):
        self.name = name
        self.min_eigenvalue = float(min_eigenvalue)
        self.jitter = float(jitter)
        self.jitter_needed = float(jitter_needed)
        super().__init__(
            f"source covariance {name} is not positive definite: smallest eigenvalue "
            f"{self.min_eigenvalue:.3e}; Cholesky with jitter {self.jitter:.1e} failed and would need a "
            f"jitter of about {self.jitter_needed:.1e}. Not patched silently: raise `jitter` to at least "
            "that (it biases the source covariance by jitter*I), or use more samples / a shorter horizon."
        )


def cholesky_factor(K, jitter: float = JITTER, name: str = "kernel"):
    r"""Lower Cholesky factor ``C`` with :math:`CC^\top = K + \text{jitter}\,I`.

    Parameters
    ----------
    K : (n, n) symmetric array
    jitter : float, absolute diagonal shift
    name : str, used in the error message

    Raises
    ------
    KernelNotPositiveDefinite
        with the smallest eigenvalue and the jitter that would be needed.
    """
    K = np.asarray(K, dtype=float)
    A = 0.5 * (K + K.T)
    A[np.diag_indices_from(A)] += jitter
    try:
        return linalg.cholesky(A, lower=True, check_finite=True)
    except (linalg.LinAlgError, ValueError):
        raise _report(K, jitter, name) from None


def _report(K, jitter, name):
    """Build the not-positive-definite error for kernel ``K`` (smallest eigenvalue, needed jitter)."""
    if not np.all(np.isfinite(K)):
        return KernelNotPositiveDefinite(name, np.nan, jitter, np.inf)
    lam = float(np.linalg.eigvalsh(0.5 * (K + K.T))[0])
    scale = max(1.0, float(np.max(np.abs(np.diag(K)))))
    need = max(-lam, 0.0) + max(jitter, 1e3 * np.finfo(float).eps * scale * K.shape[0])
    return KernelNotPositiveDefinite(name, lam, jitter, 2 * need)


class IncrementalCholesky:
    r"""Cholesky factor of :math:`K + \text{jitter}\,I` grown one time block at a time.

    Because Cholesky is causal, the rows of time ``k`` depend only on ``K[≤k, ≤k]``:
    appending block row ``k`` (``n_pts`` rows) costs one triangular solve,

    .. math::  C_{k,<k} = K_{k,<k}\,C_{<k,<k}^{-\top},\qquad
               C_{kk} = \mathrm{chol}(K_{kk} + \text{jitter}\,I - C_{k,<k}C_{k,<k}^\top),

    and gives the same factor as :func:`cholesky_factor` of the whole matrix (up to rounding). Used by
    the causal sweep, where a layer's kernel at time ``k`` becomes known only at step ``k``.

    Parameters
    ----------
    K : (n, n) array, filled by the caller up to block row ``k`` before :meth:`append` (read only)
    n_pts : int, rows per time block
    """

    def __init__(self, K, n_pts, jitter=JITTER, name="kernel"):
        self.K, self.P, self.jitter, self.name = K, n_pts, jitter, name
        self.C = np.zeros_like(K)
        self.k = 0

    def append(self):
        """Factor block row ``k`` (the next one) of ``K``; return ``C[k, :k+1]`` (a view)."""
        P, k = self.P, self.k
        r0, r1 = k * P, (k + 1) * P
        S22 = np.array(self.K[r0:r1, r0:r1], dtype=float)
        if k:
            C21 = linalg.solve_triangular(self.C[:r0, :r0], self.K[r0:r1, :r0].T, lower=True,
                                          check_finite=False).T
            self.C[r0:r1, :r0] = C21
            S22 -= C21 @ C21.T
        S22 = 0.5 * (S22 + S22.T)
        S22[np.diag_indices(P)] += self.jitter
        try:
            self.C[r0:r1, r0:r1] = linalg.cholesky(S22, lower=True, check_finite=True)
        except (linalg.LinAlgError, ValueError):
            raise _report(self.K[:r1, :r1], self.jitter, f"{self.name} (up to time index {k})") from None
        self.k += 1
        return self.C[r0:r1, :r1]


class NoiseBank:
    r"""Fixed white noise behind all sources of one solve (common random numbers).

    Parameters
    ----------
    n_max : int
        Rows ``(T_max+1) * n_pts`` of the longest horizon; shorter horizons use the leading rows, so the
        sources at times ≤ T are the same on every continuation stage.
    L : int
    n_samples : int
    rng : numpy Generator
    antithetic : bool
        If True, samples come in pairs ``(2i, 2i+1)`` sharing the forward noise (``u`` sources) with
        opposite backward noise (``r`` sources, including :math:`r^L`). Under
        :math:`\gamma_0\to-\gamma_0` the single-site process maps each sample onto its partner with
        ``z, g`` flipped, so every output of a finite-sample solve is then exactly even in
        :math:`\gamma_0` (as the infinite-sample DMFT is).
    n_pts : int
    u1, rL : arrays, optional
        Explicit static sources ``u1`` (n_pts, S) and ``rL`` (S,) (a network's own initial weights).

    Attributes
    ----------
    eps_u[l] : (n_max, S) for l = 2..L; eps_r[l] : (n_max, S) for l = 1..L-1;
    u1 : (n_pts, S) or None (then coloured from ``eps_u1`` (n_pts, S) by Φ⁰); rL : (S,)
    """

    def __init__(self, n_max, L, n_samples, rng, n_pts, antithetic=False, u1=None, rL=None):
        S = n_samples
        if antithetic and S % 2:
            raise ValueError(f"antithetic sampling needs an even number of samples, got {S}")
        self.S, self.L, self.antithetic = S, L, antithetic

        def draw(rows, flip):
            if not antithetic:
                return rng.standard_normal((rows, S))
            e = np.empty((rows, S))
            e[:, 0::2] = rng.standard_normal((rows, S // 2))
            e[:, 1::2] = -e[:, 0::2] if flip else e[:, 0::2]
            return e

        self.eps_u = [None, None] + [draw(n_max, False) for _ in range(2, L + 1)]
        self.eps_r = [None] + [draw(n_max, True) for _ in range(1, L)]
        self.eps_u1 = None if u1 is not None else draw(n_pts, False)
        self.u1 = None if u1 is None else np.ascontiguousarray(u1, dtype=float)
        self.rL = draw(1, True)[0] if rL is None else np.ascontiguousarray(rL, dtype=float)
        if self.u1 is not None and self.u1.shape != (n_pts, S):
            raise ValueError(f"u1 must have shape {(n_pts, S)}, got {self.u1.shape}")
        if self.rL.shape != (S,):
            raise ValueError(f"rL must have shape {(S,)}, got {self.rL.shape}")
        self.probes = None  # set by the 'probe' response estimator (meanfield_solvers/dmft/responses.py)

    def subset(self, cols: slice) -> "NoiseBank":
        """The same noise restricted to a contiguous block of samples (for batch sub-solves)."""
        out = object.__new__(NoiseBank)
        out.L, out.antithetic = self.L, self.antithetic
        out.eps_u = [None if e is None else e[:, cols] for e in self.eps_u]
        out.eps_r = [None if e is None else e[:, cols] for e in self.eps_r]
        out.eps_u1 = None if self.eps_u1 is None else self.eps_u1[:, cols]
        out.u1 = None if self.u1 is None else self.u1[:, cols]
        out.rL = self.rL[cols]
        out.S = out.rL.shape[0]
        # the probe estimator's directions belong to their samples (meanfield_solvers/dmft/probes.py)
        out.probes = None if self.probes is None else self.probes.subset(cols)
        return out

    def first_layer(self, Phi0, jitter):
        r""":math:`u^1` (n_pts, S), constant in time: given, or :math:`\mathrm{chol}(\Phi^0+\text{jitter})\,\varepsilon`."""
        if self.u1 is not None:
            return self.u1
        return cholesky_factor(Phi0, jitter, "Phi^0 = XX^T/D") @ self.eps_u1

    def coloured(self, kind, l, K, jitter):
        r"""Source of layer ``l`` over the horizon of ``K`` (n, n): ``C @ eps[:n]``, (n, S).

        ``kind='u'``: :math:`u^\ell` with ``K`` = :math:`\Phi^{\ell-1}`;
        ``kind='r'``: :math:`r^\ell` with ``K`` = :math:`G^{\ell+1}`.
        """
        n = K.shape[0]
        eps = (self.eps_u if kind == "u" else self.eps_r)[l][:n]
        name = f"Phi^{l - 1} (covariance of u^{l})" if kind == "u" else f"G^{l + 1} (covariance of r^{l})"
        return cholesky_factor(K, jitter, name) @ eps
