r"""Time-grid bookkeeping for two-time objects of the discrete DMFT.

Grid :math:`t_k = k\,dt`, :math:`k = 0..T` (``n_t = T+1`` times) and ``n_pts`` points (train first,
then test). A two-time object (kernel :math:`\Phi^\ell(t_k,t_j)`, response, memory operator) is
stored as one ``(n, n)`` matrix with ``n = n_t * n_pts`` and the vectorised index
``(k, mu) -> k * n_pts + mu`` (docs/dmft.md §3.1), i.e. ``(n_pts, n_pts)`` blocks indexed by times.
Sample-indexed fields are ``(n, S)`` arrays (rows = (time, point), columns = samples).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Grid"]


@dataclass(frozen=True)
class Grid:
    """A horizon of ``n_t`` time points, ``n_pts`` points of which the first ``n_train`` carry loss."""

    n_t: int
    n_pts: int
    n_train: int
    dt: float

    @property
    def n(self) -> int:
        return self.n_t * self.n_pts

    @property
    def T(self) -> int:
        return self.n_t - 1

    @property
    def times(self) -> np.ndarray:
        return self.dt * np.arange(self.n_t)

    def with_steps(self, T: int) -> "Grid":
        return Grid(T + 1, self.n_pts, self.n_train, self.dt)

    def rows(self, k: int) -> slice:
        """Rows of time ``k`` in an ``(n, ...)`` array."""
        return slice(k * self.n_pts, (k + 1) * self.n_pts)

    # ----- block structure -----------------------------------------------------------------
    def strict_mask(self) -> np.ndarray:
        """(n, n) 0/1 matrix with ones on blocks ``(k, j)``, ``j < k`` (strict causality)."""
        return np.kron(np.tri(self.n_t, k=-1), np.ones((self.n_pts, self.n_pts)))

    def loss_row(self, y, f) -> np.ndarray:
        r"""(n,) vector :math:`\Delta_\nu[j]` at index ``(j, nu)``, zero on test points.

        ``y`` (n_train,), ``f`` (n_t, n_pts).
        """
        d = np.zeros((self.n_t, self.n_pts))
        d[:, : self.n_train] = np.asarray(y)[None, :] - f[:, : self.n_train]
        return d.ravel()

    def memory_term(self, kernel, delta_row, coef) -> np.ndarray:
        r"""Strictly causal :math:`\text{coef}\cdot K[k,j]\,\mathrm{diag}(\Delta[j])` for ``j < k``.

        This is the :math:`\gamma_0\,dt/P\;\Phi^{\ell-1}\Delta` part of the memory operator ``H``
        (or the :math:`G^{\ell+1}\Delta` part of ``Z``), docs/dmft.md §3.1.
        """
        return kernel * (coef * delta_row)[None, :] * self.strict_mask()

    # ----- views ---------------------------------------------------------------------------
    def as4(self, M) -> np.ndarray:
        """(n, n) -> (n_t, n_pts, n_t, n_pts) view."""
        return M.reshape(self.n_t, self.n_pts, self.n_t, self.n_pts)

    def equal_time(self, M) -> np.ndarray:
        """(n, n) -> (n_t, n_pts, n_pts): the blocks ``(k, k)``."""
        return np.einsum("kakb->kab", self.as4(M)).copy()

    def constant_in_time(self, K0) -> np.ndarray:
        """(n_pts, n_pts) -> (n, n) kernel equal to ``K0`` for every pair of times."""
        return np.tile(K0, (self.n_t, self.n_t))

    def extend(self, M, new: "Grid", fill: str) -> np.ndarray:
        """Extend a two-time (n, n) matrix of this grid to the longer grid ``new``.

        ``fill='hold'`` clamps the time indices (the values at the old horizon are held constant
        beyond it); ``fill='zero'`` pads with zeros (responses).
        """
        if new.n_pts != self.n_pts or new.n_t < self.n_t:
            raise ValueError("can only extend to a longer horizon with the same points")
        if fill == "zero":
            out = np.zeros((new.n, new.n))
            out[: self.n, : self.n] = M
            return out
        if fill != "hold":
            raise ValueError(f"unknown fill {fill!r}")
        idx = np.minimum(np.arange(new.n_t), self.n_t - 1)
        M4 = self.as4(M)[idx][:, :, idx]
        return np.ascontiguousarray(M4.reshape(new.n, new.n))
