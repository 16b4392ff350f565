r"""The fluctuation prediction of an explicit particle system, shared by the two wings.

One adjoint sweep (:mod:`meanfield_solvers.integrators.adjoint`) gives the influence value of every
reference particle for every recorded output; their variance is the predicted N·Var (README
"Fluctuations predicted from the limit", docs/fluctuations.md). :mod:`meanfield.twolayer.prediction`
calls it for a two-layer particle run, :mod:`meanfield.deep.prediction` for a deep muP run at L = 1
mapped onto its two-layer particle system: one implementation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from meanfield_solvers.integrators.adjoint import DriftVJP, adjoint_memory_bytes, adjoint_sweep, tableau_of
from meanfield_solvers.models import Samples

__all__ = ["PredictionRefused", "FluctuationPrediction", "coupling_factor", "influence_variance",
           "drift_field", "prediction_memory_bytes", "pick_times", "predict_particle_system", "record"]


class PredictionRefused(ValueError):
    """The prediction cannot be made for this run (the message says why and what to do)."""


def coupling_factor(n: int, N: int, paired: bool = False) -> float:
    r"""Finite-population factor of a without-replacement subsample of N of the n reference units:
    :math:`(n - N)/(n - 1)` (pairs: :math:`(n/2 - N/2)/(n/2 - 1)`)."""
    if paired:
        n, N = n // 2, N // 2
    return (n - N) / (n - 1) if n > 1 else 0.0


def influence_variance(g, paired=False):
    r"""Predicted N·Var from influence values ``g`` (..., n) and its Monte Carlo standard error.

    Independent units: :math:`\frac1n\sum_j(g_j-\bar g)^2`, SE :math:`\sqrt{(m_4-m_2^2)/n}`. Antithetic pairs
    (rows j, j + n/2): :math:`2\,\mathrm{Var}_{pairs}[(g_j+g_{j+n/2})/2]` with its SE over the n/2 pairs.
    """
    g = np.asarray(g, float)
    scale = 1.0
    if paired:
        h = g.shape[-1] // 2
        g = 0.5 * (g[..., :h] + g[..., h:])
        scale = 2.0
    c = g - g.mean(axis=-1, keepdims=True)
    m2 = np.mean(c * c, axis=-1)
    m4 = np.mean(c ** 4, axis=-1)
    return scale * m2, scale * np.sqrt(np.maximum(m4 - m2 * m2, 0.0) / g.shape[-1])


@dataclass
class FluctuationPrediction:
    r"""The prediction for one limit run.

    Attributes
    ----------
    t : (T,) the run's recording times; steps : (T,) their step indices
    predicted : (T,) bool, the times where the adjoint was seeded (others are NaN)
    outputs : tuple of O names (``f[q]`` at the eval points, then ``risk_train``, ``risk_test``, ``risk_pop``
        as the run records them)
    g : (T, O, n) influence values :math:`\partial O/\partial\omega_j` (NaN where not predicted)
    nvar, nvar_se : (T, O) predicted N·Var for independent initialisations and its MC standard error
    naive : (T, O) the naive estimate (the output's own first variation at the transported units)
    nvar_replicas : (T, O) or None, the forward-replica estimate
    labels : caveats (e.g. the initialisation part only); paired : antithetic reference
    """

    t: np.ndarray
    steps: np.ndarray
    predicted: np.ndarray
    outputs: tuple
    g: np.ndarray
    nvar: np.ndarray
    nvar_se: np.ndarray
    naive: np.ndarray
    nvar_replicas: np.ndarray | None = None
    replicas: int = 0
    labels: list = field(default_factory=list)
    paired: bool = False
    seconds: float = 0.0

    @property
    def n(self) -> int:
        return self.g.shape[-1]

    def ncov(self):
        r"""N·Cov between all (time, output) pairs, shape (T, O, T, O) (NaN where not predicted)."""
        g = self.g
        if self.paired:
            h = g.shape[-1] // 2
            g, s = 0.5 * (g[..., :h] + g[..., h:]), 2.0
        else:
            s = 1.0
        c = g - g.mean(axis=-1, keepdims=True)
        return s * np.einsum("aoj,bpj->aobp", c, c) / g.shape[-1]

    def ncov_same_time(self):
        """N·Cov between outputs at each recording time, (T, O, O)."""
        full = self.ncov()
        T = full.shape[0]
        return full[np.arange(T), :, np.arange(T), :]

    def for_width(self, N: int, coupled: bool):
        """Predicted N·Var for width-N networks: independent draws, or subsamples of the reference
        particles without replacement (times the finite-population factor)."""
        return self.nvar * (coupling_factor(self.n, N, self.paired) if coupled else 1.0)


def drift_field(model, backend, data, rate=1.0, lam=0.0):
    r"""The drift :math:`\text{rate}\cdot v(\theta) - \lambda\Lambda\theta` of a particle model and its VJP."""
    coef = -lam * np.asarray(model.lr_multipliers, float)

    def velocity(theta, mass):
        v = model.risk_velocity(backend, theta, data, mass=mass)[1]
        if rate != 1.0:
            v = v * rate
        if lam:
            v = v + theta * coef
        return v

    def vjp(theta, mass, cot):
        t, m = model.velocity_vjp(backend, theta, data, cot, mass)
        if rate != 1.0:
            t, m = t * rate, m * rate
        if lam:
            t = t + cot * coef
        return t, m

    return DriftVJP(velocity, vjp)


def prediction_memory_bytes(n, p, K, channels, stages, P, checkpoint=None, times=1):
    """Peak bytes of a prediction: the adjoint sweep, the VJP's (n, P) activations and the stored g."""
    sweep = adjoint_memory_bytes(n, p, K, channels, stages, checkpoint)
    vjp = 8 * (5 * n * max(P, 256) + 4 * (1 << 22))
    return sweep + vjp + 8 * times * channels * n


def pick_times(steps, k):
    """Indices of ``k`` recording times spread evenly over the grid (the first and last included)."""
    T = len(steps)
    if k <= 0 or k >= T:
        return np.arange(T)
    return np.unique(np.round(np.linspace(0, T - 1, k)).astype(int))


def predict_particle_system(model, backend, data, points, risks, particles0, steps, dt, integ, field, times=8,
                            checkpoint=None, max_memory_gb=4.0, labels=()) -> FluctuationPrediction:
    r"""The prediction for an explicit particle system: the one adjoint sweep behind every caller.

    :func:`predict_fluctuations` (a two-layer particle run) and
    :func:`meanfield.deep.prediction.predict_deep_fluctuations` (a deep muP run at L = 1, mapped onto
    its two-layer particle system) both end here, so there is one implementation of the prediction.

    Parameters
    ----------
    model : a ParticleModel with the VJPs (``output_vjp``, ``risk_vjp``, ``velocity_vjp``)
    backend : its particle backend
    data : the expectation the flow takes (a Population or :class:`Samples`)
    points : (Q, d) evaluation points (outputs ``f[q]``)
    risks : list of ``(name, data)``, the recorded risks
    particles0 : (n, p) initial reference particles (mass 1/n each)
    steps : (T,) recording steps; dt : the step of the map
    integ : the explicit Runge-Kutta integrator of the map; field : its :class:`DriftVJP`
    times, checkpoint, max_memory_gb : as in :func:`predict_fluctuations`; labels : caveats to carry
    """
    why = model.vjp_supports(data)
    if why:
        raise PredictionRefused(f"fluctuations.predict: {why}")
    th0 = np.asarray(particles0, float)
    n, p = th0.shape
    steps = np.asarray(steps, dtype=np.int64)
    K = int(steps.max())
    sel = pick_times(steps, times)
    points = np.asarray(points, float)
    outputs = tuple(f"f[{q}]" for q in range(points.shape[0])) + tuple(r for r, _ in risks)
    O = len(outputs)
    S = len(tableau_of(integ)[1])
    P = data.x.shape[0] if isinstance(data, Samples) else 0
    need = prediction_memory_bytes(n, p, K, O * len(sel), S, P, checkpoint, len(sel))
    if need > max_memory_gb * 1e9:
        raise PredictionRefused(
            f"fluctuations.predict: estimated peak memory {need / 1e9:.2f} GB exceeds fluctuations.max_memory_gb = "
            f"{max_memory_gb} (n = {n} particles, K = {K} steps, {O} outputs at {len(sel)} times); lower "
            "fluctuations.times or limit.particles, or raise max_memory_gb")
    mass = np.full(n, 1.0 / n)
    naive = np.full((len(steps), O), np.nan)

    def seed_at(ti):
        def seed(th):
            t, m = model.output_vjp(backend, th, points, np.eye(points.shape[0]), mass)
            ts, ms = [t], [m]
            for _, d in risks:
                t1, m1 = model.risk_vjp(backend, th, d, mass)
                ts.append(t1[None])
                ms.append(m1[None])
            m = np.concatenate(ms)
            naive[ti] = influence_variance(m, model.paired)[0]
            return np.concatenate(ts), m.copy()
        return seed

    seeds = {}
    for ti in sel:
        k = int(steps[ti])
        if k in seeds:  # two recording times on one step: the first seeds the channels
            continue
        seeds[k] = seed_at(ti)
    t0 = time.perf_counter()
    got = adjoint_sweep(field, integ, th0, mass, dt, K, seeds, checkpoint=checkpoint)
    T = len(steps)
    g = np.full((T, O, n), np.nan)
    predicted = np.zeros(T, bool)
    for ti in sel:
        k = int(steps[ti])
        g[ti] = got[k]
        naive[ti] = naive[[j for j in sel if int(steps[j]) == k][0]]
        predicted[ti] = True
    nvar, se = influence_variance(g, model.paired)
    pred = FluctuationPrediction(t=steps * dt, steps=steps, predicted=predicted, outputs=outputs, g=g, nvar=nvar,
                                 nvar_se=se, naive=naive, labels=list(labels), paired=model.paired)
    pred.seconds = time.perf_counter() - t0
    return pred


def record(pred: FluctuationPrediction, cfg, arrays: dict, summary: dict, coupled=None):
    """Put a prediction into a run's arrays (named dims in :mod:`meanfield.core.result`) and summary;
    ``coupled`` (None: from ``train.coupling``) says whether the widths subsample the reference particles."""
    arrays["fluct_nvar"] = pred.nvar
    arrays["fluct_nvar_se"] = pred.nvar_se
    arrays["fluct_naive"] = pred.naive
    arrays["fluct_ncov"] = pred.ncov_same_time()
    arrays["fluct_predicted"] = pred.predicted
    if pred.nvar_replicas is not None:
        arrays["fluct_nvar_replicas"] = pred.nvar_replicas
    widths = list(cfg.train.widths) if cfg.train.seeds > 0 else []
    coupling = cfg.train.coupling if coupled is None else coupled
    if coupling == "auto":
        coupling = bool(widths) and max(widths) <= cfg.limit.particles
    if widths:
        arrays["fluct_nvar_nn"] = np.stack([pred.for_width(N, bool(coupling)) for N in widths])
    summary.update(fluct_outputs=list(pred.outputs), fluct_labels=list(pred.labels), fluct_seconds=pred.seconds,
                   fluct_coupled=bool(coupling), fluct_replicas=int(pred.replicas),
                   fluct_reference_particles=int(pred.n))


