r"""The state an integrator advances: particle positions, masses, random stream(s), step count, and
(for birth–death jumps) each particle's lineage and the jump counters.

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
parent : None or int64 ndarray, shape (..., N)
    Lineage under birth–death jumps (:class:`~meanfield_solvers.terms.birth_death.BirthDeath`), which
    kill and clone particles and so break particle identity: ``parent[..., i]`` is the row of the
    *initial* population particle i descends from (a clone inherits its source's entry), ``-1`` for
    a particle born from a prior. ``None`` means the identity ``arange(N)`` (no jump yet). Coupling
    analyses read it through :meth:`ParticleState.lineage`. Other integrators carry it unchanged.
jumps : None or :class:`JumpCounts`
    Counters of the jumps taken so far, per system (None: no jump step yet).
carry : None or ndarray, shape of ``theta``
    An integrator's memory between steps: the Brownian increment that the next step of
    :class:`~meanfield_solvers.integrators.leimkuhler_matthews.LeimkuhlerMatthews` shares with the
    last one (None before its first step; other integrators carry it unchanged).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple, Union

import numpy as np

__all__ = ["DynamicsFailure", "ParticleState", "RandomStream", "JumpCounts"]

RandomStream = Union[None, np.random.Generator, Tuple[np.random.Generator, ...]]


class DynamicsFailure(RuntimeError):
    """A step cannot go on (e.g. a birth-death population died out); ``step`` says where. The time
    loop reports it like a divergence, keeping the last good state."""

    step: int | None = None


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
    parent: np.ndarray | None = None
    jumps: "JumpCounts | None" = None
    carry: np.ndarray | None = None

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
        if self.parent is not None and np.shape(self.parent) != theta.shape[:-1]:
            raise ValueError(f"parent must have shape theta.shape[:-1] = {theta.shape[:-1]} (one "
                             f"ancestor per particle), got {np.shape(self.parent)}")
        if self.carry is not None and np.shape(self.carry) != theta.shape:
            raise ValueError(f"carry must have the shape of theta {theta.shape}, got {np.shape(self.carry)}")

    @property
    def n_particles(self) -> int:
        """N, the number of particles per system."""
        return self.theta.shape[-2]

    def masses(self) -> np.ndarray:
        """The masses as an array of shape (..., N); uniform ``1/N`` when ``mass`` is None."""
        if self.mass is not None:
            return self.mass
        return np.full(self.theta.shape[:-1], 1.0 / self.n_particles, dtype=self.theta.dtype)

    def lineage(self) -> np.ndarray:
        """The ancestor rows (..., N) in the initial population (``-1``: born from a prior); the
        identity ``arange(N)`` when ``parent`` is None."""
        if self.parent is not None:
            return self.parent
        return np.broadcast_to(np.arange(self.n_particles), self.theta.shape[:-1])

    def replace(self, **changes) -> "ParticleState":
        """A copy with the given fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class JumpCounts:
    """Cumulative birth–death event counts, each an int64 array of the systems' shape
    ``theta.shape[:-2]`` (``max_prob`` float64).

    Attributes
    ----------
    killed, cloned : reaction events (a particle killed with probability κh(Ψᵢ − c)₊, cloned with
        κh(c − Ψᵢ)₊; c = Ψ̄ when centred).
    control_killed, control_cloned : uniform kills and clones of the population control that
        restores N (scheme 1; scheme 2 removes one uniformly chosen particle per clone).
    born : particles drawn from the prior (scheme 2: one per killed particle).
    clipped : particles whose probability κh|Ψᵢ − c| exceeded 1 and was clipped to 1 (the step
        then under-represents the reaction; reduce κh).
    clipped_steps : steps in which at least one probability was clipped.
    max_prob : the largest κh|Ψᵢ − c| seen (before clipping).
    """

    killed: np.ndarray
    cloned: np.ndarray
    control_killed: np.ndarray
    control_cloned: np.ndarray
    born: np.ndarray
    clipped: np.ndarray
    clipped_steps: np.ndarray
    max_prob: np.ndarray

    @classmethod
    def zeros(cls, shape) -> "JumpCounts":
        """All counters zero for systems of the given shape."""
        z = lambda: np.zeros(shape, dtype=np.int64)  # noqa: E731
        return cls(z(), z(), z(), z(), z(), z(), z(), np.zeros(shape, dtype=np.float64))

    def report(self) -> str:
        """One line: the totals over all systems (and how many steps clipped probabilities)."""
        t = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        line = (f"birth-death: killed {t['killed'].sum()}, cloned {t['cloned'].sum()}, born {t['born'].sum()}, "
                f"control killed {t['control_killed'].sum()} / cloned {t['control_cloned'].sum()}; "
                f"max kappa*h*|Psi - c| = {float(np.max(t['max_prob'], initial=0.0)):.3g}")
        if t["clipped"].sum():
            line += (f"; CLIPPED {t['clipped'].sum()} probabilities in {t['clipped_steps'].sum()} "
                     f"system-steps (reduce kappa*h)")
        return line
