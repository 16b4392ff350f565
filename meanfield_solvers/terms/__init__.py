"""Dynamics terms for particle states: :class:`Drift`, :class:`Noise`, :class:`Reaction`,
:class:`BirthDeath`.

One module per term; the contract is on :class:`~meanfield_solvers.terms.base.Term`.
"""
from .base import Term, collect_terms
from .birth_death import BirthDeath, PopulationDiedOut, PopulationOverflow
from .drift import Drift
from .noise import Noise
from .reaction import Reaction

__all__ = ["Term", "collect_terms", "Drift", "Noise", "Reaction", "BirthDeath", "PopulationDiedOut", "PopulationOverflow"]
