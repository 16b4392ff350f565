r"""Finite-width fluctuations predicted from the limit alone: influence functions by one adjoint sweep.

Width-N training with the limit's integrator and step is the limit's discrete map applied to the
empirical measure :math:`\mu_N` of the initial neurons, so every recorded output is a functional
:math:`O_t(\mu_N)` and, by the delta method,

.. math:: N\,\mathrm{Var}[O_t] \to \mathrm{Var}_{\theta\sim\rho_0}[\mathrm{IF}_t(\theta)],\qquad
          N\,\mathrm{Cov}[O^{(1)}_t, O^{(2)}_s] \to \mathrm{Cov}_{\rho_0}[\mathrm{IF}^{(1)}_t, \mathrm{IF}^{(2)}_s],

with :math:`\mathrm{IF}_t(\theta_j) = \partial O_t/\partial\omega_j + \text{const}` computed for all
reference particles j at once by the discrete adjoint of the integrator that ran
(:mod:`meanfield_solvers.integrators.adjoint`). README "Fluctuations predicted from the limit" and
``docs/fluctuations.md`` give the derivation, the corrections for coupled and antithetic
initialisations, the linear closed form the tests check against, and what is not covered.

Also here: the *naive* estimate (the variance of the output's first variation at the transported
particles, i.e. each unit's own transported term, ignoring that moving one unit changes the residual
seen by all others) and the cheaper *forward replicas* (R random mass perturbations pushed through
the batched forward map by central differences; relative error :math:`\sqrt{2/R}`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.integrators.adjoint import (DriftVJP, adjoint_memory_bytes, adjoint_sweep,
                                                   default_checkpoint, tableau_of)
from meanfield_solvers.models import Samples
from meanfield_solvers.state import ParticleState

from .. import seeding

__all__ = ["FluctuationPrediction", "PredictionRefused", "prediction_obstacles", "predict_fluctuations",
           "limit_data", "predict_particle_system", "drift_field", "coupling_factor", "influence_variance", "prediction_memory_bytes"]


class PredictionRefused(ValueError):
    """The prediction cannot be made for this run (the message says why and what to do)."""


def prediction_obstacles(cfg) -> tuple[list, list]:
    """``(refusals, labels)`` for a validated config: reasons the prediction is impossible, and caveats
    that limit what it covers (e.g. online SGD: the initialisation part only)."""
    c = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    lim, dyn, tr, model = c["limit"], c["dynamics"], c["train"], c["model"]
    no, lab = [], []
    from ..deep.checks import is_deep

    if is_deep(c):
        from ..deep.prediction import deep_prediction_obstacles

        return deep_prediction_obstacles(c)
    if model["depth"] >= 2 or lim["method"] != "particles":
        no.append(f"fluctuations.predict needs the two-layer particle limit (limit.method = 'particles', depth 1); "
                  f"got method {lim['method']!r}, depth {model['depth']}. Deep networks at L >= 2 need the DMFT "
                  "propagator (linear response of the DMFT fixed point), which is not built; set "
                  "fluctuations.predict = false")
        return no, lab
    if dyn["temperature"] > 0:
        no.append("fluctuations.predict: with dynamics.temperature > 0 (Langevin) the noise is not a deterministic "
                  "map of the initial measure, so the delta method does not apply; set temperature = 0")
    if dyn["reaction_rate"] > 0:
        no.append("fluctuations.predict: with dynamics.reaction_rate > 0 the masses move (Wasserstein-Fisher-Rao) "
                  "or units jump (birth-death, stochastic); the adjoint covers transport with fixed masses only")
    if lim["expectation"] != "analytic" and lim["mc_resample"]:
        no.append("fluctuations.predict: limit.mc_resample = true draws fresh samples every step, so the limit is "
                  "not one deterministic map of the initial measure; set mc_resample = false (a fixed sample)")
    if lim["integrator"] not in ("euler", "heun", "rk4"):
        no.append(f"fluctuations.predict needs an explicit Runge-Kutta integrator with a discrete adjoint "
                  f"(euler, heun, rk4); limit.integrator = {lim['integrator']!r}")
    if tr["algorithm"] in ("online_sgd", "sgd"):
        lab.append(f"initialisation part only: train.algorithm = {tr['algorithm']!r} adds minibatch gradient noise "
                   "(of order lr/batch per unit time, independent of N) that the prediction does not include")
    if tr["algorithm"] in ("gd", "population_gd") and lim["integrator"] != "euler":
        lab.append(f"the networks step by Euler at lr = {tr['lr']}, the limit by {lim['integrator']} at dt = "
                   f"{lim['dt']}: the prediction is for the limit's map (an O(dt) difference)")
    return no, lab


def limit_data(cfg, task, expectation, dtype):
    """The data object the limit's flow takes expectations over (the same draws as
    :func:`meanfield.twolayer.limit.particle_step`), or None with ``mc_resample``."""
    if expectation == "analytic":
        return task.population
    if task.fixed_train is not None:
        x, y = (a.astype(dtype) for a in task.fixed_train)
    elif not cfg.limit.mc_resample:
        x, y = (a.astype(dtype) for a in task.sample(seeding.stream(cfg.run.seed, "mc"), cfg.limit.mc_samples))
    else:
        return None
    return Samples(x, y, task.loss)


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


def _field(cfg, model, backend, data):
    """The limit's drift (model velocity x transport rate, minus weight decay) and its VJP."""
    return drift_field(model, backend, data, cfg.dynamics.transport_rate, cfg.dynamics.weight_decay)


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


