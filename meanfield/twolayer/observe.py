"""The observables both sides record, computed by the same code for the limit and the networks.

The limit and the finite-width ensemble meet only here: risk on the population (closed form,
when the task has one), on a test sample and on the training set, and the function f at a fixed
set of test points. Everything accepts a leading seed axis: ``theta`` of shape (..., N, p).
"""
from __future__ import annotations

import numpy as np

from meanfield_solvers.models import Samples
from meanfield_solvers.state import ParticleState

__all__ = ["Observer"]


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
