r"""The drift term: a velocity field of the particle positions, :math:`\dot\theta = v(\theta; \mu)`."""
from __future__ import annotations

from typing import Callable

from .base import Term

__all__ = ["Drift"]


class Drift(Term):
    r"""Deterministic transport :math:`\mathrm d\theta = v(\theta; \mu)\,\mathrm dt`.

    Parameters
    ----------
    velocity : callable ``(theta, mass) -> ndarray``
        ``theta`` of shape (..., N, p); ``mass`` None (uniform :math:`1/N`) or (..., N), held
        fixed over a transport step. Returns :math:`v` with the shape of ``theta`` as a **new**
        array: the integrators reuse it as workspace (in-place updates), so it must not alias
        ``theta`` or any array the caller keeps. Velocities are per unit mass (never scaled by
        :math:`m_i`): transport moves every bit of a particle's mass at the same speed.
    """

    kind = "drift"

    def __init__(self, velocity: Callable):
        self.velocity = velocity

    def field(self, mass) -> Callable:
        """The autonomous vector field ``theta -> v(theta, mass)`` at frozen masses."""
        velocity = self.velocity
        return lambda theta: velocity(theta, mass)

    @classmethod
    def combine(cls, terms):
        """Drifts add: :math:`v = \\sum_k v_k` (summed in the order given, into the first's output)."""
        velocities = [t.velocity for t in terms]

        def total(theta, mass):
            v = velocities[0](theta, mass)
            for other in velocities[1:]:
                v += other(theta, mass)
            return v

        return cls(total)

    def __repr__(self):
        return f"Drift({getattr(self.velocity, '__name__', self.velocity)!s})"