def _risk_sets(observer):
    out = []
    for name, d in (("risk_train", observer.train), ("risk_test", observer.test), ("risk_pop", observer.population)):
        if d is not None:
            out.append((name, d))
    return out


def prediction_memory_bytes(n, p, K, channels, stages, P, checkpoint=None, times=1):
    """Peak bytes of a prediction: the adjoint sweep, the VJP's (n, P) activations and the stored g."""
    sweep = adjoint_memory_bytes(n, p, K, channels, stages, checkpoint)
    vjp = 8 * (5 * n * max(P, 256) + 4 * (1 << 22))
    return sweep + vjp + 8 * times * channels * n


def _pick_times(steps, k):
    """Indices of ``k`` recording times spread evenly over the grid (the first and last included)."""
    T = len(steps)
    if k <= 0 or k >= T:
        return np.arange(T)
    return np.unique(np.round(np.linspace(0, T - 1, k)).astype(int))


def predict_fluctuations(cfg, setup=None, particles0=None, steps=None, times=None, checkpoint=None,
                         replicas=None, max_memory_gb=None, log=None) -> FluctuationPrediction:
    r"""Predict N·Var and N·Cov of every recorded output of a two-layer limit run from the run alone.

    Parameters
    ----------
    cfg : Config (or a finished :class:`~meanfield.core.result.Result`, whose config is used)
    setup : :class:`meanfield.twolayer.wing.ParticleSetup` or None (built from ``cfg``)
    particles0 : (n, p) the limit's initial particles (default: drawn as the run draws them)
    steps : (T,) the recording steps (default: the run's time grid)
    times : number of recording times to predict at (default ``fluctuations.times``; 0: all)
    checkpoint : checkpoint interval (default ``fluctuations.checkpoint``, 0: ⌈√K⌉)
    replicas : forward replicas R (default ``fluctuations.replicas``; 0: none)
    max_memory_gb : refuse above this estimate before allocating (default ``fluctuations.max_memory_gb``)

    Returns
    -------
    FluctuationPrediction
    """
    from ..core.grid import time_grid

    if hasattr(cfg, "summary") and hasattr(cfg, "config"):  # a Result
        cfg = cfg.config
    if isinstance(cfg, dict):
        from .. import config as _config

        cfg = _config.from_dict(cfg)
    fl = cfg.to_dict().get("fluctuations", {})
    times = fl.get("times", 8) if times is None else times
    checkpoint = (fl.get("checkpoint", 0) if checkpoint is None else checkpoint) or None
    replicas = fl.get("replicas", 0) if replicas is None else replicas
    max_memory_gb = fl.get("max_memory_gb", 4.0) if max_memory_gb is None else max_memory_gb
    log = log or (lambda s: None)
    no, labels = prediction_obstacles(cfg)
    if no:
        raise PredictionRefused("; ".join(no))
    if setup is None:
        from .wing import setup as _setup

        setup = _setup(cfg, log)
    model, backend = setup.model, setup.backend
    data = limit_data(cfg, setup.task, setup.expectation, np.float64)
    if particles0 is None:
        particles0 = model.draw(seeding.stream(cfg.run.seed, "init"), cfg.limit.particles)
    if steps is None:
        steps = time_grid(cfg).steps
    observer = setup.observer
    integ = get_integrator(cfg.limit.integrator)
    field = _field(cfg, model, backend, data)
    t0 = time.perf_counter()
    pred = predict_particle_system(model, backend, data, setup.points, _risk_sets(observer), particles0, steps,
                                   cfg.limit.dt, integ, field, times, checkpoint, max_memory_gb, labels)
    steps = pred.steps
    th0 = np.asarray(particles0, float)
    outputs = pred.outputs
    if replicas:
        pred.nvar_replicas = forward_replicas(cfg, model, backend, field, integ, th0, steps, observer, replicas,
                                              outputs, model.paired)
        pred.replicas = replicas
    pred.seconds = time.perf_counter() - t0
    return pred


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
    sel = _pick_times(steps, times)
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


