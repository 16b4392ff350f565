r"""Result-level analysis: convergence of finite-width networks to the mean-field limit.

The pure functions of :mod:`meanfield.analysis` act on arrays; the functions here take a whole
:class:`meanfield.Result` (or a run directory loaded with :func:`meanfield.load`) and apply them
to every width, seed and snapshot time:

* :func:`neuron_distances` — per width :math:`N`, snapshot time :math:`t_k` and seed, distances
  between the network's neuron measure :math:`\mu^N_t = \frac1N\sum_i\delta_{\theta_i(t)}` and
  the limit's particle measure :math:`\mu^\infty_t`:

  - :math:`W_2(\mu^N_t, \mu^\infty_t)` (exact and guarded for small clouds, sliced for large
    ones). It carries the sampling floor :math:`\sim N^{-1/p}` of an :math:`N`-point sample in
    :math:`\mathbb{R}^p`, so it mostly measures the initial draw;
  - the synchronous-coupling distance :math:`D_N(t) = (\frac1N\sum_i|\theta_i(t) -
    \bar\theta_{\iota(i)}(t)|^2)^{1/2}`, :math:`\iota` = ``coupling_index_N{N}`` (the limit
    particle neuron :math:`i` started from). :math:`D_N(0) = 0`, and :math:`D_N(t)` measures the
    dynamics only (the propagation-of-chaos rate, :math:`\sim N^{-1/2}`);
  - :math:`W_2` between the network and its *own* coupled subsample of the limit cloud (free of
    the sampling floor, :math:`\le D_N`);
  - the squared MMD (Gaussian kernel, median bandwidth) with its jackknife error.

* :func:`function_gaps` — :math:`\|f_N(t) - f_\infty(t)\|_{L^2(x_{eval})}` and the risk gap
  :math:`R_N(t) - R_\infty(t)` for every width and seed, with seed means and errors.
* :func:`fluctuations` — seed statistics of the risk and of the output: per width and time the
  mean and variance, :math:`N\operatorname{Var}` (mean-field CLT: :math:`\operatorname{Var}
  \simeq C(t)/N`, so the curves collapse), and per time a log–log fit
  :math:`\operatorname{Var}\propto N^{-\gamma}` with its standard error.
* :func:`movement` — :math:`\mathrm{RMS}_i\,|\theta_i(t) - \theta_i(0)|` per width, seed and
  snapshot (lazy regime: :math:`\propto 1/\alpha`).
* :func:`scaling_fits` — power-law fits of any of the above against :math:`N`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .distances import coupling_distance, w2_exact, w2_sliced
from .fitting import PowerLawFit, fit_power_law
from .fluctuations import VarianceScaling, collapse_chi2, variance_scaling
from .function import function_distance, risk_gap
from .mmd import mmd2

__all__ = [
    "NeuronDistances",
    "neuron_distances",
    "FunctionGaps",
    "function_gaps",
    "Fluctuations",
    "fluctuations",
    "Movement",
    "movement",
    "fit_vs_width",
]


def _arrays(res) -> dict:
    return res.arrays if hasattr(res, "arrays") else dict(res)


def _widths(a) -> list[int]:
    return [int(n) for n in a.get("widths", [])]


# ----------------------------------------------------------------------------------- distances

@dataclass(frozen=True)
class NeuronDistances:
    r"""Distances between each network's neurons and the limit particles.

    Arrays have shape ``(W, K, S)`` (widths × snapshot times × seeds); entries that could not be
    computed are ``nan`` and the reasons are collected in ``reasons``.

    Attributes
    ----------
    widths : ndarray (W,)
    snap_t : ndarray (K,)
    w2 : ndarray
        :math:`W_2(\mu^N_t, \mu^\infty_t)` against the whole limit cloud (method in
        ``w2_method``: ``'exact'`` or ``'sliced'`` per width).
    w2_method : tuple of str, length W
    coupled : ndarray
        Synchronous-coupling distance :math:`D_N(t)` (``nan`` without coupling).
    w2_sub : ndarray
        Exact :math:`W_2` between the network and its coupled subsample of the limit cloud.
    mmd2, mmd2_se : ndarray
        Unbiased squared MMD against the limit cloud and its jackknife standard error.
    reasons : dict
        ``(quantity, N) -> reason`` for what was skipped.
    """

    widths: np.ndarray
    snap_t: np.ndarray
    w2: np.ndarray
    w2_method: tuple
    coupled: np.ndarray
    w2_sub: np.ndarray
    mmd2: np.ndarray
    mmd2_se: np.ndarray
    reasons: dict = field(default_factory=dict)

    def mean(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Seed mean and its standard error of quantity ``name``: two arrays of shape (W, K)."""
        q = getattr(self, name)
        S = np.sum(np.isfinite(q), axis=-1)
        with warnings.catch_warnings():  # all-nan quantities (not computed) stay nan quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(q, axis=-1)
            sd = np.nanstd(q, axis=-1, ddof=1) if q.shape[-1] > 1 else np.zeros_like(m)
        return m, sd / np.sqrt(np.maximum(S, 1))


