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

import numpy as np

from meanfield_solvers.integrators import get_integrator
from meanfield_solvers.models import Samples
from meanfield_solvers.state import ParticleState

from .. import seeding
from ..core.prediction import (FluctuationPrediction, PredictionRefused, coupling_factor, drift_field,  # noqa: F401
                               influence_variance, pick_times, predict_particle_system, prediction_memory_bytes,
                               record)

# the shared core (meanfield.core.prediction) is re-exported: this module's names stay where they were
__all__ = ["FluctuationPrediction", "PredictionRefused", "prediction_obstacles", "predict_fluctuations",
           "limit_data", "predict_particle_system", "drift_field", "coupling_factor", "influence_variance",
           "prediction_memory_bytes", "record"]


def prediction_obstacles(cfg) -> tuple[list, list]:
    """``(refusals, labels)`` for a validated config: reasons the prediction is impossible, and caveats
    that limit what it covers (e.g. online SGD: the initialisation part only)."""
    c = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    lim, dyn, tr, model = c["limit"], c["dynamics"], c["train"], c["model"]
    no, lab = [], []
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


def _field(cfg, model, backend, data):
    """The limit's drift (model velocity x transport rate, minus weight decay) and its VJP."""
    return drift_field(model, backend, data, cfg.dynamics.transport_rate, cfg.dynamics.weight_decay)


def _risk_sets(observer):
    out = []
    for name, d in (("risk_train", observer.train), ("risk_test", observer.test), ("risk_pop", observer.population)):
        if d is not None:
            out.append((name, d))
    return out


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
    from ..config import family_of

    if not fl.get("predict") or family_of(c) == "deep":  # deep runs: meanfield.deep.prediction checks them
        return []
    no, _ = prediction_obstacles(c)
    if no:
        return no
    lim, t = c["limit"], c["time"]
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


def _register():
    from ..core.registry import register_config_check

    register_config_check(check_fluctuations)


_register()
