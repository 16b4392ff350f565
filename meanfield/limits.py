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

from solvers.particles import get_integrator, mc_risk_velocity, population_risk_velocity

from . import seeding

__all__ = ["particle_step"]


def particle_step(cfg, model, backend, task, expectation, dtype):
    """Return ``step(theta, k) -> theta`` for the particle flow of a validated config."""
    integ = get_integrator(cfg.limit.integrator)
    dt = cfg.limit.dt
    loss = task.loss
    if expectation == "analytic":
        pop = task.population

        def v(th):
            return population_risk_velocity(model, backend, th, pop)[1]

        return lambda th, k: integ(v, th, dt)

    rng = seeding.stream(cfg.run.seed, "mc")
    if task.fixed_train is not None:
        x, y = (a.astype(dtype) for a in task.fixed_train)
    elif not cfg.limit.mc_resample:
        x, y = (a.astype(dtype) for a in task.sample(rng, cfg.limit.mc_samples))
    else:
        M = cfg.limit.mc_samples

        def step(th, k):
            xs, ys = (a.astype(dtype) for a in task.sample(rng, M))
            return integ(lambda t: mc_risk_velocity(model, backend, t, xs, ys, loss)[1], th, dt)

        return step
    return lambda th, k: integ(lambda t: mc_risk_velocity(model, backend, t, x, y, loss)[1], th, dt)