def forward_replicas(cfg, model, backend, field, integ, th0, steps, observer, R, outputs, paired, eps=1e-3):
    r"""The forward-mode estimate: R random mass perturbations :math:`\delta\omega = \varepsilon(\xi-\bar\xi)/n`
    (ξ standard Gaussian; antithetic pairs share ξ) pushed through the batched forward map, the
    directional derivative by central differences (error O(ε²)); :math:`n\,E[(\delta O/\varepsilon)^2]`
    estimates N·Var of every output at every recording time, relative error :math:`\sqrt{2/R}`."""
    n = th0.shape[0]
    rng = seeding.stream(cfg.run.seed, "init", 1)  # a sub-stream: does not disturb the run's draws
    xi = rng.standard_normal((R, n // 2 if paired else n))
    if paired:
        xi = np.concatenate([xi, xi], axis=1)
    xi -= xi.mean(axis=1, keepdims=True)
    base = 1.0 / n
    mass = np.concatenate([base + eps * xi / n, base - eps * xi / n])  # (2R, n)
    th = np.broadcast_to(th0, (2 * R,) + th0.shape).copy()
    term = field.term()
    K = int(steps.max())
    rec = {}
    want = set(int(k) for k in steps)
    for k in range(K + 1):
        if k in want:
            o = observer(ParticleState(th, mass=mass))
            cols = [o["f"]] + [o[name][:, None] for name in outputs if name.startswith("risk")]
            rec[k] = np.concatenate(cols, axis=1)  # (2R, O)
        if k < K:
            th = integ.step(term, ParticleState(th, mass=mass), cfg.limit.dt).theta
    out = np.full((len(steps), len(outputs)), np.nan)
    for ti, k in enumerate(steps):
        v = rec[int(k)]
        jvp = (v[:R] - v[R:]) / (2 * eps)
        out[ti] = n * np.mean(jvp * jvp, axis=0)
    return out


def check_fluctuations(c, given=None) -> list:
    """Config check (registered): a requested prediction the run cannot give is refused at validation,
    and so is one whose memory estimate exceeds ``fluctuations.max_memory_gb``."""
    fl = c.get("fluctuations") or {}
    if not fl.get("predict"):
        return []
    no, _ = prediction_obstacles(c)
    if no:
        return no
    lim, t = c["limit"], c["time"]
    from ..deep.checks import is_deep, point_counts

    if is_deep(c):  # depth 1 (deeper is refused above): the mapped system at the networks' step
        P, Q = point_counts(c)
        K = int(round(t["t_max"] / c["train"]["lr"]))
        times = fl["times"] or t["records"]
        need = prediction_memory_bytes(fl["particles"], 1 + c["task"]["d"], K, (P + Q + 2) * times, 4, P,
                                       fl["checkpoint"] or None, times)
        if need > fl["max_memory_gb"] * 1e9:
            return [f"fluctuations.predict: estimated peak memory {need / 1e9:.2f} GB exceeds "
                    f"fluctuations.max_memory_gb = {fl['max_memory_gb']} ({fl['particles']} reference particles, "
                    f"{K} steps, {P + Q + 2} outputs at {times} times); lower fluctuations.times or "
                    "fluctuations.particles, or raise max_memory_gb"]
        return []
    K = int(round(t["t_max"] / lim["dt"]))
    O = c["eval"]["n_points"] + 3
    times = fl["times"] or t["records"]
    P = 0 if lim["expectation"] == "analytic" else lim["mc_samples"]
    p = 1 + c["task"]["d"] + int(c["model"]["bias"])
    need = prediction_memory_bytes(lim["particles"], p, K, O * times, 4, P, fl["checkpoint"] or None, times)
    if need > fl["max_memory_gb"] * 1e9:
        return [f"fluctuations.predict: estimated peak memory {need / 1e9:.2f} GB exceeds fluctuations.max_memory_gb "
                f"= {fl['max_memory_gb']} ({lim['particles']} particles, {K} steps, {O} outputs at {times} times); "
                "lower fluctuations.times or limit.particles, or raise max_memory_gb"]
    return []


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


def _register():
    from ..core.registry import register_config_check

    register_config_check(check_fluctuations)


_register()
