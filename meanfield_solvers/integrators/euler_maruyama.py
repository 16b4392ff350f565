r"""Euler–Maruyama for :math:`\mathrm d\theta = v(\theta; m)\,\mathrm dt + g(\theta)\odot\mathrm dW`.

.. math:: \theta_{n+1} = \theta_n + \Delta t\, v(\theta_n) + g(\theta_n)\odot\Delta W_n,
   \qquad \Delta W_n \sim \mathcal N(0, \Delta t\, I)\ \text{iid per entry},

with :math:`\Delta W_n` drawn from the state's stream (:meth:`meanfield_solvers.terms.Noise.increment`).

Orders
------
* deterministic (no noise, or :math:`g = 0`): order 1; without a Noise term the step is bitwise
  :func:`~meanfield_solvers.integrators.euler.euler`.
* strong order 1/2 for general multiplicative noise: the neglected Itô–Taylor term
  :math:`\tfrac12 g g'(\Delta W^2 - \Delta t)` has standard deviation :math:`O(\Delta t)` per step,
  and :math:`1/\Delta t` of them add up to :math:`O(\Delta t^{1/2})`.
* strong order 1 for additive noise (constant :math:`g`, e.g. :math:`\sqrt{2/\beta}` in mean-field
  Langevin dynamics): :math:`g' = 0` removes that term and EM coincides with Milstein's scheme.
* weak order 1 (stationary averages carry an :math:`O(\Delta t)` bias).
"""
from __future__ import annotations

from .base import Integrator, register_integrator
from .euler import euler

__all__ = ["EulerMaruyama"]


@register_integrator
class EulerMaruyama(Integrator):
    """Euler–Maruyama on a drift and an optional noise, masses held fixed (see the module docstring)."""

    name = "euler_maruyama"
    order = 1
    strong_order = 0.5
    accepts = frozenset({"drift", "noise"})

    def strong_order_for(self, terms) -> float:
        """1 for additive noise (or none), 1/2 for multiplicative noise."""
        noise = self.check(terms).get("noise")
        return 1.0 if noise is None or noise.additive else 0.5

    def advance(self, terms, state, dt):
        # (theta + dt*v) first, bitwise the Euler step, then + g*dW: the textbook expression
        # theta + dt*v(theta) + g(theta)*dW evaluated left to right, with g at the old theta
        theta = euler(terms["drift"].field(state.mass), state.theta, dt)
        noise = terms.get("noise")
        if noise is not None:
            theta += noise.displacement(state, dt)
        return state.replace(theta=theta)
