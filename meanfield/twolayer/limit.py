r"""The particle limit of a particle model: its mean-field flow, stepped by a registered integrator.

``particles``: the flow :math:`\dot\theta_i = v(\theta_i;\mu_t)` of M particles, integrated with
an integrator of :mod:`meanfield_solvers.integrators` (Euler/Heun/RK4) at fixed dt in mean-field time.
Expectations over x are

* ``analytic``: exact population expectations (the model's closed forms; for the two-layer model
  Gaussian inputs, linear/erf/relu, square loss), O(M²) pairwise interactions per evaluation;
* ``mc`` with ``mc_resample = false``: the empirical risk of one fixed sample of M inputs drawn
  once (for a dataset: all its rows) — the flow is then the exact mean-field limit of training on
  that sample;
* ``mc`` with ``mc_resample = true``: a fresh sample of M inputs at every step (all stages of one
  RK step share it), an unbiased stochastic approximation of the population flow.
"""
from __future__ import annotations

import time

import numpy as np

from meanfield_solvers.models import Samples
from meanfield_solvers.state import ParticleState

from .. import seeding
from ..core.registry import LimitMethod, Side, register_limit_method
from ..health import Health
from ..march import march
from .dynamics import active, initial_masses, needs_stream, side_integrator, side_terms
from .observe import primary_risk
from .resident import resident_flow
from . import prediction as _prediction  # noqa: F401  (registers the [fluctuations] config check)

__all__ = ["particle_step", "ParticlesMethod"]


def _resident_step(flow):
    return lambda st, k: st.replace(theta=flow.step(st.theta), step=st.step + 1)


def particle_step(cfg, model, backend, task, expectation, dtype, log=None):
    """Return ``(step, residency)`` for the particle flow of a validated config.

    ``step(state, k) -> state`` on :class:`meanfield_solvers.state.ParticleState`; ``residency`` is None
    (host arrays) or the GPU-resident flow whose device positions ``step`` maps (see
    :func:`meanfield.march.march`). With a resampled Monte Carlo expectation, ``step.streams`` holds
    the stream the samples are drawn from (saved and restored by checkpoints, :mod:`meanfield.checkpoint`).
    """
    integ = side_integrator(cfg, cfg.limit.integrator)
    dt = cfg.limit.dt
    loss = task.loss
    flow = None
    if not active(cfg):  # the resident GPU flow steps the noiseless drift only
        flow = resident_flow(backend, model, cfg.limit.integrator, dt, dtype, loss,
                             task.population if expectation == "analytic" else None, log, "the limit")
    elif getattr(backend, "name", "") == "cuda" and log is not None:
        log("run.backend = cuda: the limit steps with host-resident particles (the resident GPU flow has no "
            "noise or weight-decay term); the results are the same")

    def terms_over(data):
        return side_terms(cfg, model, backend, data)

    if expectation == "analytic":
        if flow is not None:
            return _resident_step(flow), flow
        terms = terms_over(task.population)
        return (lambda st, k: integ.step(terms, st, dt)), None

    rng = seeding.stream(cfg.run.seed, "mc")
    if task.fixed_train is not None:
        x, y = (a.astype(dtype) for a in task.fixed_train)
    elif not cfg.limit.mc_resample:
        x, y = (a.astype(dtype) for a in task.sample(rng, cfg.limit.mc_samples))
    else:
        M = cfg.limit.mc_samples

        def step(st, k):
            xs, ys = (a.astype(dtype) for a in task.sample(rng, M))
            if flow is not None:
                flow.set_samples(xs, ys)
                return _resident_step(flow)(st, k)
            return integ.step(terms_over(Samples(xs, ys, loss)), st, dt)

        step.streams = (rng,)
        return step, flow
    if flow is not None:
        flow.set_samples(x, y)  # uploaded once
        return _resident_step(flow), flow
    terms = terms_over(Samples(x, y, loss))
    return (lambda st, k: integ.step(terms, st, dt)), None


