r"""Discrepancy decomposition along the chain of approximations.

The gap between the mean-field prediction and what a practitioner trains is
split into links of a chain, each removing one idealisation:

.. math::

    \underbrace{\text{mean-field flow}}_{c_0}
    \to \underbrace{\text{population GD, width } N}_{c_1}
    \to \underbrace{\text{online SGD, width } N}_{c_2}
    \to \underbrace{\text{multi-pass SGD on } P \text{ samples}}_{c_3}.

Each stage :math:`k` gives a curve :math:`c_k(t)` (risk, function distance,
...), one per seed (shape ``(S, T)``) or deterministic (shape ``(T,)``).
A *linear* functional :math:`\ell(c) = \sum_t \lambda_t c(t)` of the
seed-mean curve (final value, time average, any weights) makes the
contributions telescope exactly:

.. math::

    \ell(\bar c_K) - \ell(\bar c_0) = \sum_{k=1}^{K} \Delta_k, \qquad
    \Delta_k = \ell(\bar c_k) - \ell(\bar c_{k-1}).

Seed standard errors: when two stages have the same number of seeds the
error of :math:`\Delta_k` is computed from per-seed differences (paired);
this is valid whether or not the runs share seeds, and much smaller when
they do (coupled initialisation, shared minibatch noise). Otherwise the
stage errors are combined as independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["DEFAULT_STAGES", "Decomposition", "decompose"]

DEFAULT_STAGES = (
    "mean-field flow",
    "population GD (N)",
    "online SGD (N)",
    "multi-pass SGD (P)",
)


@dataclass(frozen=True)
class Decomposition:
    """Per-link contributions to the final gap.

    Attributes
    ----------
    stages : tuple of str, length K + 1
    values, values_se : ndarray, shape (K + 1,)
        :math:`\\ell(\\bar c_k)` and its seed standard error (0 for a
        deterministic curve).
    links : tuple of str, length K
        ``"stage[k-1] -> stage[k]"``.
    contributions, contributions_se : ndarray, shape (K,)
        :math:`\\Delta_k` and its standard error.
    total, total_se : float
        :math:`\\ell(\\bar c_K) - \\ell(\\bar c_0)` (equals the sum of the
        contributions) and its standard error.
    paired : ndarray of bool, shape (K,)
        Whether each link's error came from per-seed differences.
    """

    stages: tuple[str, ...]
    values: np.ndarray
    values_se: np.ndarray
    links: tuple[str, ...]
    contributions: np.ndarray
    contributions_se: np.ndarray
    total: float
    total_se: float
    paired: np.ndarray

    @property
    def fractions(self) -> np.ndarray:
        """Contributions divided by the total gap (``nan`` if the total is 0)."""
        if self.total == 0:
            return np.full_like(self.contributions, np.nan)
        return self.contributions / self.total

    def table(self) -> str:
        """Plain-text table of the links (for logs and notebooks)."""
        width = max(len(s) for s in self.links + ("total",))
        rows = [f"{'link':<{width}}  {'contribution':>14}  {'stderr':>10}  {'fraction':>8}"]
        for name, c, se, fr in zip(self.links, self.contributions, self.contributions_se, self.fractions):
            rows.append(f"{name:<{width}}  {c:>14.6g}  {se:>10.3g}  {fr:>8.3f}")
        rows.append(f"{'total':<{width}}  {self.total:>14.6g}  {self.total_se:>10.3g}  {1.0:>8.3f}")
        return "\n".join(rows)


def _functional(metric: str | Any, T: int) -> np.ndarray:
    if isinstance(metric, str):
        lam = np.zeros(T)
        if metric == "final":
            lam[-1] = 1.0
        elif metric == "mean":
            lam[:] = 1.0 / T
        else:
            raise ValueError(f"metric must be 'final', 'mean' or a weight vector, got {metric!r}")
        return lam
    lam = np.asarray(metric, dtype=np.float64)
    if lam.shape != (T,) or not np.all(np.isfinite(lam)):
        raise ValueError(f"metric weights must be a finite array of shape ({T},)")
    return lam


def _per_seed(curve: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Functional of each seed's curve: shape (S,) (S = 1 for deterministic)."""
    return np.atleast_2d(curve) @ lam


