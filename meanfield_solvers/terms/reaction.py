r"""The reaction term: growth and decay of particle masses (Fisher–Rao part of WFR dynamics).

.. math:: \frac{\mathrm dm_i}{\mathrm dt} = r_i(\theta, m)\, m_i .

Positions do not move under a reaction, so over a reaction step with the rate frozen the flow is
exact: :math:`m_i \leftarrow m_i\,e^{\Delta t\, r_i}`, positive whatever the step. With
``conserve_mass=True`` the masses are then rescaled to their previous total, which is the exact
frozen-rate flow of the balanced equation :math:`\dot m_i = m_i(r_i - \bar r)`,
:math:`\bar r = \sum_j m_j r_j / \sum_j m_j` (the mean-subtracted birth–death rate): the common
factor :math:`e^{-\int\bar r}` cancels in the normalisation.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .base import Term

__all__ = ["Reaction"]


class Reaction(Term):
    r"""Mass growth rate :math:`\dot m_i = r_i m_i`, integrated exactly for a frozen rate.

    Parameters
    ----------
    rate : callable ``(theta, mass) -> ndarray``
        ``theta`` (..., N, p) and ``mass`` (..., N) (always an array here, uniform :math:`1/N`
        materialised) to the growth rates :math:`r` of shape (..., N), in 1/time.
    conserve_mass : bool
        Rescale the masses of each system to their total before the step (balanced
        Wasserstein–Fisher–Rao; see the module docstring).
    mass_dependent : bool
        Whether ``rate`` reads ``mass`` (WFR: :math:`\Psi` depends on the weighted measure). Then
        the frozen-rate step is only first order, and :meth:`react` freezes the rate at a
        predicted midpoint instead (the explicit midpoint rule in :math:`\log m`, second order,
        one more rate evaluation): :math:`m^{1/2} = m\,e^{\frac{\Delta t}2 r(\theta, m)}`,
        :math:`m \leftarrow m\,e^{\Delta t\,r(\theta, m^{1/2})}`. When the rate ignores the
        masses both forms give the same masses; ``False`` saves the second evaluation.
    """

    kind = "reaction"

    def __init__(self, rate: Callable, conserve_mass: bool = False, mass_dependent: bool = True):
        self.rate = rate
        self.conserve_mass = bool(conserve_mass)
        self.mass_dependent = bool(mass_dependent)

    @property
    def order(self) -> float:
        """Order in dt of :meth:`react`: 2 with the midpoint rate, exact (inf) for a rate that
        ignores the masses as declared by ``mass_dependent=False``."""
        return 2 if self.mass_dependent else math.inf

    def _rate(self, theta, m):
        r = self.rate(theta, m)
        if np.shape(r) != m.shape:
            raise ValueError(f"Reaction rate must return shape theta.shape[:-1] = {m.shape} (one "
                             f"rate per particle), got {np.shape(r)}")
        return r

    def _grow(self, m, r, dt):
        """m * exp(dt * r), rescaled to m's total per system when conserving mass (a new array)."""
        new = np.multiply(r, dt)
        if self.conserve_mass:
            # a common shift of the rates cancels in the rescaling; shifting by the largest keeps
            # each system's biggest factor at 1, so no exp overflows or underflows the total to 0
            new -= new.max(axis=-1, keepdims=True)
        np.exp(new, out=new)
        new *= m
        if self.conserve_mass:
            new *= m.sum(axis=-1, keepdims=True) / new.sum(axis=-1, keepdims=True)
        return new

    def react(self, state, dt: float) -> np.ndarray:
        """The masses (..., N) after a reaction step of ``dt`` from ``state`` (positions fixed)."""
        theta, m = state.theta, state.masses()
        r = self._rate(theta, m)
        if self.mass_dependent:
            r = self._rate(theta, self._grow(m, r, 0.5 * dt))
        return self._grow(m, r, dt)

    def remedy(self, integrator) -> str:
        return ("a reaction changes the masses, which this scheme does not integrate; use a "
                f"splitting step: get_integrator('strang', transport={integrator.name!r}) "
                "(or 'lie')")

    def __repr__(self):
        return (f"Reaction({getattr(self.rate, '__name__', self.rate)!s}, "
                f"conserve_mass={self.conserve_mass}, mass_dependent={self.mass_dependent})")