def neuron_distances(
    res,
    *,
    exact_max: int = 2000,
    n_projections: int = 64,
    mmd: bool = True,
    mmd_max: int = 2000,
    w2: bool = True,
    seed: int = 0,
) -> NeuronDistances:
    r"""Distances between every network (width, seed) and the limit at every snapshot time.

    Parameters
    ----------
    res : Result
        A run with snapshots (``time.snapshots >= 1``) and the limit simulated.
    exact_max : int
        :math:`W_2` against the whole limit cloud is computed exactly (network simplex, guarded:
        memory and optimality are checked) when both clouds have at most this many points, and
        by random slicing (``n_projections`` directions, a lower bound on :math:`W_2`) otherwise.
        The exact solve costs roughly :math:`O(N M')` memory and :math:`O(N^2 M')` time.
    n_projections : int
        Directions of the sliced distance.
    mmd : bool
        Compute the squared MMD (cost :math:`O((N + M')^2)` per pair; the limit cloud is
        truncated to its first ``mmd_max`` particles, an unbiased subsample).
    w2 : bool
        Compute :math:`W_2` against the whole limit cloud at all (the dominant cost).
    seed : int
        Seed of the slicing directions (the same directions for every pair).

    Returns
    -------
    NeuronDistances

    Notes
    -----
    The limit cloud stored in ``particles_mf`` is the first :math:`M' = \min(M,`
    ``eval.max_snapshot_particles``:math:`)` particles; a coupling index beyond :math:`M'` makes
    the coupled quantities ``nan`` (with a reason).
    """
    a = _arrays(res)
    if "particles_mf" not in a or a.get("snap_t", np.zeros(0)).size == 0:
        raise ValueError("the run has no snapshots of the limit (needs the limit and time.snapshots >= 1)")
    widths = _widths(a)
    if not widths:
        raise ValueError("the run trained no finite networks")
    P = a["particles_mf"]
    K = P.shape[0]
    S = a[f"neurons_nn_N{widths[0]}"].shape[1]
    shape = (len(widths), K, S)
    out = {k: np.full(shape, np.nan) for k in ("w2", "coupled", "w2_sub", "mmd2", "mmd2_se")}
    methods, reasons = [], {}
    Pm = a.get("masses_mf")  # (K, M'): particles with masses (WFR, a floating population)
    jumps = _had_jumps(res)
    for wi, N in enumerate(widths):
        nn = a[f"neurons_nn_N{N}"]
        nm = a.get(f"masses_nn_N{N}")
        idx = a.get(f"coupling_index_N{N}")
        if (Pm is not None or nm is not None or jumps) and idx is not None:
            reasons[("coupled", N)] = ("the identity coupling does not survive reweighting or birth-death jumps "
                                       "(the rows no longer carry the initial particles' mass)")
            idx = None
        elif idx is not None and idx.max() >= P.shape[1]:
            reasons[("coupled", N)] = (f"coupling index up to {idx.max()} but only {P.shape[1]} limit "
                                       "particles were stored (raise eval.max_snapshot_particles)")
            idx = None
        elif idx is None:
            reasons[("coupled", N)] = "the networks were not coupled to the limit (train.coupling = false)"
        exact = max(nn.shape[-2], P.shape[1]) <= exact_max
        methods.append("exact" if exact else "sliced")
        for k in range(K):
            Y, b = _cloud(P[k], None if Pm is None else Pm[k])
            for s in range(S):
                X, wx = _cloud(nn[k, s], None if nm is None else nm[k, s])
                weighted = wx is not None or b is not None
                if w2 and Y.shape[0]:
                    if exact:
                        d = w2_exact(X, Y, wx, b)
                    elif weighted:
                        d = None
                        reasons.setdefault(("w2", N), "sliced W2 is for equal-weight clouds and these particles "
                                                      "carry unequal masses: raise exact_max for the exact solver")
                    else:
                        d = w2_sliced(X, Y, n_projections=n_projections, seed=seed)
                    if d is not None:
                        out["w2"][wi, k, s] = d.value
                        if not d.ok:
                            reasons.setdefault(("w2", N), d.reason)
                if mmd and weighted:
                    reasons.setdefault(("mmd2", N), "the MMD estimator is for equal-weight clouds and these "
                                                    "particles carry unequal masses")
                    continue
                if idx is not None:
                    Z = P[k][idx[s]]
                    d = coupling_distance(X, Z)
                    out["coupled"][wi, k, s] = d.value
                    # exact W2 to the coupled subsample: N x N, cheap for the widths we train
                    d2 = w2_exact(X, Z) if N <= exact_max else w2_sliced(X, Z, n_projections=n_projections, seed=seed)
                    out["w2_sub"][wi, k, s] = d2.value
                if mmd and Y.shape[0] >= 3 and X.shape[0] >= 3:
                    d = mmd2(X, Y[:mmd_max])
                    out["mmd2"][wi, k, s] = d.value
                    out["mmd2_se"][wi, k, s] = d.stderr
    return NeuronDistances(np.asarray(widths), np.asarray(a["snap_t"]), out["w2"], tuple(methods),
                           out["coupled"], out["w2_sub"], out["mmd2"], out["mmd2_se"], reasons)


