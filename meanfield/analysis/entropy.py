r"""Differential entropy of a particle cloud: the Kozachenko–Leonenko estimator.

Mean-field Langevin dynamics (README, ``[dynamics]``) decreases the free energy
:math:`F(\mu) = E(\mu) - \tau H(\mu)` with :math:`H(\mu) = -\int f \log f` the differential
entropy of the density :math:`f` of :math:`\mu` on :math:`\mathbb{R}^p`. A particle cloud
:math:`\theta_1..\theta_n` does not carry :math:`f`; :func:`knn_entropy` estimates :math:`H` from
the distances to nearest neighbours (Kozachenko & Leonenko 1987):

.. math::

    \hat H = \psi(n) - \psi(k) + \log V_p + \frac{p}{n}\sum_{i=1}^n \log \varepsilon_i ,

:math:`\varepsilon_i` the Euclidean distance from :math:`\theta_i` to its :math:`k`-th nearest
other particle, :math:`V_p = \pi^{p/2}/\Gamma(p/2+1)` the volume of the Euclidean unit ball and
:math:`\psi` the digamma function (derivation in :func:`knn_entropy`). It is consistent for any
fixed :math:`k` (bounded, smooth enough densities), costs :math:`O(n \log n)` with a kd-tree,
and needs no bandwidth. Results follow :mod:`~meanfield.analysis.distances`: a cloud the
estimator cannot vouch for gives ``value = nan`` and a ``reason`` (non-finite coordinates,
:math:`n \le k`, duplicate particles, a constant coordinate or a cloud on an affine subspace,
bad masses), never a number; nothing is jittered.

Whitening
---------
By default (``whiten=True``) the cloud is first mapped to :math:`z = L^{-1}(\theta - \bar\theta)`,
:math:`LL^\top` its sample covariance, and :math:`\hat H(\theta) = \hat H(z) + \log|\det L|`.
The entropy identity :math:`H(A\theta + b) = H(\theta) + \log|\det A|` is exact for any fixed
map, so this changes only the estimator's bias, and it makes the estimator exactly affine
equivariant (two clouds related by :math:`A, b` give results that differ by
:math:`\log|\det A|` to rounding: their whitened clouds differ by a rotation, which preserves
Euclidean distances). Without whitening the Euclidean balls ignore the units of the coordinates
(in a two-layer network :math:`a` is :math:`O(1)`, :math:`w` is :math:`O(d^{-1/2})`), and the bias
explodes: correlated Gaussian below, n = 10^4, error +0.05 (p = 3), +1.24 (p = 6), +4.0 (p = 10)
raw against -0.02, -0.06, -0.01 whitened. Whitening is a global linear map; it is not the best
metric for a multimodal cloud whose *modes* are round, since it squeezes the direction that
separates them: on the two-mode mixture below, n = 10^4, p = 10, +0.22 whitened against +0.02
raw (p <= 6: both within 0.075). ``whiten=False`` is there for clouds known to be isotropic
mode by mode.

Measured bias (k = 3, whitened)
-------------------------------
What was measured (``benchmarks/entropy_bias.py``; deterministic in its seeds, no timings, so it
reproduces on any machine): the error :math:`\hat H - H` of the estimator as shipped over
independent clouds (``numpy.random.default_rng([family, p, n, seed])``; 200, 100, 60, 30, 20
clouds at n = 100, 300, 1000, 3000, 10^4), for three families with a known entropy:

* **gauss** — :math:`N(0, \Sigma)`, :math:`\Sigma = DCD`, :math:`C_{ij} = 0.6^{|i-j|}`, scales
  :math:`D` log-spaced over [0.1, 10]; :math:`H = \tfrac12\log\det(2\pi e\Sigma)`;
* **uniform** — on a box with sides log-spaced over [0.5, 4]; :math:`H = \sum\log L_j`;
* **mixture** — :math:`\tfrac12 N(-3e_1, I) + \tfrac12 N(3e_1, I)` (modes 6 sd apart);
  :math:`H = H_1 + \tfrac{p-1}2\log(2\pi e)`, :math:`H_1 = 2.1082365` by adaptive quadrature.

Entries: mean error in nats (seed standard deviation of one estimate). The Monte Carlo error of
a mean is sd/sqrt(clouds) (e.g. 0.108/sqrt(200) = 0.008 at n = 100)::

    gauss      n = 100          300             1000            3000            10^4
      p =  1   -0.018 (0.109)  -0.000 (0.057)  -0.004 (0.035)  +0.001 (0.019)  -0.004 (0.010)
           2   -0.073 (0.123)  -0.032 (0.065)  -0.017 (0.038)  -0.016 (0.022)  -0.004 (0.011)
           3   -0.081 (0.146)  -0.054 (0.083)  -0.037 (0.044)  -0.019 (0.026)  -0.018 (0.013)
           4   -0.088 (0.191)  -0.074 (0.094)  -0.065 (0.055)  -0.046 (0.027)  -0.034 (0.012)
           5   -0.066 (0.184)  -0.071 (0.096)  -0.072 (0.056)  -0.058 (0.032)  -0.059 (0.018)
           6   +0.006 (0.186)  -0.070 (0.112)  -0.069 (0.053)  -0.074 (0.033)  -0.062 (0.010)
           7   +0.051 (0.220)  -0.004 (0.120)  -0.041 (0.060)  -0.065 (0.032)  -0.058 (0.021)
           8   +0.143 (0.223)  +0.068 (0.118)  -0.025 (0.064)  -0.037 (0.051)  -0.065 (0.025)
          10   +0.365 (0.252)  +0.192 (0.139)  +0.088 (0.071)  +0.044 (0.038)  -0.007 (0.019)
    uniform
      p =  1   +0.021 (0.075)  +0.009 (0.039)  +0.002 (0.024)  -0.001 (0.015)  +0.002 (0.008)
           2   +0.115 (0.081)  +0.061 (0.055)  +0.038 (0.029)  +0.019 (0.016)  +0.009 (0.008)
           3   +0.304 (0.097)  +0.206 (0.055)  +0.136 (0.026)  +0.088 (0.015)  +0.061 (0.007)
           4   +0.530 (0.104)  +0.393 (0.060)  +0.282 (0.033)  +0.203 (0.015)  +0.155 (0.009)
           5   +0.808 (0.117)  +0.616 (0.067)  +0.472 (0.035)  +0.374 (0.021)  +0.290 (0.009)
           6   +1.099 (0.130)  +0.871 (0.076)  +0.689 (0.034)  +0.570 (0.020)  +0.450 (0.007)
           7   +1.382 (0.149)  +1.153 (0.068)  +0.938 (0.041)  +0.780 (0.015)  +0.646 (0.009)
           8   +1.698 (0.170)  +1.437 (0.079)  +1.207 (0.044)  +1.010 (0.023)  +0.857 (0.007)
          10   +2.320 (0.177)  +2.042 (0.097)  +1.770 (0.051)  +1.538 (0.024)  +1.338 (0.017)
    mixture
      p =  1   -0.006 (0.096)  -0.008 (0.065)  +0.004 (0.033)  +0.002 (0.013)  +0.002 (0.007)
           2   -0.046 (0.129)  -0.039 (0.077)  -0.021 (0.043)  -0.007 (0.024)  -0.007 (0.014)
           3   +0.015 (0.143)  -0.026 (0.092)  -0.043 (0.052)  -0.026 (0.025)  -0.016 (0.012)
           4   +0.138 (0.151)  +0.051 (0.095)  -0.028 (0.056)  -0.037 (0.024)  -0.035 (0.015)
           5   +0.251 (0.178)  +0.107 (0.097)  +0.039 (0.052)  -0.009 (0.033)  -0.022 (0.017)
           6   +0.365 (0.185)  +0.211 (0.115)  +0.107 (0.053)  +0.039 (0.034)  -0.007 (0.019)
           7   +0.492 (0.198)  +0.318 (0.114)  +0.162 (0.062)  +0.092 (0.035)  +0.041 (0.016)
           8   +0.571 (0.221)  +0.431 (0.115)  +0.255 (0.063)  +0.166 (0.043)  +0.083 (0.020)
          10   +0.833 (0.238)  +0.624 (0.138)  +0.446 (0.079)  +0.317 (0.044)  +0.220 (0.026)

Reading it:

* **Smooth densities, p <= 3:** the bias is below 0.09 nats at every n and shrinks with n
  (p = 3 Gaussian: -0.081 at n = 100 to -0.018 at 10^4); the error of one estimate is dominated
  by its spread, about :math:`1.1/\sqrt n` (p = 1) to :math:`1.4/\sqrt n` (p = 3).
* **Smooth densities, p = 4..10:** two biases of opposite sign compete — the tails and the
  spread-out modes push the estimate up at small n (+0.37 Gaussian, +0.83 mixture at p = 10,
  n = 100), the curvature of the density inside the neighbour balls pulls it down; the Gaussian
  settles on a plateau near -0.06 for p = 4..8 that has not visibly shrunk by n = 10^4, and the
  mixture at p = 10 still carries +0.22 at 10^4. Relative to the entropy scale (below) these are
  small: -0.06 nats in p = 6 is a 1 % error on each coordinate's length scale.
* **Sharp edges (uniform):** the neighbour balls of particles near the boundary stick out of the
  support, the density looks lower and the estimate is biased *up*, slowly decaying
  (:math:`\sim n^{-1/p}`): +0.06 at p = 3 and +0.45 at p = 6 for n = 10^4. Gibbs measures of
  mean-field Langevin with weight decay have smooth positive densities with Gaussian tails, so
  this is a worst case for the product, not its typical case.
* Not measured: heavy tails, densities concentrated near a curved lower-dimensional set (a low
  temperature Gibbs measure on a ring of teacher neurons, say). Both bias the estimate; the
  degeneracy guard only catches *affine* subspaces.

**Standard error.** ``stderr`` is the plug-in :math:`\mathrm{sd}(T_i)/\sqrt n` of the
per-particle terms :math:`T_i = -\log\hat f(\theta_i)`. The terms of neighbours are dependent, and
against the seed spread above it is 0.63-0.96 of it (median 0.74-0.81) for n <= 1000 and 0.61-1.71
(median 0.86-0.90) for n = 3000..10^4 (all families, p = 1..8, 10): an estimate of the random error to within a factor 1.7,
typically about 20 % low. It does not include the bias.

Choice of k
-----------
The same study at k = 1, 3, 5, 10 (``benchmarks/entropy_bias.py --table``): a larger k lowers
the spread (the per-particle noise :math:`\psi'(k)` falls from 1.64 at k = 1 to 0.39 at k = 3)
but widens the neighbour balls and so the bias; k = 1 has the smallest bias but the largest
spread. Measured as root-mean-square error over the smooth families, relative to the tolerance of
the rule below and averaged over p = 1..8, 10 and all n: 0.63 (k = 1), **0.58 (k = 3)**,
0.63 (k = 5), 0.75 (k = 10); the worst case over p at n = 100 is 3.3, **2.3**, 2.1, 2.5, and
k = 3 reaches the tolerance at the smallest n overall. Hence :data:`DEFAULT_K` = 3.

Reliability rule
----------------
Tolerance: :math:`|{\hat H} - H| \le p \log 1.05 = 0.0488\,p` nats, i.e. the estimate is the
exact entropy of the cloud with each coordinate's length scale off by at most 5 % (an error
:math:`\delta H` is a factor :math:`e^{\delta H/p}` on every length; this scale is unit free,
unlike a fraction of :math:`H`, which can be 0 or negative). :func:`entropy_reliable` says yes
when at the measured sizes from n on, for every family, the typical error of one estimate,
:math:`\sqrt{\mathrm{bias}^2 + \mathrm{sd}^2}`, plus twice the Monte Carlo error of the
measured bias, is within the tolerance. Smallest such n for k = 3 (p = 9 not measured: the larger
of its neighbours)::

    p                  1     2     3     4     5     6     7     8    (9)   10
    smooth (default)   1000  1000  300   300   300   300   1000  1000  1000  1000
    sharp edges        1000  1000  1000  10^4  —     —     —     —     —     —

(— : not within the tolerance at any measured n <= 10^4). Beyond the measured range the rule
says no: p > 10, or k other than 1, 3, 5, 10 (their own tables are encoded from the same study).
For n > 10^4 it extrapolates the trend of the table (errors decreasing in n). For weighted
clouds pass :math:`n_\mathrm{eff} = 1/\sum m_i^2` (``info['n_eff']``), which is <= n.

Weighted particles
------------------
With masses :math:`m_i` (Wasserstein–Fisher–Rao) the measure is :math:`\mu = \sum_i m_i
\delta_{\theta_i}`, :math:`\sum m_i = 1`. If the positions have density :math:`g` and the masses
are a smooth function of position, :math:`m_i = w(\theta_i)/n` (the deterministic WFR flow:
masses and positions are both functions of a particle's initial position), then :math:`\mu` has
density :math:`f = g\,w` and

.. math::

    H(\mu) = -\int g\,w\log(g\,w) \approx -\sum_i m_i\,[\log\hat g(\theta_i) + \log(n m_i)],

with :math:`\hat g` the Kozachenko–Leonenko density of the positions (the per-particle term of the
formula above; whitening uses the positions' covariance). Uniform masses give back the
unweighted estimator exactly; zero masses shape :math:`\hat g` but carry no weight. This is the self-normalised importance-weighting of the
per-particle terms, tested on importance weights from :math:`N(0, I)` to a shifted, narrower
Gaussian. Its noise grows as :math:`n_\mathrm{eff}` falls. When masses are *not* a function of
position (noise together with a reaction term: two particles at the same place can carry
different masses) the term :math:`\log(n m_i)` averages the log of a noisy weight and the
estimate is biased down by Jensen's inequality; the estimator cannot detect this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .distances import Distance

__all__ = [
    "DEFAULT_K",
    "Entropy",
    "EntropyBatch",
    "knn_entropy",
    "entropy_reliable",
    "log_unit_ball_volume",
    "RELIABLE_MIN_N",
    "RELIABLE_TOL_PER_DIM",
]

#: Default neighbour rank of :func:`knn_entropy` (see the module docstring).
DEFAULT_K = 3


@dataclass(frozen=True)
class Entropy(Distance):
    """Result of an entropy estimate (one cloud): the fields of :class:`~.distances.Distance`.

    Attributes
    ----------
    value : float
        The estimated differential entropy in nats; ``nan`` when refused.
    reason : str or None
        Why ``value`` is ``nan``; ``None`` when the value is valid.
    stderr : float
        Plug-in standard error of ``value`` (spread of the per-particle terms
        over :math:`\\sqrt{n_\\mathrm{eff}}`; calibrated in the module docstring).
        It covers the sampling noise only, not the bias.
    method : str
        Short name of the estimator.
    info : dict
        Diagnostics: ``n``, ``p``, ``k``, ``n_eff``, ``whiten``, ``log_det_whitening``.
    """


@dataclass(frozen=True)
class EntropyBatch:
    """Estimates for a batch of clouds (input of shape ``(..., n, p)``).

    ``values``, ``stderrs`` (float) and ``reasons`` (object: ``None`` or a
    string) have the batch shape ``(...)``; ``items`` holds the individual
    :class:`Entropy` results in C order, and ``batch[idx]`` returns one.
    """

    values: np.ndarray
    stderrs: np.ndarray
    reasons: np.ndarray
    items: tuple[Entropy, ...] = field(compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ok(self) -> np.ndarray:
        """Boolean array: where the value is valid."""
        return np.vectorize(lambda r: r is None, otypes=[bool])(self.reasons) & np.isfinite(self.values)

    def __getitem__(self, idx: Any) -> Entropy:
        flat = np.ravel_multi_index(idx if isinstance(idx, tuple) else (idx,), self.shape)
        return self.items[int(flat)]


def _failed(reason: str, **info: Any) -> Entropy:
    return Entropy(math.nan, reason, math.nan, "knn_kl", dict(info))


def log_unit_ball_volume(p: int) -> float:
    r""":math:`\log V_p`, :math:`V_p = \pi^{p/2} / \Gamma(p/2 + 1)` (Euclidean unit ball)."""
    return 0.5 * p * math.log(math.pi) - math.lgamma(0.5 * p + 1.0)


def _masses(w: Any, n: int) -> tuple[np.ndarray | None, str | None]:
    """Normalised particle masses, or ``(None, reason)`` when ill-posed."""
    arr = np.asarray(w, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) (one mass per particle), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        return None, f"non-finite weights: {int(np.count_nonzero(~np.isfinite(arr)))} entries are nan or inf"
    if np.any(arr < 0):
        return None, f"negative weights: {int(np.count_nonzero(arr < 0))} entries < 0"
    total = math.fsum(arr.tolist())
    if not total > 0:
        return None, "weights have zero total mass"
    return arr / total, None


def _whitening(x: np.ndarray, cond_max: float) -> tuple[np.ndarray | None, float, str | None]:
    """``(z, log|det L|, None)`` with ``z = L^{-1}(x - mean)``, ``S = L L^T``; or a reason.

    Refuses a cloud with a constant coordinate or a correlation matrix of condition number above
    ``cond_max`` (a cloud on or near an affine subspace has no differential entropy in R^p).
    """
    n, p = x.shape
    if n <= p:
        return None, math.nan, (
            f"need more particles than dimensions: n = {n} <= p = {p} points span at most an "
            f"({n - 1})-dimensional affine subspace of R^{p}"
        )
    xc = x - x.mean(axis=0)
    with np.errstate(over="ignore"):
        sd = np.sqrt(np.einsum("ij,ij->j", xc, xc) / (n - 1))
    if not np.all(np.isfinite(sd)):
        return None, math.nan, "coordinates too large: their squares overflow float64"
    # constant to rounding: the spread is at the level of the rounding of the values themselves
    # (x_j - mean_j of a constant column is ~1e-17, not 0, and would be scaled up to unit spread)
    scale = np.max(np.abs(x), axis=0)
    const = np.flatnonzero(~(sd > 1e3 * np.finfo(np.float64).eps * scale))
    if const.size:
        return None, math.nan, (
            f"coordinate(s) {const.tolist()} are constant: the cloud is singular in R^{p} and has no "
            "differential entropy (pass only the coordinates that move, e.g. drop frozen ones)"
        )
    # scale first so that the conditioning test is about correlations, not units
    y = xc / sd
    corr = (y.T @ y) / (n - 1)
    ev = np.linalg.eigvalsh(corr)
    if not ev[0] > ev[-1] / cond_max:
        return None, math.nan, (
            f"the cloud is (numerically) degenerate: the correlation matrix has condition number "
            f"{ev[-1] / max(ev[0], 1e-300):.3g} > {cond_max:.3g}; it lies near a lower-dimensional "
            "set, where the differential entropy in R^p tends to -inf"
        )
    try:
        lc = np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        return None, math.nan, "the correlation matrix is not positive definite (degenerate cloud)"
    z = np.linalg.solve(lc, y.T).T
    logdet = float(np.sum(np.log(sd)) + np.sum(np.log(np.diag(lc))))
    return z, logdet, None


def _knn_entropies(
    x: np.ndarray, ks: tuple[int, ...], weights: Any, whiten: bool, cond_max: float, workers: int
) -> list[Entropy]:
    """The estimates of one cloud for each neighbour rank in ``ks`` (one kd-tree query)."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n, p = x.shape

    def fail(reason: str, **more: Any) -> list[Entropy]:
        return [_failed(reason, n=n, p=p, k=k, whiten=whiten, **more) for k in ks]

    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        return fail(f"non-finite input: {bad} entries of x are nan or inf")
    m = None
    if weights is not None:
        m, reason = _masses(weights, n)
        if reason:
            return fail(reason)
    valid = [k for k in ks if k < n]
    if not valid:
        return fail(f"need more particles than the neighbour rank: n = {n} <= k = {min(ks)}")
    kmax = max(valid)
    zw, logdet, reason = _whitening(x, cond_max)  # the degeneracy checks run either way
    if reason:
        return fail(reason)
    z, logdet = (zw, logdet) if whiten else (x, 0.0)
    # k + 1 neighbours: the first is the query point itself (distance 0)
    dist, _ = cKDTree(z).query(z, k=kmax + 1, workers=workers)
    dup = int(np.count_nonzero(dist[:, 1] == 0))
    if dup:
        return fail(
            f"duplicate particles: {dup} of {n} points coincide with another point "
            "(the cloud has atoms, not a density: the estimate would be biased down, and -inf "
            "once a k-th neighbour distance is 0; no jitter is added)"
        )
    n_eff = float(n) if m is None else float(1.0 / np.sum(m * m))
    out = []
    for k in ks:
        if k >= n:
            out.append(_failed(f"need more particles than the neighbour rank: n = {n} <= k = {k}",
                               n=n, p=p, k=k, whiten=whiten))
            continue
        info = {"n": n, "p": p, "k": k, "whiten": whiten, "log_det_whitening": logdet, "n_eff": n_eff}
        # -log f_hat(x_i) in the whitened coordinates
        terms = digamma(n) - digamma(k) + log_unit_ball_volume(p) + p * np.log(dist[:, k])
        if m is None:
            h = float(np.mean(terms))
            se = float(np.std(terms, ddof=1) / math.sqrt(n))
        else:
            nz = m > 0
            t = np.zeros(n)
            t[nz] = terms[nz] - np.log(n * m[nz])  # -log(g_hat w) at x_i, w = n m_i
            h = float(np.sum(m * t))
            se = float(math.sqrt(np.sum(m * m * (t - h) ** 2) * n_eff / max(n_eff - 1.0, 1.0)))
        value = h + logdet
        if not math.isfinite(value):
            out.append(_failed("non-finite estimate (coordinates overflow)", **info))
        else:
            out.append(Entropy(value, None, se, "knn_kl", info))
    return out


