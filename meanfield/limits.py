r"""Infinite-width methods: adapters from a model + task to a solver in :mod:`solvers`.

``particles``: the two-layer mean-field flow :math:`\dot\theta_i = v(\theta_i;\mu_t)` of M
particles, integrated with Euler/Heun/RK4 at fixed dt in mean-field time. Expectations over x are

* ``analytic``: exact population expectations (Gaussian inputs; linear/erf/relu; square loss),
  O(M²) pairwise interactions per velocity evaluation;
* ``mc`` with ``mc_resample = false``: the empirical risk of one fixed sample of M inputs drawn
  once (for a dataset: all its rows) — the flow is then the exact mean-field limit of training on
  that sample;
* ``mc`` with ``mc_resample = true``: a fresh sample of M inputs at every step (all stages of one
  RK step share it), an unbiased stochastic approximation of the population flow.
"""
from __future__ import annotations

from solvers.models import Samples
from solvers.particles import get_integrator

from . import seeding
from .resident import resident_flow

__all__ = ["particle_step"]


def particle_step(cfg, model, backend, task, expectation, dtype, log=None):
    """Return ``(step, residency)`` for the particle flow of a validated config.

    ``step(theta, k) -> theta``; ``residency`` is None (host arrays) or the GPU-resident flow
    whose device states ``step`` maps (see :func:`meanfield.march.march`).
    """
    integ = get_integrator(cfg.limit.integrator)
    dt = cfg.limit.dt
    loss = task.loss
    flow = resident_flow(backend, model, cfg.limit.integrator, dt, dtype, loss,
                         task.population if expectation == "analytic" else None, log, "the limit")
    if expectation == "analytic":
        pop = task.population
        if flow is not None:
            return (lambda th, k: flow.step(th)), flow

        def v(th):
            return model.risk_velocity(backend, th, pop)[1]

        return (lambda th, k: integ(v, th, dt)), None

    rng = seeding.stream(cfg.run.seed, "mc")
    if task.fixed_train is not None:
        x, y = (a.astype(dtype) for a in task.fixed_train)
    elif not cfg.limit.mc_resample:
        x, y = (a.astype(dtype) for a in task.sample(rng, cfg.limit.mc_samples))
    else:
        M = cfg.limit.mc_samples

        def step(th, k):
            xs, ys = (a.astype(dtype) for a in task.sample(rng, M))
            if flow is not None:
                flow.set_samples(xs, ys)
                return flow.step(th)
            return integ(lambda t: model.risk_velocity(backend, t, Samples(xs, ys, loss))[1], th, dt)

        return step, flow
    if flow is not None:
        flow.set_samples(x, y)  # uploaded once
        return (lambda th, k: flow.step(th)), flow
    return (lambda th, k: integ(lambda t: model.risk_velocity(backend, t, Samples(x, y, loss))[1], th, dt)), None