def _cloud(x, m):
    """The finite rows of a snapshot and their masses: ``(x, None)`` for equal weights (no masses, or
    equal masses on the occupied rows, as in a floating birth-death population, whose empty slots
    of mass 0 are dropped), else ``(x, m)`` restricted to the rows with positive mass."""
    ok = np.all(np.isfinite(x), axis=1)
    if m is None:
        return x[ok], None
    ok &= np.isfinite(m) & (m > 0)
    x, m = x[ok], m[ok]
    return (x, None) if m.size == 0 or np.all(m == m[0]) else (x, m)


def _had_jumps(res) -> bool:
    """Whether the run's particles were killed and cloned (birth-death): rows then lose their
    identity, so row-wise (coupled, displacement) quantities are meaningless."""
    cfg = getattr(res, "config", None)
    dyn = getattr(cfg, "dynamics", None)
    return dyn is not None and dyn.reaction_rate > 0 and dyn.reaction_scheme != "weights"


# ------------------------------------------------------------------------------- function gaps

@dataclass(frozen=True)
class FunctionGaps:
    r"""Function distance and risk gap to the limit over time.

    Attributes
    ----------
    t : ndarray (T,)
    widths : ndarray (W,)
    fdist : ndarray (W, S, T)
        :math:`\|f_N(t) - f_\infty(t)\|` (RMS over the evaluation points) per seed.
    fdist_mean, fdist_sem : ndarray (W, T)
    gap : ndarray (W, S, T)
        :math:`R_N(t) - R_\infty(t)` per seed.
    gap_mean, gap_sem : ndarray (W, T)
    """

    t: np.ndarray
    widths: np.ndarray
    fdist: np.ndarray
    fdist_mean: np.ndarray
    fdist_sem: np.ndarray
    gap: np.ndarray
    gap_mean: np.ndarray
    gap_sem: np.ndarray


