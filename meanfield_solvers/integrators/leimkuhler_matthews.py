r"""The Leimkuhler–Matthews scheme for overdamped Langevin dynamics with additive noise.

.. math:: \theta_{n+1} = \theta_n + \Delta t\, v(\theta_n) + \tfrac12\, g \odot (\Delta W_n + \Delta W_{n+1}),
   \qquad \Delta W_n \sim \mathcal N(0, \Delta t\, I)\ \text{iid},

the high-friction limit of the BAOAB splitting (Leimkuhler & Matthews 2013, "Rational construction
of stochastic numerical methods for molecular sampling"; Leimkuhler, Matthews & Stoltz 2016). Each
increment is used by two consecutive steps: the state carries :math:`\Delta W_{n+1}` to the next
step (:attr:`~meanfield_solvers.state.ParticleState.carry`); the first step draws two. Its cost is
that of Euler–Maruyama (one drift evaluation and one Gaussian draw per step).

Why: stationary averages
------------------------
The scheme's invariant law is second-order accurate, where Euler–Maruyama's is first-order: for
smooth φ, :math:`\langle\varphi\rangle_h - \langle\varphi\rangle = O(\Delta t^2)` (EM: O(Δt)).
For mean-field Langevin this is the number one wants: the free energy and the Gibbs measure a long
run reaches. Exactly for an Ornstein–Uhlenbeck process :math:`d\theta = -k\theta\,dt +
\sqrt{2\tau}\,dW` (derived, tested): with :math:`a = 1 - k\Delta t` and
:math:`c = \sqrt{2\tau}/2`, :math:`\theta_{n+1} = a\theta_n + c(\Delta W_n + \Delta W_{n+1})` is an
ARMA(1, 1) with :math:`\operatorname{Cov}(\theta_n, \Delta W_n) = c\,\Delta t`, so its stationary
variance solves :math:`V = a^2 V + 2c^2\Delta t + 2ac^2\Delta t`, i.e.

.. math:: V = \frac{2c^2\Delta t (1 + a)}{1 - a^2} = \frac{2c^2\Delta t}{1 - a} = \frac{\tau}{k}

for every stable :math:`\Delta t < 2/k`: the exact variance (Euler–Maruyama: :math:`\tau/(k(1 -
k\Delta t/2))`).

Orders
------
* deterministic order 1 (with :math:`g = 0` it is Euler);
* strong order 1/2: the noise accumulated over n steps is :math:`W(t_n) + (\Delta W_n - \Delta
  W_0)/2`, an :math:`O(\Delta t^{1/2})` offset from the path (tested by a fitted slope);
* weak order 1 at finite times, 2 for stationary averages (tested by a fitted slope).

Additive noise only (the stationary argument needs a constant :math:`g`): a multiplicative noise
is refused. Masses are held fixed (use it as the transport of a splitting for a reaction).
"""
from __future__ import annotations

from .base import Integrator, UnsupportedTermError, register_integrator
from .euler import euler

__all__ = ["LeimkuhlerMatthews"]


@register_integrator
class LeimkuhlerMatthews(Integrator):
    """Leimkuhler–Matthews on a drift and an additive noise (see the module docstring)."""

    name = "leimkuhler_matthews"
    order = 1
    strong_order = 0.5
    accepts = frozenset({"drift", "noise"})

    def check(self, terms):
        collected = super().check(terms)
        noise = collected.get("noise")
        if noise is not None and not noise.additive:
            raise UnsupportedTermError(
                f"{self!r} needs additive noise (a constant diffusion g); got {noise!r}: use euler_maruyama "
                f"for multiplicative noise")
        return collected

    def strong_order_for(self, terms) -> float:
        """1/2 with noise (the shared increments offset the path by O(dt^1/2)); none without."""
        return 0.5 if "noise" in self.check(terms) else 1.0

    def advance(self, terms, state, dt):
        theta = euler(terms["drift"].field(state.mass), state.theta, dt)
        noise = terms.get("noise")
        if noise is None:  # bitwise the Euler step
            return state.replace(theta=theta)
        if state.carry is None:  # the first step draws its own increment too
            state = state.replace(carry=noise.increment(state, dt))
        following = noise.increment(state, dt)
        kick = state.carry + following
        kick *= 0.5
        kick *= noise.diffusion
        theta += kick
        return state.replace(theta=theta, carry=following)
