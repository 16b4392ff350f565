r"""Finite-width training of S seeds × width N as one batched computation.

Every algorithm is the Euler discretisation, with step :math:`\eta`, of the same flow as the
limit, with the expectation replaced by its own estimator:

.. math:: \theta_i \leftarrow \theta_i - \eta\,\frac{N}{\alpha^2}\,\Lambda\,\nabla_{\theta_i}\hat L,

so one step advances mean-field time by :math:`\eta` at every width and every α.

* ``online_sgd``: :math:`\hat L` on a fresh minibatch of B samples per step and per seed.
* ``sgd``: multi-pass SGD on a fixed training set of P samples (shared by the seeds):
  minibatches of B rows drawn uniformly with replacement, independently per seed.
* ``gd``: full-batch gradient descent on the training set.
* ``population_gd``: exact population gradient (the model's closed forms).
"""
from __future__ import annotations

import numpy as np

from meanfield_solvers.models import Samples

from .dynamics import active, noisy, side_integrator, side_terms
from .resident import resident_flow

__all__ = ["sgd_step"]


def sgd_step(cfg, model, backend, task, train_set, rngs, S, dtype, log=None):
    """Return ``(step, residency)``: ``step(state, k) -> state`` for positions of shape (S, N, p).

    ``rngs`` holds one generator per seed, so a network's minibatches do not depend on how many
    other seeds are trained beside it. ``residency`` is None (host arrays) or the GPU-resident
    flow (an Euler step of size lr) whose device positions ``step`` maps. Where minibatches are
    drawn, ``step.streams`` holds ``rngs`` (saved and restored by checkpoints, :mod:`meanfield.checkpoint`).
    """
    lr, B, loss, alg = cfg.train.lr, cfg.train.batch, task.loss, cfg.train.algorithm
    pop = task.population if alg == "population_gd" else None
    flow = None
    if not active(cfg):  # the resident GPU flow steps the noiseless drift only
        flow = resident_flow(backend, model, "euler", lr, dtype, loss, pop, log, "the networks")
    elif getattr(backend, "name", "") == "cuda" and log is not None:
        log("run.backend = cuda: the networks step with host-resident neurons (the resident GPU flow has no "
            "noise or weight-decay term); the results are the same")
    # noisy GD/SGD is the Euler-Maruyama step of the Langevin flow (plain Euler without noise)
    euler = side_integrator(cfg, "euler_maruyama" if noisy(cfg) else "euler")

    def terms_over(data):  # the side's terms (weighted networks / birth-death on the neurons included)
        return side_terms(cfg, model, backend, data)

    def on_device(st):
        return st.replace(theta=flow.step(st.theta), step=st.step + 1)

    if alg == "population_gd":
        if flow is not None:
            return (lambda st, k: on_device(st)), flow
        terms = terms_over(pop)
        return (lambda st, k: euler.step(terms, st, lr)), None
    if alg == "gd":
        x, y = train_set
        if flow is not None:
            flow.set_samples(x, y)  # uploaded once
            return (lambda st, k: on_device(st)), flow
        terms = terms_over(Samples(x, y, loss))
        return (lambda st, k: euler.step(terms, st, lr)), None
    if alg == "sgd":
        x, y = train_set
        P = x.shape[0]
        if flow is not None:
            flow.set_train(x, y)  # uploaded once: each step sends only the minibatch indices

        def step(st, k):
            idx = np.stack([r.integers(0, P, size=B) for r in rngs])
            if flow is not None:
                flow.set_batch_indices(idx)
                return on_device(st)
            return euler.step(terms_over(Samples(x[idx], y[idx], loss)), st, lr)

        step.streams = tuple(rngs)
        return step, flow

    def step(st, k):
        draws = [task.sample(r, B) for r in rngs]
        xb = np.stack([d[0] for d in draws]).astype(dtype, copy=False)
        yb = np.stack([d[1] for d in draws]).astype(dtype, copy=False)
        if flow is not None:
            flow.set_samples(xb, yb)
            return on_device(st)
        return euler.step(terms_over(Samples(xb, yb, loss)), st, lr)

    step.streams = tuple(rngs)
    return step, flow