def knn_entropy(
    x: Any,
    k: int = DEFAULT_K,
    weights: Any = None,
    *,
    whiten: bool = True,
    cond_max: float = 1e12,
    workers: int = 1,
) -> Entropy | EntropyBatch:
    r"""Kozachenko–Leonenko estimate of the differential entropy :math:`-\int f\log f`.

    Derivation. Let :math:`\varepsilon_i` be the Euclidean distance from :math:`x_i` to its
    :math:`k`-th nearest neighbour among the other :math:`n - 1` points and
    :math:`P_i = \mu(B(x_i, \varepsilon_i))` the probability of that ball. Conditionally on
    :math:`x_i` the other points are i.i.d., so :math:`P_i` is the :math:`k`-th smallest of
    :math:`n - 1` uniform variables: :math:`P_i \sim \mathrm{Beta}(k, n - k)` and
    :math:`\mathbb{E}\log P_i = \psi(k) - \psi(n)`, whatever :math:`f`. For a small ball
    :math:`P_i \approx f(x_i) V_p \varepsilon_i^p` (:math:`V_p` the volume of the Euclidean unit
    ball: the norm is Euclidean, after whitening), so
    :math:`\log f(x_i) \approx \psi(k) - \psi(n) - \log V_p - p\log\varepsilon_i` in expectation,
    and averaging :math:`H = -\mathbb{E}\log f(X)` over the particles,

    .. math::

        \hat H = \psi(n) - \psi(k) + \log V_p + \frac{p}{n}\sum_i \log\varepsilon_i .

    The only approximation is :math:`P_i \approx f(x_i)V_p\varepsilon_i^p`, exact for a density
    that is constant on the ball; its failure (curvature, tails, edges of the support) is the bias
    measured in the module docstring. The :math:`\psi(n) - \psi(k)` (rather than
    :math:`\log(n/k)`) makes the estimator unbiased for a locally uniform density at every n.

    Parameters
    ----------
    x : array_like, shape (n,), (n, p) or (..., n, p)
        Particle positions (only the coordinates that move: a frozen, constant coordinate makes
        the measure singular and is refused). A leading batch shape is looped over; each cloud
        is estimated (and refused) on its own.
    k : int
        Neighbour rank, ``1 <= k``; :data:`DEFAULT_K` = 3 (module docstring: measured errors
        for k = 1, 3, 5, 10). A cloud with ``n <= k`` is refused.
    weights : array_like, shape (n,) or (..., n), optional
        Particle masses :math:`m_i \ge 0` (normalised here); a weighted variant,
        :math:`\hat H = \sum_i m_i[T_i - \log(n m_i)]` with :math:`T_i` the unweighted
        per-particle term, valid when the masses are a smooth function of position (module
        docstring, *Weighted particles*). Uniform masses give the unweighted estimate.
    whiten : bool
        Estimate in the coordinates whitened by the sample covariance and add back
        :math:`\log|\det L|` (default; exactly affine equivariant). ``False``: raw Euclidean
        distances (only for clouds whose modes are round in the given units).
    cond_max : float
        Largest condition number of the correlation matrix accepted; above it the cloud is
        refused as lying (numerically) on an affine subspace.
    workers : int
        Threads for the kd-tree query (``scipy.spatial.cKDTree.query``).

    Returns
    -------
    Entropy or EntropyBatch
        :class:`Entropy` for a single cloud: ``value`` in nats, ``stderr`` (plug-in sampling error,
        no bias), ``info`` with ``n``, ``p``, ``k``, ``n_eff``, ``whiten``,
        ``log_det_whitening``; an :class:`EntropyBatch` for batched input. Whether the value is
        trustworthy at this size is :func:`entropy_reliable`'s call.

    Refusals (``value = nan``, ``reason`` set): non-finite coordinates; ``n <= k``;
    ``n <= p``; a constant coordinate or a (numerically) rank-deficient cloud; duplicate
    particles (any two coinciding: with fewer than k copies the k-th distance is positive but the
    cloud has an atom; with k or more it is 0 and the estimate -inf); non-finite, negative or
    all-zero masses. Malformed shapes and ``k < 1`` raise ``ValueError``.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim < 2 or arr.shape[-1] == 0:
        raise ValueError(f"x must have shape (n,), (n, p) or (..., n, p) with p >= 1, got {arr.shape}")
    if arr.ndim == 2:
        return _knn_entropies(arr, (k,), weights, whiten, cond_max, workers)[0]
    batch, (n, p) = arr.shape[:-2], arr.shape[-2:]
    wb = None
    if weights is not None:
        wb = np.asarray(weights, dtype=np.float64)
        if wb.shape[-1:] != (n,):
            raise ValueError(f"weights must have shape (n,) or (..., n) with n = {n}, got {wb.shape}")
        wb = np.broadcast_to(wb, batch + (n,))
    items = []
    for idx in np.ndindex(*batch):
        items.append(_knn_entropies(arr[idx], (k,), None if wb is None else wb[idx], whiten, cond_max, workers)[0])
    values = np.array([e.value for e in items], dtype=np.float64).reshape(batch)
    stderrs = np.array([e.stderr for e in items], dtype=np.float64).reshape(batch)
    reasons = np.empty(len(items), dtype=object)
    reasons[:] = [e.reason for e in items]
    return EntropyBatch(values, stderrs, reasons.reshape(batch), tuple(items))


#: Tolerance of :func:`entropy_reliable` per coordinate, in nats: log 1.05, a 5 % error on each
#: coordinate's length scale (module docstring, *Reliability rule*).
RELIABLE_TOL_PER_DIM = math.log(1.05)

#: Measured dimensions of the study behind the rule (``benchmarks/entropy_bias.py``).
_MEASURED_P = (1, 2, 3, 4, 5, 6, 7, 8, 10)
#: Largest n of the study.
_MEASURED_N_MAX = 10_000

# Smallest measured n from which on the error is within tolerance (None: at no measured n), per
# (k, sharp_edges) and p; output of ``python benchmarks/entropy_bias.py --table`` on the study
# in the module docstring ("smooth": gauss and mixture; "sharp edges": uniform too).
_MIN_N: dict[tuple[int, bool], dict[int, int | None]] = {
    (1, False): {1: 3000, 2: 1000, 3: 1000, 4: 300, 5: 300, 6: 300, 7: 300, 8: 300, 10: 300},
    (3, False): {1: 1000, 2: 1000, 3: 300, 4: 300, 5: 300, 6: 300, 7: 1000, 8: 1000, 10: 1000},
    (5, False): {1: 1000, 2: 300, 3: 300, 4: 300, 5: 300, 6: 1000, 7: 1000, 8: 1000, 10: 3000},
    (10, False): {1: 1000, 2: 300, 3: 300, 4: 1000, 5: 1000, 6: 1000, 7: 1000, 8: 3000, 10: 10000},
    (1, True): {1: 3000, 2: 1000, 3: 1000, 4: 3000, 5: 10000, 6: None, 7: None, 8: None, 10: None},
    (3, True): {1: 1000, 2: 1000, 3: 1000, 4: 10000, 5: None, 6: None, 7: None, 8: None, 10: None},
    (5, True): {1: 1000, 2: 1000, 3: 3000, 4: 10000, 5: None, 6: None, 7: None, 8: None, 10: None},
    (10, True): {1: 1000, 2: 1000, 3: 3000, 4: None, 5: None, 6: None, 7: None, 8: None, 10: None},
}


def _min_n(k: int, sharp_edges: bool, p: int) -> int | None:
    """Measured threshold at p; an unmeasured p inside the range takes the stricter neighbour."""
    table = _MIN_N[(k, sharp_edges)]
    if p in table:
        return table[p]
    lo = max(q for q in table if q < p)
    hi = min(q for q in table if q > p)
    a, b = table[lo], table[hi]
    return None if a is None or b is None else max(a, b)


#: ``p -> smallest n`` at which :func:`entropy_reliable` says yes (k = 3, smooth densities).
RELIABLE_MIN_N: dict[int, int] = {p: _min_n(DEFAULT_K, False, p) for p in range(1, 11)}  # type: ignore[misc]


def entropy_reliable(n: int, p: int, *, k: int = DEFAULT_K, sharp_edges: bool = False) -> tuple[bool, str]:
    r"""Whether :func:`knn_entropy` is within tolerance for a cloud of n particles in R^p.

    Encodes the measurements of the module docstring: yes when, from this n on (at the measured
    sizes), the typical error of one estimate on every test family — root-mean-square of bias and
    seed spread, plus twice the Monte Carlo error of the bias — is at most
    :math:`p\log 1.05` nats (each coordinate's length scale within 5 %). Families: a correlated
    Gaussian and a two-mode Gaussian mixture ("smooth", the default: Gibbs measures of
    mean-field Langevin with weight decay are smooth with Gaussian tails); with
    ``sharp_edges=True`` also the uniform law on a box, whose edge bias rules out p >= 5.

    Thresholds for k = 3, smooth: n >= 1000 for p = 1, 2 and 7..10; n >= 300 for p = 3..6.
    Refused (False): p > 10 or k not in {1, 3, 5, 10} (not measured), n <= k or n <= p.
    For a weighted cloud pass its effective size :math:`n_\mathrm{eff} = 1/\sum m_i^2`.

    Returns
    -------
    (bool, str)
        The verdict and a sentence saying why (the threshold and the tolerance, or what is
        outside the measured range); meant to be carried as the ``reason`` of a NaN free energy.
    """
    n, p, k = int(n), int(p), int(k)
    tol = p * RELIABLE_TOL_PER_DIM
    kind = "densities with sharp edges" if sharp_edges else "smooth densities"
    if p < 1:
        return False, f"dimension p = {p} < 1"
    if (k, bool(sharp_edges)) not in _MIN_N:
        return False, f"k = {k} not measured (the study covers k = 1, 3, 5, 10)"
    if p > max(_MEASURED_P):
        return False, (f"p = {p} > {max(_MEASURED_P)}: the entropy estimator's bias was not measured "
                       "there (it grows with p); no free energy is reported")
    if n <= max(k, p):
        return False, f"n = {n} particles are too few for k = {k} in p = {p} (need n > k and n > p)"
    need = _min_n(k, bool(sharp_edges), p)
    measured = "measured" if p in _MEASURED_P else "interpolated (stricter neighbour)"
    if need is None:
        return False, (f"{kind} in p = {p} (k = {k}): the entropy estimate's typical error exceeds "
                       f"{tol:.3g} nats (p log 1.05) at every measured n <= {_MEASURED_N_MAX}")
    if n < need:
        return False, (f"n = {n} < {need}: for {kind} in p = {p} (k = {k}) the entropy estimate's "
                       f"typical error exceeds {tol:.3g} nats (p log 1.05) below n = {need} ({measured})")
    beyond = ", extrapolated beyond n = 10^4" if n > _MEASURED_N_MAX else ""
    return True, (f"n = {n} >= {need}: for {kind} in p = {p} (k = {k}) the entropy estimate's typical "
                  f"error is within {tol:.3g} nats (p log 1.05; {measured}{beyond})")
