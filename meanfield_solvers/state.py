r"""The state an integrator advances: particle positions, masses, random stream(s) and step count.

A :class:`ParticleState` represents one or several independent empirical measures

.. math:: \mu = \sum_{i=1}^N m_i\,\delta_{\theta_i}, \qquad \theta_i \in \mathbb R^p,

stacked along leading axes (seeds, replicas, Monte Carlo paths). It is a value: integrators never
modify it, they return a new one (:meth:`ParticleState.replace` or :func:`dataclasses.replace`).
The one exception is the random stream, which is carried by reference and advanced by every draw
(see ``rng`` below).

Contract
--------
theta : ndarray, shape (..., N, p)
    Particle positions. The leading axes ``...`` index independent systems: nothing couples two
    of them. ``N`` is the number of particles, ``p`` the coordinates per particle.
mass : None or ndarray, shape (..., N)
    Particle masses :math:`m_i`. ``None`` means uniform weights :math:`1/N` (the noiseless,
    unweighted flow of the existing code), and costs nothing; :meth:`ParticleState.masses`
    materialises it when a reaction needs an array.
rng : None, numpy.random.Generator, or tuple of Generator
    The random stream that noise terms draw from. ``None``: deterministic dynamics only. One
    ``Generator``: a single draw of the full shape ``theta.shape`` per increment, so the noise of a
    system depends on how many systems run beside it. A tuple of ``theta.shape[0]`` generators
    (one per index of the first leading axis, usually the seed axis; needs ``theta.ndim >= 3``):
    generator ``s`` draws ``theta.shape[1:]`` for system ``s`` alone, so a seed's path is bitwise
    the same whether it runs alone or beside others. Generators are mutable: stepping advances
    them, and the returned state carries the *same* objects. To replay a step, copy the
    generators first (``copy.deepcopy``).
step : int
    Number of steps taken; every integrator step returns ``step + 1``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple, Union

import numpy as np

__all__ = ["ParticleState", "RandomStream"]

RandomStream = Union[None, np.random.Generator, Tuple[np.random.Generator, ...]]


@dataclass(frozen=True, eq=False)  # eq=False: '==' on arrays is elementwise, not a truth value
class ParticleState:
    """Positions ``theta`` (..., N, p), masses ``mass`` (None or (..., N)), stream(s) ``rng``, ``step``.

    See the module docstring for the full contract. Shapes are checked on construction, so a
    malformed state fails where it is built rather than deep inside a step.
    """

    theta: np.ndarray
    mass: np.ndarray | None = None
    rng: RandomStream = None
    step: int = 0

    def __post_init__(self):
        theta = self.theta
        if np.ndim(theta) < 2:
            raise ValueError(f"theta must have shape (..., N, p), got shape {np.shape(theta)}")
        if self.mass is not None and np.shape(self.mass) != theta.shape[:-1]:
            raise ValueError(f"mass must have shape theta.shape[:-1] = {theta.shape[:-1]} "
                             f"(one mass per particle), got {np.shape(self.mass)}")
        rng = self.rng
        if isinstance(rng, tuple):
            if theta.ndim < 3 or len(rng) != theta.shape[0]:
                raise ValueError(
                    f"a tuple of generators needs one per index of theta's first (seed) axis: "
                    f"got {len(rng)} generators for theta of shape {theta.shape}")
            if not all(isinstance(g, np.random.Generator) for g in rng):
                raise TypeError("rng tuple entries must be numpy.random.Generator")
        elif rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be None, a numpy.random.Generator or a tuple of them, "
                            f"got {type(rng).__name__}")

    @property
    def n_particles(self) -> int:
        """N, the number of particles per system."""
        return self.theta.shape[-2]

    def masses(self) -> np.ndarray:
        """The masses as an array of shape (..., N); uniform ``1/N`` when ``mass`` is None."""
        if self.mass is not None:
            return self.mass
        return np.full(self.theta.shape[:-1], 1.0 / self.n_particles, dtype=self.theta.dtype)

    def replace(self, **changes) -> "ParticleState":
        """A copy with the given fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)
