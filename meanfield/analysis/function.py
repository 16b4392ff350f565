r"""Function-space comparison of a width-:math:`N` network with the mean-field limit.

Outputs are stored on a time grid of length ``T`` and ``Q`` test points,
``f[..., t, q] = f(x_q; t)``; leading axes are free (seeds, widths, ...).
The distance is the empirical :math:`L^2(\rho)` norm over test points
:math:`x_q \sim \rho` (or quadrature nodes with weights):

.. math::

    \|f_N(t) - f_\infty(t)\| = \Big(\sum_q \omega_q\,
    \big(f_N(x_q; t) - f_\infty(x_q; t)\big)^2\Big)^{1/2},
    \qquad \sum_q \omega_q = 1 .

Mean-field theory predicts :math:`\mathbb{E}\|f_N - f_\infty\|^2 =
\|\mathbb{E} f_N - f_\infty\|^2 + \mathbb{E}\|f_N - \mathbb{E} f_N\|^2`
with both terms :math:`O(1/N)` (:func:`bias_variance` separates them), hence
:math:`\|f_N - f_\infty\| = O(N^{-1/2})`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["function_distance", "BiasVariance", "bias_variance", "risk_gap"]


def _quad_weights(weights: Any, Q: int) -> np.ndarray:
    if weights is None:
        return np.full(Q, 1.0 / Q)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (Q,):
        raise ValueError(f"weights must have shape ({Q},), got {w.shape}")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError("weights must be finite, non-negative, with positive sum")
    return w / w.sum()


def _check_tq(f_N: np.ndarray, f_inf: np.ndarray) -> None:
    if f_inf.ndim != 2:
        raise ValueError(f"f_inf must have shape (T, Q), got {f_inf.shape}")
    if f_N.ndim < 2 or f_N.shape[-2:] != f_inf.shape:
        raise ValueError(f"f_N must have shape (..., {f_inf.shape[0]}, {f_inf.shape[1]}), got {f_N.shape}")


def function_distance(f_N: Any, f_inf: Any, weights: Any = None) -> np.ndarray:
    r"""RMS distance over test points, :math:`\|f_N(t) - f_\infty(t)\|_{L^2(\omega)}`.

    Parameters
    ----------
    f_N : array_like, shape (..., T, Q)
        Finite-width outputs (any leading axes: seeds, widths).
    f_inf : array_like, shape (T, Q)
        Mean-field outputs on the same grid.
    weights : array_like, shape (Q,), optional
        Quadrature weights :math:`\omega_q` (normalised); uniform if omitted.

    Returns
    -------
    ndarray, shape (..., T)
        ``nan`` where an input is not finite (propagated, never hidden).
    """
    fN = np.asarray(f_N, dtype=np.float64)
    fi = np.asarray(f_inf, dtype=np.float64)
    _check_tq(fN, fi)
    w = _quad_weights(weights, fi.shape[1])
    return np.sqrt(((fN - fi) ** 2) @ w)


@dataclass(frozen=True)
class BiasVariance:
    r"""Seed decomposition of the mean squared function error, per time.

    Attributes
    ----------
    mse : ndarray, shape (T,)
        :math:`\frac1S \sum_s \|f_N^{(s)} - f_\infty\|^2`.
    bias2 : ndarray, shape (T,)
        :math:`\|\bar f_N - f_\infty\|^2` minus its sampling bias
        :math:`\text{variance}/S` (unbiased for :math:`\|\mathbb{E} f_N -
        f_\infty\|^2`; may be slightly negative).
    variance : ndarray, shape (T,)
        :math:`\frac{1}{S-1}\sum_s \|f_N^{(s)} - \bar f_N\|^2` (unbiased for
        :math:`\mathbb{E}\|f_N - \mathbb{E} f_N\|^2`).
    mse_se : ndarray, shape (T,)
        Standard error of ``mse`` over seeds.
    n_seeds : int

    ``mse == bias2 + variance`` holds exactly.
    """

    mse: np.ndarray
    bias2: np.ndarray
    variance: np.ndarray
    mse_se: np.ndarray
    n_seeds: int


def bias_variance(f_N: Any, f_inf: Any, weights: Any = None) -> BiasVariance:
    r"""Split :math:`\mathbb{E}\|f_N - f_\infty\|^2` into bias² and seed variance.

    Parameters
    ----------
    f_N : array_like, shape (S, T, Q)
        One run per seed, ``S >= 2``.
    f_inf : array_like, shape (T, Q)
    weights : array_like, shape (Q,), optional
        Quadrature weights over test points.

    Returns
    -------
    BiasVariance
    """
    fN = np.asarray(f_N, dtype=np.float64)
    fi = np.asarray(f_inf, dtype=np.float64)
    _check_tq(fN, fi)
    if fN.ndim != 3 or fN.shape[0] < 2:
        raise ValueError(f"f_N must have shape (S >= 2, T, Q), got {fN.shape}")
    S = fN.shape[0]
    w = _quad_weights(weights, fi.shape[1])
    per_seed = ((fN - fi) ** 2) @ w  # (S, T)
    mse = per_seed.mean(axis=0)
    fbar = fN.mean(axis=0)
    variance = (((fN - fbar) ** 2) @ w).sum(axis=0) / (S - 1)
    # ||fbar - f_inf||^2 = mse - (S-1)/S * variance exactly; remove the 1/S bias
    bias2 = mse - variance
    return BiasVariance(
        mse=mse,
        bias2=bias2,
        variance=variance,
        mse_se=per_seed.std(axis=0, ddof=1) / np.sqrt(S),
        n_seeds=S,
    )


def risk_gap(risk_N: Any, risk_inf: Any, *, relative: bool = False) -> np.ndarray:
    r"""Risk gap :math:`R_N(t) - R_\infty(t)` (or relative to :math:`R_\infty`).

    Parameters
    ----------
    risk_N : array_like, shape (..., T)
        Finite-width risk curves (leading axes: seeds, widths).
    risk_inf : array_like, shape (T,)
        Mean-field risk on the same time grid.
    relative : bool
        Return :math:`(R_N - R_\infty)/R_\infty` instead.

    Returns
    -------
    ndarray, shape (..., T)

    Notes
    -----
    Use :func:`meanfield.analysis.seed_stats` on the result for the
    mean gap and its standard error; the expected gap is :math:`O(1/N)`
    (the risk is quadratic in :math:`f_N - f_\infty`) while single-seed
    gaps fluctuate at :math:`O(N^{-1/2})`.
    """
    rN = np.asarray(risk_N, dtype=np.float64)
    ri = np.asarray(risk_inf, dtype=np.float64)
    if ri.ndim != 1 or rN.shape[-1:] != ri.shape:
        raise ValueError(f"risk_N must end with the time axis of risk_inf {ri.shape}, got {rN.shape}")
    gap = rN - ri
    return gap / ri if relative else gap
