r"""Trainers of finite-width deep ensembles (S seeds of one width as one batched computation).

All trainers discretise the same flow :math:`\dot\theta = v(\theta) = -c\,\nabla\hat L(\theta)` of
:mod:`~meanfield.deep.network` with a fixed step :math:`\eta` (= time advanced per step):

* ``gd`` — full-batch gradient descent, :math:`\theta\leftarrow\theta+\eta\,v(\theta)` (forward Euler).
  This is the dynamics whose :math:`N\to\infty` limit the discrete DMFT solves *exactly* at the same
  ``dt`` (docs/dmft.md §3.1): compare with ``limit.dt == train.lr``.
* ``flow`` — gradient flow integrated with Heun (order 2) or RK4 (order 4) at fixed step
  (:mod:`meanfield_solvers.particles.integrators`); approximates the continuous-time DMFT.
* ``sgd`` — multi-pass SGD on the fixed training set: B rows drawn uniformly with replacement,
  independently per seed and step.
* ``online_sgd`` — a fresh minibatch of B samples from the task per seed and step.

For minibatch algorithms :math:`\hat L` is the minibatch average, so one step still advances time η.

Optimiser (``train.optimizer``): ``'sgd'`` is the plain step above; ``'adam'`` replaces it, for ``gd``,
``sgd`` and ``online_sgd``, by Adam with the parametrisation's per-layer step sizes
(:mod:`meanfield.deep.optim`). ``flow`` is a flow, not a step rule, and takes no optimiser.
"""
from __future__ import annotations

import sys

import numpy as np

from meanfield_solvers.particles import get_integrator

from ..march import march
from .optim import OPTIMIZERS, Adam

__all__ = ["ALGORITHMS", "make_step", "train_ensemble", "stack_records"]

ALGORITHMS = ("gd", "flow", "sgd", "online_sgd")


class Recycler:
    """Output buffers of a plain step: a state array the step returned earlier is written again once nothing else
    refers to it.

    Why: a new S·n_params state every step is fresh memory that the kernel must fault in and zero page by page; at
    the residual benchmark size (528 MB per state) that was about a fifth of the step (README "Benchmark" paragraph
    of the residual section). A training loop drops the state of step k − 1 once it holds step k + 1, so the step
    keeps its last two outputs and reuses the older one when :func:`sys.getrefcount` shows that only this pool holds
    it (no caller, view, record or snapshot: a numpy view holds a reference to its base). Otherwise it allocates, as
    before; the values are the same either way (every entry of the output is written). Peak memory is unchanged (the
    input and the output of a step); between steps two states are held instead of one.
    """

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.held = []
        self.reused = 0
        # the count of an array held by a list only, read the same way as in take(): what getrefcount reports
        # for the list's own reference plus the temporaries of the reading (interpreter-version dependent)
        self._alone = self._count([np.empty(0)], 0)

    @staticmethod
    def _count(held, i):
        return sys.getrefcount(held[i])

    def take(self, like):
        """A held array shaped like ``like`` that nothing else refers to (removed from the pool), or None."""
        for i in range(len(self.held)):
            a = self.held[i]
            if a is not like and a.shape == like.shape and a.dtype == like.dtype \
                    and self._count(self.held, i) <= self._alone + 1:  # + 1: the local name ``a``
                del self.held[i]
                self.reused += 1
                return a
        return None

    def hold(self, a):
        """Remember the output ``a`` (the oldest beyond ``keep`` is forgotten); returns ``a``."""
        self.held.append(a)
        if len(self.held) > self.keep:
            self.held.pop(0)
        return a


