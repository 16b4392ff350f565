r"""The particle limit of a particle model: its mean-field flow, stepped by a registered integrator.

``particles``: the flow :math:`\dot\theta_i = v(\theta_i;\mu_t)` of M particles, integrated with
an integrator of :mod:`solvers.integrators` (Euler/Heun/RK4) at fixed dt in mean-field time.
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

from solvers.integrators import get_integrator
from solvers.models import Samples
from solvers.terms import Drift

from .. import seeding
from .resident import resident_flow

__all__ = ["particle_step", "drift"]


def drift(model, backend, data):
    r"""The model's Wasserstein drift :math:`-\Lambda\nabla\Psi` over ``data`` as a :class:`Drift` term."""
    def velocity(theta, mass):
        return model.risk_velocity(backend, theta, data, mass=mass)[1]

    return Drift(velocity)


def _resident_step(flow):
    return lambda st, k: st.replace(theta=flow.step(st.theta), step=st.step + 1)


def particle_step(cfg, model, backend, task, expectation, dtype, log=None):
    """Return ``(step, residency)`` for the particle flow of a validated config.

    ``step(state, k) -> state`` on :class:`solvers.state.ParticleState`; ``residency`` is None
    (host arrays) or the GPU-resident flow whose device positions ``step`` maps (see
    :func:`meanfield.march.march`).
    """
    integ = get_integrator(cfg.limit.integrator)
    dt = cfg.limit.dt
    loss = task.loss
    flow = resident_flow(backend, model, cfg.limit.integrator, dt, dtype, loss,
                         task.population if expectation == "analytic" else None, log, "the limit")
    if expectation == "analytic":
        if flow is not None:
            return _resident_step(flow), flow
        terms = drift(model, backend, task.population)
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
            return integ.step(drift(model, backend, Samples(xs, ys, loss)), st, dt)

        return step, flow
    if flow is not None:
        flow.set_samples(x, y)  # uploaded once
        return _resident_step(flow), flow
    terms = drift(model, backend, Samples(x, y, loss))
    return (lambda st, k: integ.step(terms, st, dt)), None
