"""The observables both sides record, computed by the same code for the limit and the networks.

The limit and the finite-width ensemble meet only here: risk on the population (closed form,
when the task has one), on a test sample and on the training set, and the function f at a fixed
set of test points. Everything accepts a leading seed axis: ``theta`` of shape (..., N, p).
"""
from __future__ import annotations

import numpy as np

from meanfield_solvers.losses import loss_and_residual
from meanfield_solvers.models import Samples
from meanfield_solvers.state import ParticleState

__all__ = ["Observer", "primary_risk"]

#: the primary risk of a side: the first of these its observer computes
PRIMARY_ORDER = ("risk_pop", "risk_test", "risk_train")


def primary_risk(rec, available):
    """The primary risk curve of stacked records ``rec``: population, else test, else training risk,
    the first one the observer declared ``available`` (a risk that is NaN by design is never chosen)."""
    for name in PRIMARY_ORDER:
        if name in available:
            return rec[name]
    return rec["risk_pop"]  # nothing available: the side failed its first record (meanfield.health)


class Observer:
    """Evaluate the recorded observables of particle/neuron arrays.

    Parameters
    ----------
    model : meanfield_solvers.models.ParticleModel
    backend : particle backend
    population : GaussianPopulation or None
        Used for the population risk when given and the loss is square.
    test : (x, y) test sample
    points : (Q, d) array where f is recorded
    train : (x, y) or None, the fixed training set
    loss : str
    weight_decay : float or None
        With a value (``[dynamics]`` active), also record ``energy``: the regularised energy
        ``energy_scale * R + (λ/2) Σᵢ mᵢ |θᵢ|²`` (trained coordinates), R the primary risk
        (population, else training, else test).

    Attributes
    ----------
    available : tuple of str
        The risks this observer computes (``risk_pop`` with a closed-form population, ``risk_test``
        with a non-empty test sample, ``risk_train`` with a training set); the others are NaN by
        design. Every available one must be finite and in range at every record
        (:class:`meanfield.health.Health`).
    scale : float
        The target's scale: the largest risk of the zero predictor over the available data
        (the divergence criterion's floor).

    A closed form that subtracts large terms (the model's :meth:`risk_rounding`) adds
    ``risk_pop_rounding``, the bound below which ``risk_pop`` has lost its precision.
    """

    def __init__(self, model, backend, population, test, points, train=None, loss="square", weight_decay=None):
        self.model, self.backend, self.loss = model, backend, loss
        self.population = (population if population is not None and loss == "square" and not model.supports(population)
                           else None)
        self.test = Samples(*test, loss) if test is not None else None
        self.train = Samples(*train, loss) if train is not None else None
        self.points = points
        # with [dynamics]: the regularised energy E = energy_scale * R + (lambda/2) sum_i m_i |theta_i|^2
        # over the trained coordinates (those the decay acts on)
        self.weight_decay = weight_decay
        self._trained = np.asarray(model.lr_multipliers) > 0
        self.available = tuple(name for name, have in (("risk_pop", self.population is not None),
                                                       ("risk_test", self.test is not None and len(self.test.y) > 0),
                                                       ("risk_train", self.train is not None and len(self.train.y) > 0))
                               if have)
        self.scale = self._zero_predictor_risk(backend)

    def _zero_predictor_risk(self, backend) -> float:
        """max over the available data of the risk of f = 0 (0.5 E y^2 for the square loss)."""
        out = [0.0]
        second = getattr(self.population, "target_second_moment", None)  # a model kind's own population may lack it
        if second is not None:
            out.append(0.5 * float(second(backend)))
        for data in (self.test, self.train):
            if data is not None and len(data.y):
                y = np.asarray(data.y, dtype=np.float64)
                out.append(float(np.mean(loss_and_residual(self.loss, y, np.zeros_like(y))[0])))
        return max(out)

    def __call__(self, state) -> dict:
        """A dict of arrays with the leading axes of the positions: risk_pop, risk_test, risk_train, f.

        ``state``: a :class:`meanfield_solvers.state.ParticleState` (its masses are used) or a positions array.
        """
        theta, mass = (state.theta, state.mass) if isinstance(state, ParticleState) else (state, None)
        batch = theta.shape[:-2]
        nan = np.full(batch, np.nan)
        out = {}
        if self.population is not None:
            out["risk_pop"] = self.model.risk_velocity(self.backend, theta, self.population, mass=mass, velocity=False)[0]
            bound = self.model.risk_rounding(self.backend, theta, self.population, mass=mass)
            if bound is not None:
                out["risk_pop_rounding"] = bound
        else:
            out["risk_pop"] = nan
        if self.test is not None:
            out["risk_test"] = self.model.risk_velocity(self.backend, theta, self.test, mass=mass, velocity=False)[0]
        else:
            out["risk_test"] = nan
        if self.train is not None:
            out["risk_train"] = self.model.risk_velocity(self.backend, theta, self.train, mass=mass, velocity=False)[0]
        else:
            out["risk_train"] = nan
        out["f"] = self.model.output(self.backend, theta, self.points, mass=mass)
        if self.weight_decay is not None:
            primary = out["risk_pop"] if self.population is not None else (
                out["risk_train"] if self.train is not None else out["risk_test"])
            sq = np.sum(theta[..., self._trained] ** 2, axis=-1)
            mean_sq = sq.mean(axis=-1) if mass is None else np.sum(mass * sq, axis=-1)
            out["energy"] = self.model.energy_scale * primary + 0.5 * self.weight_decay * mean_sq
        return out
