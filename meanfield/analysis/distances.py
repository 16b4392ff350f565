r"""Optimal-transport distances between point clouds (neuron measures).

A width-:math:`N` two-layer network is the empirical measure
:math:`\mu_N = \sum_i a_i \delta_{\theta_i}` of its neurons
:math:`\theta_i \in \mathbb{R}^p` (rows of an array of shape ``(N, p)``,
columns ``[a, w_1..w_d, (b)]``); the mean-field limit is a measure
:math:`\mu_\infty`, represented by a large particle cloud. This module
compares two such clouds with the quadratic Wasserstein distance

.. math::

    W_2(\mu, \nu)^2 = \min_{\pi \in \Pi(\mu, \nu)} \sum_{ij} \pi_{ij}\,|x_i - y_j|^2 ,

computed exactly (:func:`w2_exact`, network simplex via POT, guarded), exactly
in one dimension (:func:`w2_1d`, quantile functions), by random slicing
(:func:`w2_sliced`) or along a known one-to-one coupling
(:func:`coupling_distance`). All functions return a :class:`Distance`; a
problem that is ill-posed or a solve that did not certify optimality gives
``value = nan`` and a ``reason``, never a number.

Sampling floor versus dynamics
------------------------------
Plain :math:`W_2` between an :math:`N`-sample and the limit measure decays
from *sampling alone*: for a measure with a bounded density on a bounded set
in :math:`\mathbb{R}^p`, :math:`\mathbb{E} W_2(\hat\mu_N, \mu) \asymp N^{-1/p}`
for :math:`p \ge 3` (:math:`(\log N / N)^{1/2}` for :math:`p = 2`,
:math:`N^{-1/2}` for :math:`p = 1`). In neuron space (``p = d + 1`` or
``d + 2``) this floor hides the finite-width *dynamical* correction, which is
of order :math:`N^{-1/2}`. The coupled construction isolates it: draw the
finite-width initial neurons as a subsample of the mean-field particles, run
both, and compare each finite-width neuron with the mean-field particle it
started from (:func:`coupling_distance`, an upper bound on :math:`W_2`
between the two clouds) or compute :math:`W_2` between the finite-width cloud
and the *same subsample* of the mean-field cloud. Both then scale like
:math:`N^{-1/2}`. Sliced :math:`W_2` has a dimension-free sampling rate
(:math:`\approx N^{-1/2}` per direction) but is only a lower bound on
:math:`W_2`.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Distance",
    "w2_exact",
    "w2_1d",
    "w2_sliced",
    "coupling_distance",
    "emd_memory_bytes",
]

#: Default memory limit for :func:`w2_exact` (cost matrix + dense plan).
DEFAULT_EMD_MAX_BYTES = 1 << 30
#: Default working-memory budget for one chunk of :func:`w2_sliced`.
DEFAULT_SLICED_MAX_BYTES = 1 << 28


@dataclass(frozen=True)
class Distance:
    """Result of a distance computation.

    Attributes
    ----------
    value : float
        The distance (for ``method='mmd2_*'`` the squared MMD, which the
        unbiased estimator can make negative). ``nan`` when not computed.
    reason : str or None
        Why ``value`` is ``nan``; ``None`` when the value is valid.
    stderr : float
        Standard error of ``value`` when it is a Monte-Carlo estimate
        (sliced directions, MMD jackknife); ``nan`` if not applicable, ``0.0``
        for exact values.
    method : str
        Short name of the estimator.
    info : dict
        Diagnostics (sizes, bandwidth, solver code, marginal errors, ...).
    """

    value: float
    reason: str | None = None
    stderr: float = math.nan
    method: str = ""
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        """True when ``value`` is a valid number."""
        return self.reason is None and math.isfinite(self.value)

    def __float__(self) -> float:
        return float(self.value)


def failed_distance(method: str, reason: str, **info: Any) -> Distance:
    return Distance(math.nan, reason, math.nan, method, dict(info))


# ----------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------

def _cloud(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a float64 array of shape (n, p); raise on bad shape."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n,) or (n, p), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return arr


def cloud_pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _cloud(x, "x"), _cloud(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y live in different dimensions: {x.shape[1]} vs {y.shape[1]}")
    return x, y


def nonfinite_reason(x: np.ndarray, y: np.ndarray) -> str | None:
    for name, arr in (("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            return f"non-finite input: {bad} entries of {name} are nan or inf"
    return None


def _weights(w: Any, n: int, name: str) -> tuple[np.ndarray | None, str | None]:
    """Normalised float64 weights, or ``(None, reason)`` when ill-posed."""
    if w is None:
        return np.full(n, 1.0 / n), None
    arr = np.asarray(w, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"weights {name} must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        return None, f"non-finite weights in {name}"
    if np.any(arr < 0):
        return None, f"negative weights in {name}"
    total = math.fsum(arr.tolist())
    if not total > 0:
        return None, f"weights {name} have zero total mass"
    return arr / total, None


# ----------------------------------------------------------------------------
# exact W2 (network simplex)
# ----------------------------------------------------------------------------

def emd_memory_bytes(n: int, m: int) -> int:
    """Peak memory estimate of :func:`w2_exact` for an ``n x m`` problem.

    The squared-distance cost matrix and the dense transport plan that the
    network simplex returns are both ``float64`` arrays of shape ``(n, m)``:
    ``2 * n * m * 8`` bytes.
    """
    return 2 * int(n) * int(m) * 8


def _sq_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean cost ``C_ij = |x_i - y_j|^2`` of shape (n, m).

    Uses ``cdist`` (explicit differences) rather than the Gram expansion
    ``|x|^2 + |y|^2 - 2 x.y``, which cancels catastrophically for nearby
    points and would make ``W2(x, x)`` come out as ``~1e-8`` instead of 0.
    """
    from scipy.spatial.distance import cdist

    return cdist(x, y, metric="sqeuclidean")