def _diff_se(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    """Standard error of mean(b) - mean(a) from per-seed functionals."""
    if a.size == 1 and b.size == 1:
        return 0.0, False
    if a.size == b.size:
        d = b - a
        return float(d.std(ddof=1) / math.sqrt(d.size)), True
    se2 = sum(v.var(ddof=1) / v.size for v in (a, b) if v.size > 1)
    return math.sqrt(se2), False


def decompose(
    curves: Sequence[Any],
    *,
    stages: Sequence[str] | None = None,
    metric: str | Any = "final",
) -> Decomposition:
    r"""Contribution of each link of the approximation chain to the final gap.

    Parameters
    ----------
    curves : sequence of K + 1 arrays, each shape (S_k, T) or (T,)
        Stage curves on a common time grid, ordered along the chain
        (default: mean-field flow, population GD at width N, online SGD at
        width N, multi-pass SGD on P samples). A 1-D curve is deterministic
        (e.g. the mean-field flow); ``S_k >= 2`` otherwise.
    stages : sequence of str, optional
        Stage names; :data:`DEFAULT_STAGES` when there are four curves,
        ``stage0, stage1, ...`` otherwise.
    metric : 'final', 'mean' or array_like of shape (T,)
        The linear functional :math:`\ell`: value at the last time, time
        average over the grid, or explicit weights :math:`\lambda_t` (e.g. a
        window average, or trapezoid weights for :math:`\int c\,dt`).

    Returns
    -------
    Decomposition

    Notes
    -----
    Non-linear metrics (sup-norm or RMS of the difference curves) do not
    telescope; apply them to ``curves[k] - curves[k-1]`` directly if needed.
    """
    arrs = [np.asarray(c, dtype=np.float64) for c in curves]
    if len(arrs) < 2:
        raise ValueError("need at least two stages")
    T = arrs[0].shape[-1]
    for k, a in enumerate(arrs):
        if a.ndim not in (1, 2) or a.shape[-1] != T:
            raise ValueError(f"curve {k} must have shape (S, {T}) or ({T},), got {a.shape}")
        if a.ndim == 2 and a.shape[0] < 2:
            raise ValueError(f"curve {k} has a single seed: pass it as shape ({T},) if deterministic")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"curve {k} contains non-finite values")
    if stages is None:
        stages = DEFAULT_STAGES if len(arrs) == len(DEFAULT_STAGES) else tuple(
            f"stage{k}" for k in range(len(arrs)))
    stages = tuple(stages)
    if len(stages) != len(arrs):
        raise ValueError(f"{len(stages)} stage names for {len(arrs)} curves")
    lam = _functional(metric, T)
    per = [_per_seed(a, lam) for a in arrs]
    values = np.array([p.mean() for p in per])
    values_se = np.array([p.std(ddof=1) / math.sqrt(p.size) if p.size > 1 else 0.0 for p in per])
    contrib, contrib_se, paired = [], [], []
    for k in range(1, len(per)):
        se, pr = _diff_se(per[k - 1], per[k])
        contrib.append(values[k] - values[k - 1])
        contrib_se.append(se)
        paired.append(pr)
    total_se, _ = _diff_se(per[0], per[-1])
    return Decomposition(
        stages=stages,
        values=values,
        values_se=values_se,
        links=tuple(f"{stages[k - 1]} -> {stages[k]}" for k in range(1, len(stages))),
        contributions=np.array(contrib),
        contributions_se=np.array(contrib_se),
        total=float(values[-1] - values[0]),
        total_se=float(total_se),
        paired=np.array(paired),
    )