def _mean_sem(q):
    S = q.shape[1]
    sem = q.std(axis=1, ddof=1) / math.sqrt(S) if S > 1 else np.full(q.mean(axis=1).shape, np.nan)
    return q.mean(axis=1), sem


def function_gaps(res) -> FunctionGaps:
    r"""Function distance :math:`\|f_N - f_\infty\|` and risk gap :math:`R_N - R_\infty` over time.

    The expected function distance is :math:`O(N^{-1/2})` (fluctuations) and the seed-mean risk
    gap :math:`O(1/N)` (the risk is quadratic in :math:`f_N - f_\infty`).
    """
    a = _arrays(res)
    if "f_mf" not in a or "f_nn" not in a:
        raise ValueError("needs both the limit (f_mf) and finite networks (f_nn)")
    fd = function_distance(a["f_nn"], a["f_mf"])
    gap = risk_gap(a["risk_nn"], a["risk_mf"])
    fm, fs = _mean_sem(fd)
    gm, gs = _mean_sem(gap)
    return FunctionGaps(np.asarray(a["t"]), np.asarray(a["widths"]), fd, fm, fs, gap, gm, gs)


# -------------------------------------------------------------------------------- fluctuations

@dataclass(frozen=True)
class Fluctuations:
    r"""Seed fluctuations of the risk and of the output, and their scaling with :math:`N`.

    Attributes
    ----------
    t : ndarray (T,)
    widths : ndarray (W,)
    risk : VarianceScaling
        Of :math:`R_N(t)`: arrays of shape ``(W, T)`` (``mean``, ``var``, ``scaled`` =
        :math:`N\operatorname{Var}`, errors).
    f : VarianceScaling
        Of the output, averaged over the evaluation points: ``var`` is
        :math:`\frac1Q\sum_q\operatorname{Var}_s f_N(t, x_q)`, shape ``(W, T)``, with a
        delete-one-seed jackknife error (it accounts for the correlation between points).
        ``mean`` is the seed mean of the output, shape ``(W, T, Q)``.
    risk_slope, risk_slope_se, f_slope, f_slope_se : ndarray (T,)
        Per time, the fitted exponent :math:`-\gamma` of :math:`\operatorname{Var}\propto
        N^{-\gamma}` and its standard error (``nan`` where a variance vanishes, e.g. the output
        at :math:`t = 0` with antithetic initialisation).
    risk_collapse, f_collapse : ndarray (T,)
        The collapsed prefactor :math:`\bar C(t)` (inverse-variance weighted mean of
        :math:`N\operatorname{Var}` over widths).
    risk_chi2, f_chi2 : ndarray (T,)
        :math:`\chi^2` of the collapse, :math:`\approx\chi^2_{W-1}` if
        :math:`\operatorname{Var}\propto 1/N`.
    """

    t: np.ndarray
    widths: np.ndarray
    risk: VarianceScaling
    f: VarianceScaling
    risk_slope: np.ndarray
    risk_slope_se: np.ndarray
    f_slope: np.ndarray
    f_slope_se: np.ndarray
    risk_collapse: np.ndarray
    risk_chi2: np.ndarray
    f_collapse: np.ndarray
    f_chi2: np.ndarray

    def fit_at(self, i: int, which: str = "f") -> PowerLawFit:
        """The full power-law fit of ``Var`` against :math:`N` at time index ``i``."""
        sc = self.f if which == "f" else self.risk
        return fit_power_law(sc.widths, sc.var[:, i], yerr=sc.var_se[:, i])