def w2_exact(
    x: Any,
    y: Any,
    a: Any = None,
    b: Any = None,
    *,
    max_bytes: int = DEFAULT_EMD_MAX_BYTES,
    num_iter_max: int = 1_000_000,
    marginal_tol: float = 1e-9,
) -> Distance:
    r"""Exact quadratic Wasserstein distance by network simplex (POT ``emd2``).

    Solves :math:`W_2^2 = \min_{\pi \ge 0,\ \pi 1 = a,\ \pi^\top 1 = b}
    \sum_{ij} \pi_{ij} |x_i - y_j|^2` and returns :math:`W_2`. Cost
    :math:`O(n m\, p)` to build the cost matrix, roughly
    :math:`O(n^2 m)` for the simplex in practice: intended for up to a few
    thousand points per side. For larger clouds use :func:`w2_sliced`.

    The solve is guarded; each failure returns ``nan`` with a ``reason``:

    * non-finite points or cost entries, negative/non-finite/zero-mass weights;
    * estimated memory ``2 n m 8`` bytes (cost + plan) above ``max_bytes``,
      checked *before* anything of size ``n m`` is allocated;
    * the solver not certifying optimality (``result_code != 1`` or a
      ``warning`` in POT's log, e.g. ``num_iter_max`` reached, infeasible);
    * the returned plan having negative or non-finite entries, or marginals
      further than ``marginal_tol`` (max-abs) from ``a`` and ``b``;
    * a non-finite or markedly negative cost.

    Parameters
    ----------
    x : array_like, shape (n, p) or (n,)
        First cloud.
    y : array_like, shape (m, p) or (m,)
        Second cloud.
    a, b : array_like, shape (n,) and (m,), optional
        Non-negative weights; normalised to sum 1 in float64. Uniform if
        omitted.
    max_bytes : int
        Memory limit for the estimate :func:`emd_memory_bytes`.
    num_iter_max : int
        Network-simplex iteration cap.
    marginal_tol : float
        Tolerance on ``max |pi 1 - a|`` and ``max |pi^T 1 - b|``.

    Returns
    -------
    Distance
        ``value = W_2`` (not squared); ``info`` holds ``w2_squared``,
        ``marginal_error``, ``result_code``, ``n``, ``m``, ``bytes``.

    Notes
    -----
    Between an :math:`N`-sample and the limit measure :math:`W_2` does not go
    below the sampling floor :math:`\sim N^{-1/p}` (:math:`p \ge 3`); compare
    coupled clouds to see the :math:`N^{-1/2}` dynamical correction (module
    docstring).

    Raises
    ------
    ValueError
        Malformed shapes (not 1-D/2-D, empty, different dimensions, weights of
        the wrong length). Data problems return ``nan`` instead.
    """
    method = "w2_exact"
    x, y = cloud_pair(x, y)
    n, m = x.shape[0], y.shape[0]
    need = emd_memory_bytes(n, m)
    info: dict[str, Any] = {"n": n, "m": m, "bytes": need}
    reason = nonfinite_reason(x, y)
    if reason:
        return failed_distance(method, reason, **info)
    wa, reason = _weights(a, n, "a")
    if reason:
        return failed_distance(method, reason, **info)
    wb, reason = _weights(b, m, "b")
    if reason:
        return failed_distance(method, reason, **info)
    if need > max_bytes:
        return failed_distance(
            method,
            f"memory: cost matrix + plan need {need} bytes > max_bytes={max_bytes} "
            f"(n={n}, m={m}); use w2_sliced or subsample",
            **info,
        )
    cost = _sq_cost(x, y)
    if not np.all(np.isfinite(cost)):
        return failed_distance(method, "non-finite cost matrix (coordinates overflow when squared)", **info)

    import ot

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            val, log = ot.emd2(
                wa, wb, cost, numItermax=int(num_iter_max), log=True, return_matrix=True
            )
        except Exception as exc:  # solver refused the problem
            return failed_distance(method, f"solver error: {type(exc).__name__}: {exc}", **info)
    code = int(log.get("result_code", -1))
    info["result_code"] = code
    warn = log.get("warning")
    if code != 1 or warn:
        msgs = [str(w.message) for w in caught]
        return failed_distance(
            method,
            f"solver did not converge (result_code={code}): {warn or '; '.join(msgs)}",
            **info,
        )
    plan = np.asarray(log["G"], dtype=np.float64)
    if plan.shape != (n, m) or not np.all(np.isfinite(plan)):
        return failed_distance(method, "transport plan is malformed or non-finite", **info)
    neg = float(plan.min()) if plan.size else 0.0
    err_a = float(np.max(np.abs(plan.sum(axis=1) - wa)))
    err_b = float(np.max(np.abs(plan.sum(axis=0) - wb)))
    info["marginal_error"] = max(err_a, err_b)
    if neg < -marginal_tol:
        return failed_distance(method, f"transport plan has negative mass {neg:.3g}", **info)
    if max(err_a, err_b) > marginal_tol:
        return failed_distance(
            method,
            f"transport plan marginals off by {max(err_a, err_b):.3g} > {marginal_tol:.3g}",
            **info,
        )
    w2sq = float(val)
    scale = float(np.max(cost)) if cost.size else 0.0
    if not math.isfinite(w2sq) or w2sq < -1e-12 * max(scale, 1.0):
        return failed_distance(method, f"invalid transport cost {w2sq!r}", **info)
    w2sq = max(w2sq, 0.0)
    info["w2_squared"] = w2sq
    return Distance(math.sqrt(w2sq), None, 0.0, method, info)