class ParticlesMethod(LimitMethod):
    """``limit.method = 'particles'``: the mean-field flow of ``limit.particles`` particles of any
    particle model (the two-layer network's Wasserstein gradient flow, or a registered model's)."""

    name = "particles"
    family = "particle"
    doc = "the mean-field particle flow of a particle model (two-layer networks, registered model kinds)"

    def check(self, c):
        p = []
        if c["model"]["depth"] >= 2:
            p.append(f"limit.method = 'particles' is the two-layer mean-field limit (depth 1); with model.depth = "
                     f"{c['model']['depth']} use 'dmft' (sampled DMFT), 'dmft_linear' (linear activation), 'ntk' "
                     "(gamma0 -> 0) or 'none'")
            return p
        from ..core.registry import get_model_kind

        why = get_model_kind(c["model"]["kind"]).analytic_obstacles(c)
        if c["limit"]["expectation"] == "analytic" and why:
            p.append("limit.expectation = 'analytic' is impossible here: " + "; ".join(why)
                     + ". Use limit.expectation = 'mc'")
        return p

    def run(self, st, grid, progress, log) -> Side:
        cfg, model = st.cfg, st.model
        from .wing import snapshot_indices, stack_records

        t = grid.t
        snap_idx = snapshot_indices(cfg, len(t))
        particles0 = model.draw(seeding.stream(cfg.run.seed, "init"), cfg.limit.particles)
        step, residency = particle_step(cfg, model, st.backend, st.task, st.expectation, st.dtype, log)
        rng = seeding.stream(cfg.run.seed, "noise") if needs_stream(cfg) else None
        observe = st.observer
        entropy_note = []
        if cfg.dynamics.temperature > 0:
            observe = _with_free_energy(st.observer, model, cfg.dynamics.temperature, entropy_note)
        t0 = time.perf_counter()
        # masses only when they move (WFR, a floating population): otherwise the uniform 1/N code path
        theta0, mass = initial_masses(cfg, particles0.astype(st.dtype))
        res = march(step, ParticleState(theta0, mass=mass, rng=rng), grid.steps, cfg.limit.dt,
                    observe,
                    snap_idx, desc="limit", progress=progress, residency=residency,
                    health=Health.of(st.observer, cfg.train.divergence_factor))
        side = Side(summary={"seconds_limit": time.perf_counter() - t0}, extra={"particles0": particles0})
        rec = stack_records(res.records, res.refused)
        primary = primary_risk(rec, st.observer.available)
        a = side.arrays
        a.update(risk_mf=primary, risk_mf_test=rec["risk_test"], risk_mf_train=rec["risk_train"], f_mf=rec["f"])
        if "energy" in rec:
            a["energy_mf"] = rec["energy"]
        if "entropy" in rec:
            a["entropy_mf"], a["free_energy_mf"] = rec["entropy"], rec["free_energy"]
            side.messages += entropy_note[:1]
        ns = min(theta0.shape[0], cfg.eval.max_snapshot_particles)  # (slots, for a floating population)
        a["snap_t"] = t[snap_idx]
        a["particles_mf"] = np.stack([res.snapshots.get(i, np.full_like(theta0, np.nan))[:ns] for i in snap_idx]) \
            if len(snap_idx) else np.zeros((0, ns, model.p))
        a["particles_mf_final"] = res.theta[:ns]
        if mass is not None:  # the masses at the snapshot times and at the end
            a["masses_mf"] = np.stack([res.snapshot_masses.get(i, np.full(theta0.shape[0], np.nan))[:ns]
                                       for i in snap_idx]) if len(snap_idx) else np.zeros((0, ns))
            a["masses_mf_final"] = res.state.mass[:ns]
        if cfg.fluctuations.predict and res.status == "completed":
            from .prediction import predict_fluctuations, record

            pred = predict_fluctuations(cfg, setup=st, particles0=particles0, steps=grid.steps, log=log)
            record(pred, cfg, a, side.summary)
            side.messages += [f"fluctuation prediction: {x}" for x in pred.labels]
        for note in res.notes:  # a risk at its precision floor: recorded as NaN from there on
            side.messages.append(note)
            log(note)
        if res.status != "completed":
            side.diverged.append({"side": "limit", "status": res.status, "step": res.diverged_step,
                                  "time": res.diverged_time, "kept_step": res.kept_step, "message": res.message})
            log(res.message)
        return side


def _with_free_energy(observer, model, tau, notes):
    r"""``observer`` plus the entropy H(μ) of the particles over the trained coordinates (k-nearest-
    neighbour estimate, :func:`meanfield.analysis.entropy.knn_entropy`, masses as weights) and the free
    energy F = E − τH. Where the estimator cannot vouch for the number (too few particles for the
    dimension, coincident particles, ...), both are NaN and the reason is kept once in ``notes``."""
    from ..analysis.entropy import entropy_reliable, knn_entropy

    trained = np.asarray(model.lr_multipliers) > 0

    def observe(state):
        out = observer(state)
        x, w = np.asarray(state.theta)[..., trained], state.mass
        if w is not None:  # empty slots of a floating population are not particles of the measure
            x, w = x[w > 0], w[w > 0]
        n_eff = x.shape[-2] if w is None else 1.0 / np.sum((w / w.sum()) ** 2)
        ok, why = entropy_reliable(int(n_eff), x.shape[-1])
        est = knn_entropy(x, weights=w) if ok else None
        if est is not None and est.reason:
            ok, why = False, est.reason
        if not ok:
            if not notes:
                notes.append(f"entropy and free energy of the limit not reported: {why}")
            out["entropy"] = out["free_energy"] = np.nan
        else:
            out["entropy"] = est.value
            out["free_energy"] = out["energy"] - tau * est.value
        return out

    return observe


register_limit_method(ParticlesMethod())