def _pooled_var(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean over the last axis of the seed variance (seeds on axis 0), with a jackknife error.

    :math:`v = \frac1Q\sum_q s^2_q`; delete-one-seed jackknife
    :math:`\mathrm{se}^2 = \frac{S-1}{S}\sum_s (v_{(-s)} - \bar v)^2`.
    """
    S = q.shape[0]
    v = q.var(axis=0, ddof=1).mean(axis=-1)
    loo = np.stack([np.delete(q, s, axis=0).var(axis=0, ddof=1).mean(axis=-1) for s in range(S)])
    se = np.sqrt((S - 1) / S * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    return v, se


def _fit_per_time(widths, var, se):
    T = var.shape[1]
    slope, slope_se = np.full(T, np.nan), np.full(T, np.nan)
    for i in range(T):
        y, e = var[:, i], se[:, i]
        # a variance at round-off level (antithetic f_0 = 0; a coupled network holding every
        # particle of the pool at t = 0) is a zero, not a point of a power law
        if np.all(np.isfinite(y)) and np.all(y > 1e-24 + 1e-12 * np.max(y)) and np.all(np.isfinite(e)) and np.all(e > 0):
            ft = fit_power_law(widths, y, yerr=e)
            slope[i], slope_se[i] = ft.slope, ft.slope_se
    return slope, slope_se


def _collapse(sc: VarianceScaling):
    T = sc.var.shape[1]
    mean, chi2 = np.full(T, np.nan), np.full(T, np.nan)
    ok = np.all(sc.scaled_se > 0, axis=0) & np.all(np.isfinite(sc.scaled_se), axis=0)
    if ok.any():
        sub = VarianceScaling(sc.widths, sc.mean[:, ok] if sc.mean.ndim == 2 else sc.mean[:, ok],
                              sc.var[:, ok], sc.var_se[:, ok], sc.scaled[:, ok], sc.scaled_se[:, ok],
                              sc.n_seeds)
        m, c, _ = collapse_chi2(sub)
        mean[ok], chi2[ok] = m, c
    return mean, chi2


def fluctuations(res, *, var_se_method: str = "analytic") -> Fluctuations:
    r"""Seed statistics of risk and output per width and time, :math:`N\operatorname{Var}`, and fits.

    Mean-field CLT (Rotskoff–Vanden-Eijnden 2018; Sirignano–Spiliopoulos 2020): for
    independent initialisations :math:`f_N(t,x) = f_\infty(t,x) + N^{-1/2}\xi_t(x) + o(N^{-1/2})`,
    so :math:`\operatorname{Var}_s f_N(t,x)\simeq C_f(t,x)/N` and likewise for the risk.

    Parameters
    ----------
    res : Result
        A run with at least 2 widths and 2 seeds (4 for the distribution-free variance error).
    var_se_method : str
        Error of the risk variance, see :func:`meanfield.analysis.variance_stderr`.

    Notes
    -----
    With ``train.coupling`` on, the networks are subsamples of a finite pool of :math:`M`
    particles, so the initial variance is smaller by :math:`(1 - N/M)` (finite-population
    correction) and the exponent is biased at :math:`N` close to :math:`M`: use
    ``train.coupling = false`` to measure fluctuations.
    """
    a = _arrays(res)
    widths = np.asarray(a["widths"], dtype=float)
    if widths.size < 2 or a["risk_nn"].shape[1] < 2:
        raise ValueError("fluctuation scaling needs at least 2 widths and 2 seeds")
    risk = variance_scaling(widths, list(a["risk_nn"]), var_se_method=var_se_method)
    fv, fse, fmean = [], [], []
    for wi in range(widths.size):
        q = np.asarray(a["f_nn"][wi], dtype=float)  # (S, T, Q)
        v, se = _pooled_var(q)
        fv.append(v)
        fse.append(se)
        fmean.append(q.mean(axis=0))
    fv, fse = np.stack(fv), np.stack(fse)
    S = a["f_nn"].shape[1]
    f = VarianceScaling(widths, np.stack(fmean), fv, fse, widths[:, None] * fv, widths[:, None] * fse,
                        np.full(widths.size, S))
    rs, rse = _fit_per_time(widths, risk.var, risk.var_se)
    fs, fsse = _fit_per_time(widths, f.var, f.var_se)
    rc, rchi = _collapse(risk)
    fc, fchi = _collapse(f)
    return Fluctuations(np.asarray(a["t"]), widths, risk, f, rs, rse, fs, fsse, rc, rchi, fc, fchi)


# ------------------------------------------------------------------------------------ movement

@dataclass(frozen=True)
class Movement:
    r"""How far neurons move from their initialisation.

    Attributes
    ----------
    snap_t : ndarray (K,)
    widths : ndarray (W,)
    nn : ndarray (W, K, S)
        :math:`\big(\frac1N\sum_i|\theta_i(t_k) - \theta_i(0)|^2\big)^{1/2}` per width, snapshot, seed.
    mf : ndarray (K,)
        The same for the limit particles (``nan`` without the limit).
    """

    snap_t: np.ndarray
    widths: np.ndarray
    nn: np.ndarray
    mf: np.ndarray


def movement(res) -> Movement:
    r"""RMS displacement of the neurons from :math:`t = 0`, :math:`\mathrm{RMS}_i|\theta_i(t) - \theta_i(0)|`.

    In the lazy scaling (objective divided by :math:`\alpha^2`, see the README) the function moves
    :math:`O(1)` per unit time while every neuron moves :math:`O(1/\alpha)`: the displacement at a
    fixed time decays like :math:`1/\alpha` for large :math:`\alpha` (Chizat–Oyallon–Bach 2019).
    Needs a snapshot at :math:`t = 0` (the first snapshot always is).
    """
    a = _arrays(res)
    widths = _widths(a)
    if "snap_t" in a:
        snap_t = np.asarray(a["snap_t"])
    elif widths and f"neurons_nn_N{widths[0]}" in a:
        # without the limit no snap_t is stored; the run's snapshot grid is K evenly spaced
        # recording indices starting at 0 (meanfield.run)
        K, T = a[f"neurons_nn_N{widths[0]}"].shape[0], a["t"].size
        snap_t = np.asarray(a["t"])[np.unique(np.round(np.linspace(0, T - 1, K)).astype(int))]
    else:
        snap_t = np.zeros(0)
    if snap_t.size == 0 or snap_t[0] != 0:
        raise ValueError("needs snapshots starting at t = 0")
    if _had_jumps(res) or any(k.startswith("masses_") for k in a):
        raise ValueError("row-wise displacement needs particles that keep their identity and mass: this run "
                         "reweighted (Wasserstein-Fisher-Rao) or killed and cloned (birth-death) them; compare "
                         "the measures instead (neuron_distances)")
    nn = np.stack([np.sqrt(np.mean(np.sum((a[f"neurons_nn_N{N}"] - a[f"neurons_nn_N{N}"][:1]) ** 2, axis=-1),
                                   axis=-1)) for N in widths]) if widths else np.zeros((0, snap_t.size, 0))
    if "particles_mf" in a:
        P = a["particles_mf"]
        mf = np.sqrt(np.nanmean(np.sum((P - P[:1]) ** 2, axis=-1), axis=-1))
    else:
        mf = np.full(snap_t.size, np.nan)
    return Movement(snap_t, np.asarray(widths), nn, mf)


# -------------------------------------------------------------------------------------- fitting

def fit_vs_width(widths: Any, q: Any) -> PowerLawFit:
    r"""Power-law fit :math:`\bar q_N \propto N^{s}` of a per-seed quantity against the width.

    Parameters
    ----------
    widths : array_like (W,)
    q : array_like (W, S)
        Per-seed values (e.g. ``NeuronDistances.coupled[:, k, :]``); non-finite seeds are dropped.

    Returns
    -------
    PowerLawFit
        Weighted by the seed standard errors of the means when every width has at least 2
        finite seeds (absolute errors), else unweighted (errors from the scatter, needs 3 widths).
    """
    q = np.asarray(q, dtype=float)
    n = np.sum(np.isfinite(q), axis=1)
    m = np.nanmean(q, axis=1)
    if np.all(n >= 2):
        se = np.nanstd(q, axis=1, ddof=1) / np.sqrt(n)
        if np.all(se > 0):
            return fit_power_law(widths, m, yerr=se)
    return fit_power_law(widths, m)