def make_step(net, algorithm: str, lr: float, *, train=None, integrator: str = "rk4", batch: int = 32,
              sampler=None, rng=None, dtype=None, optimizer: str = "sgd", adam=None):
    r"""Return ``step(theta, k) -> theta_next`` for the ensemble state of ``net``.

    Parameters
    ----------
    net : :class:`~meanfield.deep.network.DeepNet`
    algorithm : one of :data:`ALGORITHMS`
    lr : float, step η
    train : (X (P, D), y (P,)), the training set (gd, flow, sgd)
    integrator : 'heun' | 'rk4' (flow; 'euler' is gd)
    batch : int, minibatch size B (sgd, online_sgd)
    sampler : callable (rng, n, batch=(S,)) -> (x (S, n, D), y (S, n)) (online_sgd)
    rng : numpy Generator (sgd, online_sgd)
    dtype : numpy dtype of the data fed to the network (None: as given); use the state's dtype
    optimizer : 'sgd' (the plain step) or 'adam' (:class:`meanfield.deep.optim.Adam`; gd, sgd, online_sgd)
    adam : :class:`meanfield.deep.optim.AdamSpec` or None (defaults)
    Where minibatches are drawn (sgd, online_sgd), ``step.streams = (rng,)``: the stream a checkpoint
    saves and restores (:mod:`meanfield.checkpoint`).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    if algorithm in ("gd", "flow", "sgd"):
        if train is None:
            raise ValueError(f"algorithm {algorithm!r} needs a training set")
        X, y = (np.asarray(a, dtype=dtype) for a in train)
    if optimizer == "adam":
        return _adam_step(net, algorithm, lr, X if algorithm in ("gd", "sgd") else None,
                          y if algorithm in ("gd", "sgd") else None, batch, sampler, rng, dtype, adam)
    pool = Recycler()  # output buffers of the plain steps (see Recycler)
    if algorithm == "gd":
        def step(th, k):
            return pool.hold(net.update(th, X, y, lr, out=pool.take(th))[1])

        step.recycler = pool
        return step
    if algorithm == "flow":
        integ = get_integrator(integrator)

        def vel(th):
            return net.velocity(th, X, y)[1]

        return lambda th, k: integ(vel, th, lr)
    if algorithm == "sgd":
        P = X.shape[0]

        def step(th, k):
            idx = rng.integers(0, P, size=(th.shape[0], batch))
            return pool.hold(net.update(th, X[idx], y[idx], lr, out=pool.take(th))[1])

        step.streams, step.recycler = (rng,), pool
        return step
    if algorithm == "online_sgd":
        if sampler is None:
            raise ValueError("online_sgd needs a sampler")

        def step(th, k):
            xb, yb = sampler(rng, batch, batch=(th.shape[0],))
            return pool.hold(net.update(th, np.asarray(xb, dtype=dtype or th.dtype),
                                        np.asarray(yb, dtype=dtype or th.dtype), lr, out=pool.take(th))[1])

        step.streams, step.recycler = (rng,), pool
        return step
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")


def _adam_step(net, algorithm, lr, X, y, batch, sampler, rng, dtype, spec):
    """The Adam step of ``algorithm`` (the same batches as the plain step draws)."""
    opt = Adam(net, lr, spec)
    # what a checkpoint saves besides the weights: the moments (step.memory) and the data stream
    if algorithm == "gd":
        def step(th, k):
            return opt(th, X, y)

        step.memory = opt
        return step
    if algorithm == "sgd":
        P = X.shape[0]

        def step(th, k):
            idx = rng.integers(0, P, size=(th.shape[0], batch))
            return opt(th, X[idx], y[idx])

        step.memory, step.streams = opt, (rng,)
        return step
    if algorithm == "online_sgd":
        if sampler is None:
            raise ValueError("online_sgd needs a sampler")

        def step(th, k):
            xb, yb = sampler(rng, batch, batch=(th.shape[0],))
            return opt(th, np.asarray(xb, dtype=dtype or th.dtype), np.asarray(yb, dtype=dtype or th.dtype))

        step.memory, step.streams = opt, (rng,)
        return step
    if algorithm == "flow":
        raise ValueError("train.algorithm = 'flow' integrates the gradient flow; it takes no optimizer (use 'gd' "
                         "with train.optimizer = 'adam')")
    raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}")


def stack_records(records, S, template=None):
    """Stack observer dicts over recording times: key -> (T, S, ...); unreached records are NaN.
    ``template``: the refused observation, for keys and shapes when no record was accepted."""
    first = next((r for r in records if r is not None), template)
    if first is None:
        return {}
    out = {}
    for key, v in first.items():
        v = np.asarray(v)
        out[key] = np.stack([np.asarray(r[key], dtype=np.float64) if r is not None else np.full(v.shape, np.nan)
                             for r in records])
    return out


def train_ensemble(net, theta0, step, record_steps, lr, observe, desc="", progress=False, health=None):
    """March an ensemble and record: returns ``(stacked records (T, S, ...), MarchResult)``.

    ``health``: the record criteria (:class:`meanfield.health.Health`; None: the observer's own).

    ``record_steps`` may repeat or be unsorted: records are returned in the given order.
    """
    record_steps = np.asarray(record_steps, dtype=np.int64)
    uniq, inv = np.unique(record_steps, return_inverse=True)
    res = march(step, theta0, uniq, lr, observe, desc=desc, progress=progress, health=health)
    rec = stack_records(res.records, theta0.shape[0], res.refused)
    return {k: v[inv] for k, v in rec.items()}, res
