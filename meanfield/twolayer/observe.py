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
    """

    def __init__(self, model, backend, population, test, points, train=None, loss="square"):
        self.model, self.backend, self.loss = model, backend, loss
        self.population = (population if population is not None and loss == "square" and not model.supports(population)
                           else None)
        self.test = Samples(*test, loss) if test is not None else None
        self.train = Samples(*train, loss) if train is not None else None
        self.points = points

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
        return out