# ----------------------------------------------------------------------------
# exact 1-D W2 via quantile functions
# ----------------------------------------------------------------------------

def _quantile_grid(wa: np.ndarray, wb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Merged breakpoints of two step quantile functions.

    For sorted atoms with weights ``wa`` (n,) and ``wb`` (m,), the quantile
    functions are constant on the intervals between consecutive values of
    ``cumsum(wa)`` resp. ``cumsum(wb)``. On the union of breakpoints
    :math:`0 = t_0 < t_1 < \dots < t_K = 1` both are constant, so

    .. math:: W_2^2 = \sum_k (t_k - t_{k-1})\,(x_{(i_k)} - y_{(j_k)})^2

    exactly, with ``K <= n + m - 1``. Returns ``(i, j, dt)``.
    """
    ca = np.cumsum(wa)
    cb = np.cumsum(wb)
    ca[-1] = 1.0
    cb[-1] = 1.0
    t = np.union1d(ca, cb)
    t = t[t > 0]
    dt = np.diff(t, prepend=0.0)
    keep = dt > 0
    t, dt = t[keep], dt[keep]
    i = np.minimum(np.searchsorted(ca, t, side="left"), ca.size - 1)
    j = np.minimum(np.searchsorted(cb, t, side="left"), cb.size - 1)
    return i, j, dt


def w2_1d(x: Any, y: Any, a: Any = None, b: Any = None) -> Distance:
    r"""Exact :math:`W_2` between two weighted point sets on the real line.

    .. math:: W_2^2(\mu, \nu) = \int_0^1 |F_\mu^{-1}(t) - F_\nu^{-1}(t)|^2\,dt

    evaluated exactly for the step quantile functions of the empirical
    measures by sorting and merging their breakpoints (any sizes and weights;
    equal uniform sizes reduce to ``mean((sort x - sort y)^2)``).
    :math:`O((n + m)\log(n + m))`.

    Parameters
    ----------
    x : array_like, shape (n,) or (n, 1)
    y : array_like, shape (m,) or (m, 1)
    a, b : array_like, shape (n,) and (m,), optional
        Non-negative weights (normalised); uniform if omitted.

    Returns
    -------
    Distance
        ``value = W_2``; ``info['w2_squared']``.
    """
    method = "w2_1d"
    x, y = cloud_pair(x, y)
    if x.shape[1] != 1:
        raise ValueError(f"w2_1d needs 1-D points, got dimension {x.shape[1]}")
    reason = nonfinite_reason(x, y)
    if reason:
        return failed_distance(method, reason)
    xv, yv = x[:, 0], y[:, 0]
    n, m = xv.size, yv.size
    wa, reason = _weights(a, n, "a")
    if reason:
        return failed_distance(method, reason)
    wb, reason = _weights(b, m, "b")
    if reason:
        return failed_distance(method, reason)
    ox, oy = np.argsort(xv, kind="stable"), np.argsort(yv, kind="stable")
    xs, ys = xv[ox], yv[oy]
    if a is None and b is None and n == m:
        w2sq = float(np.mean((xs - ys) ** 2))
    else:
        i, j, dt = _quantile_grid(wa[ox], wb[oy])
        w2sq = float(np.dot(dt, (xs[i] - ys[j]) ** 2))
    if not math.isfinite(w2sq):
        return failed_distance(method, "non-finite result (overflow)")
    return Distance(math.sqrt(w2sq), None, 0.0, method, {"n": n, "m": m, "w2_squared": w2sq})


# ----------------------------------------------------------------------------
# sliced W2
# ----------------------------------------------------------------------------

def _directions(p: int, n_projections: int, seed: Any) -> np.ndarray:
    """Unit vectors uniform on the sphere S^{p-1}, shape (n_projections, p)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    theta = rng.standard_normal((n_projections, p))
    norms = np.linalg.norm(theta, axis=1, keepdims=True)
    # a zero Gaussian vector has probability 0; guard anyway
    norms[norms == 0] = 1.0
    theta /= norms
    return theta


def _sort_rows(arr: np.ndarray, workers: int) -> None:
    if workers <= 1 or arr.shape[0] == 1:
        arr.sort(axis=-1)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:  # np.sort releases the GIL
        list(pool.map(lambda r: r.sort(), list(arr)))


def w2_sliced(
    x: Any,
    y: Any,
    *,
    n_projections: int = 128,
    seed: int | np.random.Generator | None = 0,
    max_bytes: int = DEFAULT_SLICED_MAX_BYTES,
    workers: int = 1,
) -> Distance:
    r"""Sliced quadratic Wasserstein distance (uniform weights).

    .. math::

        SW_2^2(\mu, \nu) = \int_{S^{p-1}} W_2^2(\theta_\# \mu, \theta_\# \nu)\,
        d\sigma(\theta) \approx \frac1L \sum_{l=1}^L W_2^2(\langle \theta_l,
        x\rangle, \langle \theta_l, y\rangle)

    with :math:`L` = ``n_projections`` directions uniform on the sphere, all
    drawn up front from ``seed`` (so the result does not depend on the
    chunking). Projections of a chunk of directions are one GEMM
    ``theta_chunk @ x.T`` of shape ``(c, n)``; each row is sorted and the 1-D
    distances are exact (equal sizes: paired sorted values; unequal sizes: the
    merged quantile grid of :func:`w2_1d`, shared by all directions). The
    chunk size ``c`` keeps ``8 c (n + m + 2K)`` bytes below ``max_bytes``, so
    :math:`10^6` points work in bounded memory. Cost
    :math:`O(L (n + m)(p + \log(n + m)))`.

    :math:`SW_2 \le W_2`; in one dimension :math:`SW_2 = W_2` exactly. Its
    sampling error is dimension-free (:math:`\sim N^{-1/2}` per direction),
    unlike :math:`W_2` (:math:`N^{-1/p}`), see the module docstring.

    Parameters
    ----------
    x : array_like, shape (n, p) or (n,)
    y : array_like, shape (m, p) or (m,)
    n_projections : int
        Number :math:`L` of random directions.
    seed : int, Generator or None
        Source of the directions.
    max_bytes : int
        Working-memory budget for one chunk of projections.
    workers : int
        Threads for sorting (numpy's sort releases the GIL).

    Returns
    -------
    Distance
        ``value = sqrt(mean_l W_2^2(l))``; ``stderr`` is the delta-method
        Monte-Carlo error over directions,
        ``std_l(W_2^2(l)) / (2 sqrt(L) SW_2)``; ``info['per_direction']``
        holds the :math:`L` values :math:`W_2^2(l)`.
    """
    method = "w2_sliced"
    x, y = cloud_pair(x, y)
    n, m, p = x.shape[0], y.shape[0], x.shape[1]
    if n_projections < 1:
        raise ValueError("n_projections must be >= 1")
    reason = nonfinite_reason(x, y)
    if reason:
        return failed_distance(method, reason)
    if p == 1:
        theta = np.ones((1, 1))  # the only direction up to sign: exact 1-D W2
    else:
        theta = _directions(p, int(n_projections), seed)
    L = theta.shape[0]
    equal = n == m
    if equal:
        grid = None
        k = 0
    else:
        grid = _quantile_grid(np.full(n, 1.0 / n), np.full(m, 1.0 / m))
        k = grid[2].size
    per_row = 8 * (n + m + 2 * k)  # projections of x and y, gathered grid values
    chunk = int(max(1, min(L, max_bytes // per_row)))
    out = np.empty(L)
    xt, yt = x.T, y.T
    for start in range(0, L, chunk):
        th = theta[start : start + chunk]
        px = th @ xt  # (c, n), C-contiguous
        py = th @ yt
        _sort_rows(px, workers)
        _sort_rows(py, workers)
        if equal:
            px -= py
            np.square(px, out=px)
            out[start : start + th.shape[0]] = px.mean(axis=1)
            del px
        else:
            i, j, dt = grid
            diff = np.take(px, i, axis=1)
            del px
            diff -= np.take(py, j, axis=1)
            np.square(diff, out=diff)
            out[start : start + th.shape[0]] = diff @ dt
            del diff
        del py
    if not np.all(np.isfinite(out)):
        return failed_distance(method, "non-finite projections (overflow)")
    sw2 = float(out.mean())
    value = math.sqrt(max(sw2, 0.0))
    if L > 1 and value > 0:
        se = float(out.std(ddof=1) / math.sqrt(L) / (2.0 * value))
    else:
        se = 0.0
    info = {"n": n, "m": m, "n_projections": L, "chunk": chunk, "sw2_squared": sw2,
            "per_direction": out}
    return Distance(value, None, se, method, info)


# ----------------------------------------------------------------------------
# distance along a known coupling
# ----------------------------------------------------------------------------

def coupling_distance(x: Any, y: Any, weights: Any = None) -> Distance:
    r"""Transport cost of the identity coupling :math:`x_i \leftrightarrow y_i`.

    .. math:: D(x, y) = \Big(\sum_i w_i |x_i - y_i|^2\Big)^{1/2} \ \ge\ W_2(\mu_x, \mu_y)

    For the coupled construction (finite-width neuron *i* started from
    mean-field particle *i*) this is the natural particle-wise deviation; it
    bounds :math:`W_2` between the two clouds from above and is free of the
    :math:`N^{-1/p}` sampling floor. :math:`O(n p)`.

    Parameters
    ----------
    x, y : array_like, shape (n, p) or (n,)
        Paired clouds (same ``n``).
    weights : array_like, shape (n,), optional
        Non-negative weights (normalised); uniform if omitted.
    """
    method = "coupling"
    x, y = cloud_pair(x, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"coupled clouds need the same size, got {x.shape[0]} and {y.shape[0]}")
    reason = nonfinite_reason(x, y)
    if reason:
        return failed_distance(method, reason)
    w, reason = _weights(weights, x.shape[0], "weights")
    if reason:
        return failed_distance(method, reason)
    d2 = float(w @ np.sum((x - y) ** 2, axis=1))
    if not math.isfinite(d2):
        return failed_distance(method, "non-finite result (overflow)")
    return Distance(math.sqrt(d2), None, 0.0, method, {"n": x.shape[0], "squared": d2})
