r"""Power-law fits :math:`y = A x^{s}` by least squares in log–log coordinates.

Used for every scaling claim in the project: variance across seeds against
width (:math:`s = -\gamma`, mean-field predicts :math:`\gamma = 1`), distances
against width (:math:`N^{-1/2}` coupled, :math:`N^{-1/p}` sampling floor),
errors against step size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PowerLawFit", "fit_power_law"]


@dataclass(frozen=True)
class PowerLawFit:
    r"""Result of :func:`fit_power_law`: :math:`\log y = c + s \log x`.

    Fields are floats for a single fit, arrays of shape ``batch`` when ``y``
    had trailing batch axes.

    Attributes
    ----------
    slope, intercept : float or ndarray
        :math:`s` and :math:`c` (so :math:`A = e^{c}`).
    slope_se, intercept_se : float or ndarray
        Standard errors.
    cov : ndarray, shape (..., 2, 2)
        Covariance of ``(slope, intercept)``.
    dof : int
        Residual degrees of freedom ``K - 2``.
    chi2 : float or ndarray
        Weighted residual sum of squares (a goodness-of-fit statistic when
        ``yerr`` was given: compare with ``dof``).
    absolute_sigma : bool
        True when the errors come from ``yerr`` as given (normal intervals),
        False when they are estimated from the residual scatter (Student-t
        intervals with ``dof`` degrees of freedom).
    """

    slope: Any
    intercept: Any
    slope_se: Any
    intercept_se: Any
    cov: np.ndarray
    dof: int
    chi2: Any
    absolute_sigma: bool

    @property
    def prefactor(self) -> Any:
        """:math:`A = e^{c}`."""
        return np.exp(self.intercept)

    def _quantile(self, level: float) -> float:
        from scipy import stats

        q = 0.5 + level / 2.0
        if self.absolute_sigma:
            return float(stats.norm.ppf(q))
        return float(stats.t.ppf(q, self.dof))

    def slope_interval(self, level: float = 0.95) -> tuple[Any, Any]:
        """Two-sided confidence interval for the slope."""
        q = self._quantile(level)
        return self.slope - q * self.slope_se, self.slope + q * self.slope_se

    def predict(self, x: Any) -> Any:
        """:math:`A x^{s}` at ``x`` (single fit only)."""
        return np.exp(self.intercept + self.slope * np.log(np.asarray(x, dtype=float)))


def fit_power_law(x: Any, y: Any, yerr: Any = None, *, absolute_sigma: bool | None = None) -> PowerLawFit:
    r"""Fit :math:`y \approx A x^{s}` by (weighted) linear least squares in log–log.

    With :math:`u_k = \log x_k`, :math:`v_k = \log y_k` and weights
    :math:`w_k`, minimise :math:`\sum_k w_k (v_k - c - s u_k)^2`. Closed form:

    .. math::

        s = \frac{S_w S_{wuv} - S_{wu} S_{wv}}{\Delta},\quad
        c = \frac{S_{wuu} S_{wv} - S_{wu} S_{wuv}}{\Delta},\quad
        \Delta = S_w S_{wuu} - S_{wu}^2,

    covariance :math:`\sigma^2 \begin{pmatrix} S_w & -S_{wu} \\ -S_{wu} &
    S_{wuu}\end{pmatrix} / \Delta` for ``(s, c)``.

    * ``yerr is None``: :math:`w_k = 1`, :math:`\sigma^2` = residual variance
      with ``K - 2`` degrees of freedom (needs ``K >= 3``); use Student-t
      intervals (:meth:`PowerLawFit.slope_interval`).
    * ``yerr`` given: the error of :math:`\log y` is :math:`\delta_k =
      \mathrm{yerr}_k / y_k` (delta method, valid for small relative errors),
      :math:`w_k = 1/\delta_k^2` and :math:`\sigma^2 = 1` (``absolute_sigma``,
      default) or :math:`\chi^2/(K-2)` if ``absolute_sigma=False``.

    Parameters
    ----------
    x : array_like, shape (K,)
        Positive abscissae (e.g. widths :math:`N`).
    y : array_like, shape (K,) or (K, *batch)
        Positive ordinates; trailing axes are independent fits (e.g. one per
        time point), done in one vectorised pass.
    yerr : array_like, broadcastable to ``y``, optional
        Standard errors of ``y`` (not of ``log y``).
    absolute_sigma : bool, optional
        See above; defaults to ``yerr is not None``.

    Returns
    -------
    PowerLawFit

    Raises
    ------
    ValueError
        Non-positive or non-finite ``x``/``y``/``yerr``, fewer than 2 points
        (3 without ``yerr``), or all ``x`` equal.
    """
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {xa.shape}")
    K = xa.shape[0]
    if ya.shape[:1] != (K,):
        raise ValueError(f"y must have leading length {K}, got shape {ya.shape}")
    if not (np.all(np.isfinite(xa)) and np.all(xa > 0)):
        raise ValueError("x must be finite and positive for a log-log fit")
    if not (np.all(np.isfinite(ya)) and np.all(ya > 0)):
        raise ValueError("y must be finite and positive for a log-log fit")
    if absolute_sigma is None:
        absolute_sigma = yerr is not None
    if K < (2 if (yerr is not None and absolute_sigma) else 3):
        raise ValueError(f"too few points ({K}) for a fit with error estimate")
    u = np.log(xa).reshape((K,) + (1,) * (ya.ndim - 1))
    v = np.log(ya)
    if yerr is None:
        w = np.ones_like(v)
    else:
        e = np.broadcast_to(np.asarray(yerr, dtype=np.float64), ya.shape)
        if not (np.all(np.isfinite(e)) and np.all(e > 0)):
            raise ValueError("yerr must be finite and positive")
        w = (ya / e) ** 2
    # centre u for numerical stability (does not change the slope)
    sw = w.sum(axis=0)
    ubar = (w * u).sum(axis=0) / sw
    uc = u - ubar
    suu = (w * uc * uc).sum(axis=0)
    if np.any(suu <= 0):
        raise ValueError("x values are all equal: slope undefined")
    slope = (w * uc * v).sum(axis=0) / suu
    vbar = (w * v).sum(axis=0) / sw
    intercept = vbar - slope * ubar
    resid = v - intercept - slope * u
    chi2 = (w * resid**2).sum(axis=0)
    dof = K - 2
    if absolute_sigma:
        s2 = np.ones_like(chi2)
    else:
        if dof < 1:
            raise ValueError("need at least 3 points to estimate the scatter")
        s2 = chi2 / dof
    var_s = s2 / suu
    var_c = s2 * (1.0 / sw + ubar**2 / suu)
    cov_sc = -s2 * ubar / suu
    cov = np.stack([np.stack([var_s, cov_sc], -1), np.stack([cov_sc, var_c], -1)], -2)

    def out(a: np.ndarray) -> Any:
        return float(a) if np.ndim(a) == 0 else a

    return PowerLawFit(
        slope=out(slope),
        intercept=out(intercept),
        slope_se=out(np.sqrt(var_s)),
        intercept_se=out(np.sqrt(var_c)),
        cov=cov,
        dof=dof,
        chi2=out(chi2),
        absolute_sigma=bool(absolute_sigma),
    )

